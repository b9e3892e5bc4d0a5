"""The report of finished sweeps: for each study a table per setting (every arm: seeds, budget,
evaluated success and return, the end of the training curve) with the commands that regenerate it,
and PNG learning curves (success and return against control steps and against wall clock, the mean
over seeds with their spread).

Only ``result.json`` files are read (isaacgymenvs_hrl/study/cells.py); the report is a pure
function of them, so a rerun over the same sweeps writes the same file.
"""
from __future__ import annotations

import json
import os
import shlex
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..utils.atomic import write_bytes, write_text
from .cells import FORMAT, RESULT

AXES = ("arm", "setting", "seed")
CURVE_POINTS = 60


def load_results(sweeps) -> list:
    """Every cell result under the sweep folders, in a stable order."""
    results = []
    for sweep in sweeps:
        if not Path(sweep).is_dir():
            raise UserError(f"sweep folder {sweep} does not exist; give the out=... folder of an hrl-study run")
        for path in sorted(Path(sweep).glob(f"**/runs/*/{RESULT}")):
            r = json.loads(path.read_text())
            if r.get("format") != FORMAT:
                raise UserError(f"{path} is not an hrl-study result (format {r.get('format')!r}, expected {FORMAT})")
            results.append(r)
    if not results:
        raise UserError(f"no finished cells (runs/*/{RESULT}) under {', '.join(map(str, sweeps))}; "
                        "run the sweep first: hrl-study run <experiment>")
    return results


def sweep_command(study: str, results: list) -> str:
    """The ``hrl-study run`` line whose grid is the cells present: swept axes joined by commas, every
    other override as given (those that differed between cells are joined too: a sweep of them)."""
    values = defaultdict(list)
    for r in results:
        for o in r["overrides"]:
            key, _, value = o.partition("=")
            if value not in values[key]:
                values[key].append(value)
        for axis in AXES:                         # axes swept from the config's grid are not overrides
            v = str(r[axis])
            if v not in values[axis]:
                values[axis].append(v)
    order = list(AXES) + sorted(k for k in values if k not in AXES)
    parts = [f"{k}={','.join(sorted(values[k], key=_natural))}" for k in order]
    return "hrl-study run " + " ".join([study, *map(_quote, parts)])


def grids(cells: list) -> list:
    """The cells of one setting split into rectangular arm x seed grids (arms that ran the same
    seeds together), so that each grid's ``hrl-study run`` line runs exactly those cells."""
    seeds = defaultdict(set)
    for r in cells:
        seeds[r["arm"]].add(r["seed"])
    groups = defaultdict(list)
    for arm, s in seeds.items():
        groups[tuple(sorted(s))].append(arm)
    return [[r for r in cells if r["arm"] in arms] for arms in groups.values()]


def _natural(v: str):
    return (0, int(v), "") if v.lstrip("-").isdigit() else (1, 0, v)


def _quote(part: str) -> str:
    return shlex.quote(part)


def _mean_spread(values, digits: int = 3) -> str:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return ""
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}" if v.size > 1 else f"{v.mean():.{digits}f}"


def _end_of_curve(r: dict, name: str, scale: float = 1.0, share: float = 0.2):
    """Mean of the last ``share`` of a training curve's points (None without points)."""
    values = r["curve"].get(name, {}).get("value", [])
    if not values:
        return None
    n = max(1, int(round(len(values) * share)))
    return float(np.mean(values[-n:])) * scale


def throughput(r: dict):
    """Control steps per second of training (between the first and the last epoch on the curve)."""
    c = r["curve"]["return"]
    if len(c["wall_s"]) < 2 or c["wall_s"][-1] <= c["wall_s"][0]:
        return None
    return (c["env_steps"][-1] - c["env_steps"][0]) / (c["wall_s"][-1] - c["wall_s"][0])


def table(results: list, setting: str) -> list:
    cells = [r for r in results if r["setting"] == setting]
    arms = list(dict.fromkeys(r["arm"] for r in cells))
    lines = ["| arm | seeds | control steps (epochs x k) | control steps/s | wall (s) | eval success, untrained -> "
             "trained | eval return, untrained -> trained | training success, last 20% | training return, last 20% |",
             "|---|---|---|---|---|---|---|---|---|"]
    for arm in arms:
        rs = sorted((r for r in cells if r["arm"] == arm), key=lambda r: r["seed"])
        b = rs[0]["budget"]
        succ = lambda r, when: r["eval"][when].get("success_per_episode")
        lines.append(
            f"| {rs[0]['arm_label']} | {len(rs)} | {b['env_steps']:,} ({b['epochs']} x {b['k']}) | "
            f"{_mean_spread((throughput(r) for r in rs), 0)} | {np.mean([r['wall_s'] for r in rs]):.0f} | {_mean_spread(succ(r, 'untrained') for r in rs)} -> "
            f"{_mean_spread(succ(r, 'trained') for r in rs)} | "
            f"{_mean_spread(r['eval']['untrained']['return_per_episode'] * r['return_scale'] for r in rs)} -> "
            f"{_mean_spread(r['eval']['trained']['return_per_episode'] * r['return_scale'] for r in rs)} | "
            f"{_mean_spread(_end_of_curve(r, 'success') for r in rs)} | "
            f"{_mean_spread(_end_of_curve(r, 'return', r['return_scale']) for r in rs)} |")
    return lines


