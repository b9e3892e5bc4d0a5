"""``hrl-sim2sim`` end to end, tiny: an hrl-train-style run exported to ONNX and
evaluated on both backends (C MuJoCo and MuJoCo Warp on Warp's CPU device), nominal and with
latency. The two backends must agree on the nominal rows (same seed, same policy, short episodes).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("mujoco_warp")                 # the [gpu] extra; [test] installs it

from test_export import write_run  # noqa: E402


def test_sim_to_sim_table_on_both_backends(tmp_path):
    ckpt = write_run(tmp_path, "flat", [])
    out = tmp_path / "s2s.md"
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.sim2sim", "--policy", str(ckpt),
                          "--num-envs", "2", "--steps", "12", "--episode-length", "6",
                          "--conditions", "nominal,latency", "--workdir", str(tmp_path / "work"),
                          "--output", str(out)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    rows = json.loads(out.with_suffix(".json").read_text())
    assert [(r["condition"], r["backend"]) for r in rows] == [
        ("nominal", "mujoco"), ("nominal", "mjwarp"), ("latency", "mujoco"), ("latency", "mjwarp")]
    assert all(r["episodes"] >= 2 for r in rows)                      # 6-step episodes in 12 steps
    a, b = rows[0], rows[1]
    assert a["return"] == pytest.approx(b["return"], rel=0.02, abs=0.05), (a, b)
    assert "| nominal | mjwarp |" in out.read_text()
    assert (tmp_path / "work" / "flat.onnx").is_file() and (tmp_path / "work" / "flat.onnx.json").is_file()
