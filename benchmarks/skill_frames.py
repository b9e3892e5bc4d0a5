#!/usr/bin/env python
"""Each discrete skill of an LLC held from the same initial states: one MP4 per skill and one PNG
sheet of frames (rows: skills; columns: moments of the episode, every env side by side).

    python benchmarks/skill_frames.py franka/stack_helms --out skill_frames --steps 100 --moments 4
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:            # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

import numpy as np                       # noqa: E402
import torch                             # noqa: E402

from isaacgymenvs_hrl.errors import UserError   # noqa: E402
from isaacgymenvs_hrl.hrl import load_llc        # noqa: E402
from isaacgymenvs_hrl.skills.rollout_videos import FastRenderer, build_task, rollout_frames, write_mp4   # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("llc", help="an LLC file or library name with a discrete mode")
    p.add_argument("--task", default="FrankaStack")
    p.add_argument("--out", default="skill_frames")
    p.add_argument("--envs", type=int, default=2)
    p.add_argument("--steps", type=int, default=100, help="control steps each skill is held")
    p.add_argument("--moments", type=int, default=4, help="columns of the sheet, evenly spaced")
    p.add_argument("--size", type=int, nargs=2, default=[160, 120], metavar=("WIDTH", "HEIGHT"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    llc = load_llc(args.llc)
    if "discrete" not in llc.modes:
        raise UserError(f"{args.llc} has no discrete skills (modes {list(llc.modes)})")
    task = build_task(args.task, args.envs, seed=args.seed)
    render = FastRenderer(task, *args.size)
    out = Path(args.out)
    picks = np.linspace(0, args.steps, args.moments).round().astype(int)
    rows = []
    for y in range(llc.num_skills):
        torch.manual_seed(args.seed)                         # the same initial states for every skill
        frames = rollout_frames(task, llc, "discrete", torch.tensor(y), args.steps, render)
        write_mp4(out / f"skill_{y}.mp4", frames, fps=max(1, round(1.0 / task.dt)))
        rows.append(np.concatenate([frames[i] for i in picks], 1))
        print(f"skill {y}: {out / f'skill_{y}.mp4'} ({len(frames)} frames)", flush=True)
    import imageio.v2 as imageio
    sheet = out / "skills_held.png"
    imageio.imwrite(sheet, np.concatenate(rows, 0))
    print(f"wrote {sheet}: rows skills 0-{llc.num_skills - 1}, columns steps {picks.tolist()}")
    render.close()
    task.close()


if __name__ == "__main__":
    main()