def plot(results: list, setting: str, png: Path) -> None:
    """Success and return against control steps and against wall clock: per arm the mean over its
    seeds (each seed's curve interpolated onto a shared grid, within its own range) and the band of
    one standard deviation where two or more seeds overlap; one seed draws its curve alone."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [r for r in results if r["setting"] == setting]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for i, arm in enumerate(dict.fromkeys(r["arm"] for r in cells)):
        rs = [r for r in cells if r["arm"] == arm]
        for row, name in enumerate(("success", "return")):
            for col, x_key in enumerate(("env_steps", "wall_s")):
                curves = [(np.asarray(r["curve"][name][x_key], float),
                           np.asarray(r["curve"][name]["value"], float) * (r["return_scale"] if name == "return" else 1))
                          for r in rs if r["curve"].get(name, {}).get("value")]
                if not curves:
                    continue
                start, end = min(x[0] for x, _ in curves), max(x[-1] for x, _ in curves)
                grid = np.linspace(start, end, CURVE_POINTS) if end > start else np.array([start])
                # each seed inside its own range only (seeds that ran on a busier machine end later)
                ys = np.stack([np.interp(grid, x, y, left=np.nan, right=np.nan) for x, y in curves])
                n = np.isfinite(ys).sum(0)
                filled = np.where(n > 0, ys, 0.0)                     # no warning for an empty column
                mean = np.where(n > 0, np.nanmean(filled, 0), np.nan)   # a gap between seeds stays a gap
                std = np.where(n > 0, np.nanstd(filled, 0), np.nan)
                scale = 1e3 if x_key == "env_steps" else 60.0
                ax = axes[row, col]
                ax.plot(grid / scale, mean, color=f"C{i}", lw=1.5,
                        label=f"{rs[0]['arm_label']} ({len(curves)} seed{'s' if len(curves) > 1 else ''})")
                if len(curves) > 1:
                    ax.fill_between(grid / scale, mean - std, mean + std, where=n > 1, color=f"C{i}", alpha=0.2, lw=0)
    for row, name in enumerate(("training success (ended episodes)", "training return (control-step scale)")):
        for col, x_label in enumerate(("control steps (thousands)", "wall clock (minutes, env building included)")):
            axes[row, col].set_xlabel(x_label)
            axes[row, col].set_ylabel(name)
            axes[row, col].grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{cells[0]['study']}: {cells[0]['setting_label']} (mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    write_bytes(png, buf.getvalue())


def write_report(sweeps, out: str | os.PathLike, img: str | os.PathLike | None = None,
                 title: str = "Study results", command: str = "", notes: str | os.PathLike | None = None) -> Path:
    """Write the markdown report ``out`` and its PNGs (in ``img``, default ``<out stem>_img``);
    ``notes`` (markdown: what the numbers below say, written by a person) goes after the title."""
    results = load_results(sweeps)
    out = Path(out)
    if out.suffix != ".md":
        raise UserError(f"--out {out}: the report is markdown; give a .md file")
    img = Path(img) if img else out.with_name(out.stem + "_img")
    img.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "",
             "Written by `hrl-study report` from the raw results (`result.json` beside each run's TensorBoard "
             "log). Eval: hrl-train's end-of-run deterministic rollout, every env from a "
             "reset for one episode length (success per ended episode). Training curves: `Episode/success` and "
             "rl-games' `rewards/iter`; a high level's returns (llc.reward=mean) are multiplied by its k to "
             "read on the control-step scale of a flat run. ± is the standard deviation over seeds.", ""]
    lines += ["Regenerate this file (from the folder the sweeps ran in):", "", "```",
              command or f"hrl-study report {' '.join(map(str, sweeps))} --out {out}", "```", ""]
    if notes:
        if not Path(notes).is_file():
            raise UserError(f"--notes {notes}: no such file (a markdown file placed after the title)")
        lines += [Path(notes).read_text().strip(), ""]
    for study in dict.fromkeys(r["study"] for r in results):
        rs = [r for r in results if r["study"] == study]
        hosts = sorted({f"{r['host']} ({r['cpus']} CPUs)" for r in rs})
        lines += [f"## {study}", "",
                  f"Cells: {len(rs)}; ran on {', '.join(hosts)}; first {min(r['created'] for r in rs)}, "
                  f"last {max(r['created'] for r in rs)}.", ""]
        for setting in dict.fromkeys(r["setting"] for r in rs):
            png = img / f"{study}_{setting}.png"
            plot(rs, setting, png)
            cells = [r for r in rs if r["setting"] == setting]
            label = cells[0]["setting_label"]
            lines += [f"### {label}", "", "Regenerate (then the report command above):", "", "```",
                      *[sweep_command(study, group) for group in grids(cells)], "```", "",
                      *table(rs, setting), "", f"![{study} {setting}]({os.path.relpath(png, out.parent)})", ""]
    write_text(out, "\n".join(lines))
    return out
