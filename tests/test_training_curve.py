"""benchmarks/training_curve.py on real TensorBoard event files: resumed runs read as one curve."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "training_curve.py"


def load_script():
    spec = importlib.util.spec_from_file_location("training_curve", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_run(folder: Path, epochs, value):
    writer = SummaryWriter(str(folder / "summaries"))
    for e in epochs:
        writer.add_scalar("Episode/success", value, e)
    writer.close()


def test_a_resumed_run_replaces_the_epochs_it_repeats(tmp_path):
    curve = load_script()
    write_run(tmp_path / "first", range(0, 20), 0.0)     # went on to epoch 19
    write_run(tmp_path / "resumed", range(10, 30), 1.0)  # resumed from the epoch-10 checkpoint
    scalars = curve.read_scalars([tmp_path / "first", tmp_path / "resumed"])
    points = scalars["Episode/success"]
    assert [p[0] for p in points] == list(range(30))
    assert [p[2] for p in points] == [0.0] * 10 + [1.0] * 20
    rows = curve.windows(points, 10)
    assert [(e, v) for e, v, _ in rows] == [(0, 0.0), (10, 1.0), (20, 1.0)]
