"""``hrl-skills``: dataset -> LLC checkpoint + report folder.

    hrl-skills skills=bc dataset=datasets/HumanoidLocomotion.hdf5 output=llcs/walk_bc.llc.pt
    hrl-skills skills=ldse|helms|mrs|npmp dataset=... output=...

The report folder holds the loss curves, metrics.json and, for latent-skill algorithms, a 2-D PCA
projection of the inferred latents (coloured by skill, horizon or episode); HeLMS adds its skill
usage histogram and transition heatmaps.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import fields
from pathlib import Path

import isaacgymenvs_hrl  # noqa: F401
import hydra
import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from isaacgymenvs_hrl.datasets import load_dataset
from isaacgymenvs_hrl.errors import UserError, exit_on_user_error
from isaacgymenvs_hrl.paths import CFG_DIR
from isaacgymenvs_hrl.utils.config import register_resolvers, to_dict

register_resolvers()

# algo -> (module, config dataclass, train function); each train(data, meta, cfg, output) writes the LLC
ALGORITHMS = {
    "ldse": ("isaacgymenvs_hrl.skills.ldse", "LDSEConfig", "train_ldse"),
    "helms": ("isaacgymenvs_hrl.skills.helms", "HeLMSConfig", "train_helms"),
    "mrs": ("isaacgymenvs_hrl.skills.mrs", "MRSConfig", "train_mrs"),
    "npmp": ("isaacgymenvs_hrl.skills.npmp", "NPMPConfig", "train_npmp"),
}


def write_report(report_dir: Path, result: dict, output: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    history = result["history"]
    totals = {k: v for k, v in history.items() if k in ("train_loss", "val_loss")}
    terms = {k: v for k, v in history.items() if k.startswith("train_") and k not in totals}
    fig, axes = plt.subplots(1, 2 if terms else 1, figsize=(10 if terms else 5, 3.5), squeeze=False)
    for key, values in totals.items():
        axes[0, 0].plot(range(1, len(values) + 1), values, label=key)
    axes[0, 0].set_xlabel("epoch"); axes[0, 0].set_ylabel("loss"); axes[0, 0].legend()
    axes[0, 0].set_yscale("log" if all(min(v) > 0 for v in totals.values()) else "symlog")
    if terms:
        for key, values in terms.items():
            axes[0, 1].plot(range(1, len(values) + 1), values, label=key[len("train_"):])
        axes[0, 1].set_xlabel("epoch"); axes[0, 1].set_ylabel("train term"); axes[0, 1].set_yscale("symlog")
        axes[0, 1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(report_dir / "losses.png", dpi=100)
    plt.close(fig)
    images = ["losses"]

    extra = result.get("report") or {}
    if "latents" in extra:
        from isaacgymenvs_hrl.skills.common import pca_2d
        z, labels = np.asarray(extra["latents"]), np.asarray(extra["labels"])
        keep = np.random.default_rng(0).permutation(len(z))[:5000]
        xy = pca_2d(z[keep])
        fig, ax = plt.subplots(figsize=(5, 4))
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels[keep], s=4, cmap="tab10" if labels.max() < 10 else "viridis")
        fig.colorbar(sc, ax=ax, label=extra.get("label_name", "label"))
        ax.set_xlabel("PC 1"); ax.set_ylabel("PC 2"); ax.set_title("latents (PCA)")
        fig.tight_layout()
        fig.savefig(report_dir / "latents_pca.png", dpi=100)
        plt.close(fig)
        images.append("latents_pca")
    if "usage" in extra:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar(range(len(extra["usage"])), extra["usage"])
        ax.set_xlabel("skill y"); ax.set_ylabel("share of steps (filtered q(y|x))")
        fig.tight_layout()
        fig.savefig(report_dir / "skill_usage.png", dpi=100)
        plt.close(fig)
        images.append("skill_usage")
    if "transitions" in extra:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4))
        for ax, key, title in ((axes[0], "transitions", "empirical (argmax y) transitions"),
                               (axes[1], "transition_prior", "learned prior p(y_t | y_t-1)")):
            im = ax.imshow(extra[key], vmin=0, vmax=1, cmap="magma")
            ax.set_xlabel("y_t"); ax.set_ylabel("y_t-1"); ax.set_title(title, fontsize=9)
            fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(report_dir / "transitions.png", dpi=100)
        plt.close(fig)
        images.append("transitions")
    (report_dir / "metrics.json").write_text(json.dumps(result["metrics"], indent=2))
    (report_dir / "index.md").write_text(
        f"# LLC report\n\ncheckpoint: `{output}`\n\n" + "".join(f"![{i}]({i}.png)\n\n" for i in images)
        + "\n".join(f"- {k}: {v}" for k, v in result["metrics"].items()) + "\n")


def make_config(cls, params: dict):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise UserError(f"skills config: unknown field(s) {unknown} for {cls.__name__}; known fields: "
                        f"{sorted(known)}")
    return cls(**params)


@hydra.main(version_base="1.1", config_name="skills_config", config_path=str(CFG_DIR))
@exit_on_user_error
def main_hydra(cfg: DictConfig) -> None:
    algo = cfg.skills.algo
    params = {k: v for k, v in to_dict(cfg.skills).items() if k != "algo"}
    if algo == "bc":
        from isaacgymenvs_hrl.skills.bc import BCConfig, train_bc
        bc_cfg = BCConfig(**params)
        data, meta = load_dataset(cfg.dataset, require_slices=list(bc_cfg.policy_obs) + list(bc_cfg.condition_on))
        meta["path"] = str(cfg.dataset)
        result = train_bc(data, meta, bc_cfg, cfg.output)
    elif algo in ALGORITHMS:
        module, cls_name, fn_name = ALGORITHMS[algo]
        module = importlib.import_module(module)
        algo_cfg = make_config(getattr(module, cls_name), params)
        data, meta = load_dataset(cfg.dataset)
        meta["path"] = str(cfg.dataset)
        result = getattr(module, fn_name)(data, meta, algo_cfg, cfg.output, log=tqdm.write)
    else:
        raise UserError(f"skills algorithm '{algo}' is not implemented; available: "
                        f"{['bc', *ALGORITHMS]}")
    report = Path(cfg.report_dir or str(Path(cfg.output).with_suffix("")) + "_report")
    write_report(report, result, cfg.output)
    print(f"wrote {cfg.output} and {report}/ ({result['metrics']})")


def main() -> None:
    main_hydra()


if __name__ == "__main__":
    main()
