#!/usr/bin/env python
"""Learning curve of one or more hrl-train runs, read from their TensorBoard event files.

Prints, per window of epochs, the mean of every ``Episode/*`` scalar (reward terms, success rates)
and the wall-clock minutes from the first record to the window's last one, so a run that was
resumed from another's checkpoint reads as one curve. ``--png`` also draws the chosen tags.

    python benchmarks/training_curve.py runs/fs_demo_* --window 50 --tags success rew_place rew_release
    python benchmarks/training_curve.py runs/fs_demo_* --png docs/img/frankastack_ppo.png
"""
from __future__ import annotations

import argparse
import glob
from collections import defaultdict
from pathlib import Path


def read_scalars(run_dirs):
    """{tag: [(epoch, wall_time, value), ...]} over all runs, in epoch order. A run resumed from an
    earlier one's checkpoint replaces the epochs it repeats (the earlier run went on past it)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = defaultdict(list)
    for run in run_dirs:
        files = sorted(glob.glob(str(Path(run) / "summaries" / "events*")))
        if not files:
            raise SystemExit(f"{run}: no TensorBoard events under summaries/ (is it an hrl-train run folder?)")
        new = defaultdict(list)
        for f in files:
            acc = EventAccumulator(f, size_guidance={"scalars": 0})
            acc.Reload()
            for tag in acc.Tags()["scalars"]:
                new[tag] += [(e.step, e.wall_time, e.value) for e in acc.Scalars(tag)]
        first = min((p[0] for t, v in new.items() if t.startswith("Episode/") for p in v), default=0)
        for tag in out:
            out[tag] = [p for p in out[tag] if p[0] < first]
        for tag, points in new.items():
            out[tag] += points
    return {k: sorted(v) for k, v in out.items()}


def windows(points, window):
    """[(first epoch of the window, mean value, last wall time)] for consecutive epoch windows."""
    groups = defaultdict(list)
    for step, wall, value in points:
        groups[step // window].append((wall, value))
    return [(k * window, sum(v for _, v in g) / len(g), max(w for w, _ in g)) for k, g in sorted(groups.items())]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="hrl-train run folders (runs/<experiment>_<date>), in order")
    ap.add_argument("--window", type=int, default=50, help="epochs per row")
    ap.add_argument("--tags", nargs="*", default=None,
                    help="Episode/<tag> names to show (default: all Episode/* tags)")
    ap.add_argument("--png", default=None, help="also plot the tags to this file")
    args = ap.parse_args()
    scalars = read_scalars(args.runs)
    tags = [f"Episode/{t}" for t in args.tags] if args.tags else \
        sorted(t for t in scalars if t.startswith("Episode/") and not t.endswith(("/time", "/frame")))
    missing = [t for t in tags if t not in scalars]
    if missing:
        raise SystemExit(f"no scalars {missing} in these runs; they have {sorted(scalars)}")
    start = min(w for t in tags for _, w, _ in scalars[t])
    rows = {t: windows(scalars[t], args.window) for t in tags}
    epochs = sorted({e for t in tags for e, _, _ in rows[t]})
    minutes = {e: max(w for t in tags for e2, _, w in rows[t] if e2 == e) for e in epochs}
    names = [t.split("/", 1)[1] for t in tags]
    print("epoch  minutes  " + "  ".join(f"{n:>14s}" for n in names))
    for e in epochs:
        vals = {t: v for t in tags for e2, v, _ in rows[t] if e2 == e}
        print(f"{e:5d}  {(minutes[e] - start) / 60:7.1f}  " +
              "  ".join(f"{vals[t]:14.4f}" if t in vals else f"{'':14s}" for t in tags))
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4))
        for t, n in zip(tags, names):
            ax.plot([e for e, _, _ in rows[t]], [v for _, v, _ in rows[t]], label=n)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"mean over {args.window} epochs")
        ax.legend()
        fig.tight_layout()
        Path(args.png).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.png, dpi=100)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
