"""``hrl-export``: an hrl-train checkpoint -> one policy file + metadata JSON.

    hrl-export checkpoint=runs/<run>/nn/HumanoidLocation.pth format=onnx part=full output=exported/hl.onnx
"""
from __future__ import annotations

from pathlib import Path

import isaacgymenvs_hrl  # noqa: F401  (sets MUJOCO_GL before mujoco loads)
import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from isaacgymenvs_hrl.errors import UserError, exit_on_user_error
from isaacgymenvs_hrl.paths import CFG_DIR
from isaacgymenvs_hrl.utils.task_config import HYDRA_VERSION_BASE
from isaacgymenvs_hrl.utils.config import register_resolvers

register_resolvers()


def default_output(checkpoint: str, part: str, fmt: str) -> Path:
    ckpt = Path(checkpoint)
    return ckpt.resolve().parent.parent / "exported" / f"{ckpt.stem}.{part}.{'onnx' if fmt == 'onnx' else 'pt'}"


def verify(module, in_specs, path, samples: int, hl_high: int) -> float:
    """Max |exported - torch| over ``samples`` random rows stepped through 2k control steps."""
    from isaacgymenvs_hrl.export.exporter import example_inputs
    from isaacgymenvs_hrl.export.runtime import ExportedPolicy

    policy = ExportedPolicy(path)
    inputs = list(example_inputs(in_specs, batch=samples, seed=1, hl_high=hl_high))
    names = [s[0] for s in in_specs]
    state = {n: inputs[i] for i, n in enumerate(names) if n in ("latent", "skill", "step")}
    policy.reset(samples)
    worst = 0.0
    gen = torch.Generator().manual_seed(2)
    k = getattr(getattr(module, "executor", module), "k", 1)
    for _ in range(2 * int(k) if state else 1):
        feeds = {n: inputs[i] for i, n in enumerate(names)}
        feeds["obs"] = torch.randn(samples, feeds["obs"].shape[1], generator=gen) * 2
        feeds.update(state)
        with torch.no_grad():
            ref = module(*[feeds[n] for n in names])
        ref = ref if isinstance(ref, tuple) else (ref,)
        hl = feeds.get("hl_action")
        got = policy.act(feeds["obs"].numpy(), None if hl is None else hl.numpy())
        worst = max(worst, float(np.abs(got - ref[0].numpy()).max()))
        if state:
            state = {"latent": ref[1], "skill": ref[2], "step": ref[3]}
    return worst


@hydra.main(version_base=HYDRA_VERSION_BASE, config_name="export", config_path=str(CFG_DIR))
@exit_on_user_error
def main_hydra(cfg: DictConfig) -> None:
    from isaacgymenvs_hrl.export.exporter import FORMATS, PARTS, build_part, export_policy
    from isaacgymenvs_hrl.export.run import load_run

    if not cfg.checkpoint:
        raise UserError("checkpoint= is required: the rl-games .pth of an hrl-train run, e.g. "
                        "checkpoint=runs/<run>/nn/<name>.pth")
    if cfg.format not in FORMATS:
        raise UserError(f"format={cfg.format}: choose one of {', '.join(FORMATS)}")
    if cfg.part not in PARTS:
        raise UserError(f"part={cfg.part}: choose one of {', '.join(PARTS)}")
    from isaacgymenvs_hrl.utils.atomic import check_not_input, check_writable
    from isaacgymenvs_hrl.utils.config import as_int
    samples = as_int(cfg.verify_samples, "verify_samples", low=0, hint=" (0 skips the check)")
    if int(as_int(cfg.torch_threads or 0, "torch_threads", low=0)) > 0:
        torch.set_num_threads(int(cfg.torch_threads))
    output = Path(cfg.output) if cfg.output else default_output(cfg.checkpoint, cfg.part, cfg.format)
    check_writable(output, "output", "policy.onnx" if cfg.format == "onnx" else "policy.pt")
    from isaacgymenvs_hrl.learning.runs import run_config_path
    for out in (output, Path(f"{output}.json")):       # the policy file and its metadata
        check_not_input(out, {"checkpoint": cfg.checkpoint, "run config": run_config_path(cfg.checkpoint)})
    run = load_run(cfg.checkpoint)
    if run.llc_path is not None:
        check_not_input(output, {"the run's LLC": run.llc_path})
    path, meta_path = export_policy(run, output, fmt=cfg.format, part=cfg.part)
    kind = f"hierarchical ({run.mode}, k={run.steps})" if run.hierarchical else "flat"
    if samples == 0:
        print(f"wrote {path} ({cfg.format}, part={cfg.part}, {kind}) and {meta_path}; not verified (verify_samples=0)")
        return
    module, in_specs, _ = build_part(run, cfg.part)
    diff = verify(module, in_specs, path, samples, int(getattr(run.env.action_space, "n", 2) or 2))
    print(f"wrote {path} ({cfg.format}, part={cfg.part}, {kind}) and {meta_path}; "
          f"max |exported - torch| on {samples} random observations: {diff:.2e}")


def main() -> None:
    main_hydra()


if __name__ == "__main__":
    main()
