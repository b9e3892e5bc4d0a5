"""What ``hrl-plot`` (``cli/plot.py``) reads and draws: the ``Episode/*`` scalars of hrl-train runs' TensorBoard
event files, as a table per window of epochs (wall-clock minutes included) and as a PNG."""
from __future__ import annotations

import glob
from collections import defaultdict
from pathlib import Path

from ..errors import UserError


def read_scalars(run_dirs) -> dict:
    """{tag: [(epoch, wall_time, value), ...]} over all runs, in epoch order. A run resumed from an
    earlier one's checkpoint replaces the epochs it repeats (the earlier run went on past it)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = defaultdict(list)
    for run in run_dirs:
        files = sorted(glob.glob(str(Path(run) / "summaries" / "events*")))
        if not files:
            raise UserError(f"{run}: no TensorBoard events under summaries/; give hrl-train run folders "
                            "(runs/<name>_<date>)")
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


def windows(points, window: int) -> list:
    """[(first epoch of the window, mean value, last wall time)] for consecutive epoch windows."""
    groups = defaultdict(list)
    for step, wall, value in points:
        groups[step // window].append((wall, value))
    return [(k * window, sum(v for _, v in g) / len(g), max(w for w, _ in g)) for k, g in sorted(groups.items())]


def newest_run(root: str | Path = "runs") -> Path:
    runs = [p for p in Path(root).glob("*") if (p / "summaries").is_dir()]
    if not runs:
        raise UserError(f"no hrl-train run folders under {Path(root).resolve()}; give run folders: "
                        "hrl-plot runs/<name>_<date> ...")
    return max(runs, key=lambda p: p.stat().st_mtime)


def curve_table(scalars: dict, tags: list, window: int) -> str:
    start = min(w for t in tags for _, w, _ in scalars[t])
    rows = {t: windows(scalars[t], window) for t in tags}
    epochs = sorted({e for t in tags for e, _, _ in rows[t]})
    minutes = {e: max(w for t in tags for e2, _, w in rows[t] if e2 == e) for e in epochs}
    names = [t.split("/", 1)[1] for t in tags]
    lines = ["epoch  minutes  " + "  ".join(f"{n:>14s}" for n in names)]
    for e in epochs:
        vals = {t: v for t in tags for e2, v, _ in rows[t] if e2 == e}
        lines.append(f"{e:5d}  {(minutes[e] - start) / 60:7.1f}  " +
                     "  ".join(f"{vals[t]:14.4f}" if t in vals else f"{'':14s}" for t in tags))
    return "\n".join(lines)


def plot_png(scalars: dict, tags: list, window: int, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for t in tags:
        rows = windows(scalars[t], window)
        ax.plot([e for e, _, _ in rows], [v for _, v, _ in rows], label=t.split("/", 1)[1])
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"mean over {window} epochs")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
