"""``hrl-skills``: dataset -> LLC checkpoint + report folder.

    hrl-skills skills=bc dataset=datasets/HumanoidLocomotion.hdf5 output=llcs/walk_bc.llc.pt
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import isaacgymenvs_hrl  # noqa: F401
import hydra
from omegaconf import DictConfig

from isaacgymenvs_hrl.datasets import load_dataset
from isaacgymenvs_hrl.errors import UserError
from isaacgymenvs_hrl.paths import CFG_DIR
from isaacgymenvs_hrl.utils.config import register_resolvers, to_dict

register_resolvers()


def write_report(report_dir: Path, result: dict, output: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, values in result["history"].items():
        ax.plot(range(1, len(values) + 1), values, label=key)
    ax.set_xlabel("epoch"); ax.set_ylabel("loss"); ax.set_yscale("log"); ax.legend(); fig.tight_layout()
    fig.savefig(report_dir / "losses.png", dpi=100)
    plt.close(fig)
    (report_dir / "metrics.json").write_text(json.dumps(result["metrics"], indent=2))
    (report_dir / "index.md").write_text(
        f"# LLC report\n\ncheckpoint: `{output}`\n\n![losses](losses.png)\n\n"
        + "\n".join(f"- {k}: {v}" for k, v in result["metrics"].items()) + "\n")


@hydra.main(version_base="1.1", config_name="skills_config", config_path=str(CFG_DIR))
def main_hydra(cfg: DictConfig) -> None:
    try:
        algo = cfg.skills.algo
        params = {k: v for k, v in to_dict(cfg.skills).items() if k != "algo"}
        if algo == "bc":
            from isaacgymenvs_hrl.skills.bc import BCConfig, train_bc
            bc_cfg = BCConfig(**params)
            data, meta = load_dataset(cfg.dataset, require_slices=list(bc_cfg.policy_obs) + list(bc_cfg.condition_on))
            meta["path"] = str(cfg.dataset)
            result = train_bc(data, meta, bc_cfg, cfg.output)
        else:
            raise UserError(f"skills algorithm '{algo}' is not implemented yet; available: bc")
        report = Path(cfg.report_dir or str(Path(cfg.output).with_suffix("")) + "_report")
        write_report(report, result, cfg.output)
        print(f"wrote {cfg.output} and {report}/ ({result['metrics']})")
    except UserError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    main_hydra()


if __name__ == "__main__":
    main()
