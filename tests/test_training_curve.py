"""``hrl-plot`` on real TensorBoard event files: resumed runs read as one curve, the newest run is
the default, and a folder that is no run is one clear line."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from isaacgymenvs_hrl.tools import plot


def write_run(folder: Path, epochs, value):
    writer = SummaryWriter(str(folder / "summaries"))
    for e in epochs:
        writer.add_scalar("Episode/success", value, e)
    writer.close()


def test_a_resumed_run_replaces_the_epochs_it_repeats(tmp_path):
    write_run(tmp_path / "first", range(0, 20), 0.0)     # went on to epoch 19
    write_run(tmp_path / "resumed", range(10, 30), 1.0)  # resumed from the epoch-10 checkpoint
    scalars = plot.read_scalars([tmp_path / "first", tmp_path / "resumed"])
    points = scalars["Episode/success"]
    assert [p[0] for p in points] == list(range(30))
    assert [p[2] for p in points] == [0.0] * 10 + [1.0] * 20
    rows = plot.windows(points, 10)
    assert [(e, v) for e, v, _ in rows] == [(0, 0.0), (10, 1.0), (20, 1.0)]


def test_hrl_plot_reads_the_newest_run_under_runs_and_writes_a_png(tmp_path):
    write_run(tmp_path / "runs" / "old", range(0, 4), 0.25)
    time.sleep(0.05)
    write_run(tmp_path / "runs" / "new", range(0, 4), 0.75)
    os.utime(tmp_path / "runs" / "new")
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.plot", "--window", "2", "--png", "c.png"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert lines[0].split()[-1] == "success"
    assert [float(line.split()[-1]) for line in lines[1:3]] == [0.75, 0.75]
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_a_folder_without_events_is_one_line(tmp_path):
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.plot", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert "no TensorBoard events under summaries/" in res.stderr and "Traceback" not in res.stderr
