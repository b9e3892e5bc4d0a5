#!/usr/bin/env python
"""What a physics setting does to manipulation: a grasped cube shaken for 10 s, resting drift.

Each ``--preset`` (a list of Hydra overrides; ``current`` is the shipped config, ``legacy`` the
2 ms / 25-substep settings before issue 14) builds FrankaStack and measures, on real MuJoCo:

1. **Held under shaking.** The stacking expert grasps and lifts the red cube; from the step an env
   reaches the carry phase its actions are replaced by full-speed shaking (x, y, z and yaw
   square waves of 0.4 to 1 s period, the gripper command frozen at the expert's squeeze) for
   ``--shake-s`` seconds. Reported: envs that dropped the cube (more than 2 cm from where it sat in
   the hand), and the median / max slip of the cube in the hand frame among those that kept it.
2. **Resting drift.** Standard resets, zero actions with the gripper open, for ``--rest-s``
   seconds: the largest xy motion and height change of any resting object.

Expert success is measured by ``benchmarks/experts.py`` with the same overrides (``--override``).

    python benchmarks/grasp_stability.py --presets legacy current --num-envs 32
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch                             # noqa: E402

import isaacgymenvs_hrl                  # noqa: E402
from isaacgymenvs_hrl.experts import make_expert               # noqa: E402
from isaacgymenvs_hrl.experts.stacking import CARRY            # noqa: E402
from isaacgymenvs_hrl.utils.task_config import compose_config  # noqa: E402

LEGACY = ["task.sim.substeps=25", "task.env.ctrlRampChunks=5", "task.sim.mujoco.sleep=false",
          "+task.sim.mujoco.iterations=50", "+task.sim.mujoco.ls_iterations=50"]
PRESETS = {"current": [], "legacy": LEGACY, "dt5ms": ["task.sim.substeps=10"], "dt6ms": ["task.sim.substeps=8"],
           "dt7ms": ["task.sim.substeps=7"], "dt8ms": ["task.sim.substeps=6"], "dt10ms": ["task.sim.substeps=5"]}


def build(overrides: list[str], num_envs: int, seed: int):
    cfg = compose_config(["task=FrankaStack", "task.env.episodeLength=100000", *overrides])
    return isaacgymenvs_hrl.make(seed, "FrankaStack", num_envs, "cpu", "cpu", cfg=cfg)


def hand_frame(task, obj: torch.Tensor) -> torch.Tensor:
    """Object centre (N, 3) in the TCP frame."""
    pos, rot = task.ee_pose()
    return (rot.transpose(1, 2) @ (obj - pos)[..., None]).squeeze(-1)


def shake_test(overrides, num_envs, seed, shake_s, yaw: bool = True, amplitude: float = 1.0) -> dict:
    task = build(overrides, num_envs, seed)
    expert = make_expert(task, noise=0.0, seed=seed)
    n, steps = task.num_envs, int(round(shake_s / task.dt))
    obs = task.reset()
    red = lambda: task.object_qpos()[:, 0, 0:3]
    start = torch.full((n,), -1, dtype=torch.long)
    in_hand0, grip = torch.zeros(n, 3), torch.zeros(n)
    slip = torch.zeros(n)
    # square waves per axis (periods in control steps), phases differ so the motion is 3-D
    period = torch.tensor([8, 12, 20, 16])
    for t in range(400 + steps):
        act = expert(obs["obs"])
        reach = (expert.phase >= CARRY) & (start < 0)
        if reach.any():
            start[reach] = t
            in_hand0[reach] = hand_frame(task, red())[reach]
            grip[reach] = act[reach, -1]
        shaking = (start >= 0) & (t - start < steps)
        k = (t - start).clamp(min=0)[:, None]
        wave = torch.where((k // (period // 2)) % 2 == 0, amplitude, -amplitude)   # (n, 4)
        if not yaw:
            wave[:, 3] = 0.0
        act = torch.where(shaking[:, None], torch.cat([wave, grip[:, None]], -1), act)
        obs, *_ = task.step(act)
        live = shaking & (t - start >= 1)
        slip = torch.where(live, torch.maximum(slip, (hand_frame(task, red()) - in_hand0).norm(dim=-1)), slip)
        if ((start >= 0) & (t - start >= steps)).all():
            break
    done = (start >= 0) & (t - start >= steps - 1)
    dropped = done & (slip > 0.02)
    kept = slip[done & ~dropped]
    task.close()
    return {"envs_shaken": int(done.sum()), "dropped": int(dropped.sum()),
            "slip_median_mm": 1e3 * float(kept.median()) if len(kept) else float("nan"),
            "slip_max_mm": 1e3 * float(kept.max()) if len(kept) else float("nan")}


def rest_test(overrides, num_envs, seed, rest_s) -> dict:
    task = build(overrides, num_envs, seed)
    obs = task.reset()
    p0 = task.object_qpos()[:, :, 0:3].clone()
    act = torch.zeros(task.num_envs, task.num_actions)
    act[:, -1] = 1.0
    for _ in range(int(round(rest_s / task.dt))):
        obs, *_ = task.step(act)
    d = task.object_qpos()[:, :, 0:3] - p0
    task.close()
    return {"xy_drift_max_mm": 1e3 * float(d[..., 0:2].norm(dim=-1).max()),
            "z_change_max_mm": 1e3 * float(d[..., 2].abs().max())}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=["legacy", "current"], choices=list(PRESETS), help="legacy: before issue 14; current: as shipped")
    p.add_argument("--override", nargs="*", default=[], help="Hydra overrides added to every preset")
    p.add_argument("--num-envs", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shake-s", type=float, default=10.0)
    p.add_argument("--rest-s", type=float, default=10.0)
    p.add_argument("--amplitude", type=float, default=1.0, help="shaking action size (0: hold still)")
    p.add_argument("--no-yaw", action="store_true", help="shake in x, y, z only")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = {}
    for name in args.presets:
        overrides = [*PRESETS[name], *args.override]
        t0 = time.perf_counter()
        res = shake_test(overrides, args.num_envs, args.seed, args.shake_s, not args.no_yaw, args.amplitude) | \
            rest_test(overrides, args.num_envs, args.seed, args.rest_s)
        res["wall_s"] = time.perf_counter() - t0
        out[name] = res
        print(f"[{name}] {' '.join(overrides) or '(shipped config)'}", flush=True)
        print(f"  shaken {res['envs_shaken']} envs for {args.shake_s:.0f} s: dropped {res['dropped']}, slip in hand "
              f"median {res['slip_median_mm']:.1f} mm, max {res['slip_max_mm']:.1f} mm", flush=True)
        print(f"  resting {args.rest_s:.0f} s: xy drift max {res['xy_drift_max_mm']:.2f} mm, height change max "
              f"{res['z_change_max_mm']:.2f} mm  ({res['wall_s']:.0f} s)", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": out}, indent=2))
    return out


if __name__ == "__main__":
    main()
