"""benchmarks/throughput.py: the raw replay row simulates the task's own physics."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("throughput_bench", ROOT / "benchmarks" / "throughput.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("threads", [1, 2])
def test_replay_row_reproduces_the_task(throughput, threads):
    """Same start state, controls and resets: the bare rollout ends where the task did, bit for bit,
    and so does every timed task round, so the headline compares the task with the engine doing
    exactly the task's physics."""
    args = throughput.parse_args(["--engine", "mujoco", "--num-envs", "8", "--steps", "40", "--rounds", "1",
                                  "--warmup", "40", "--threads", str(threads)])
    res = throughput.bench_mujoco(args, lambda s="": None)
    assert res["replayed_resets"] > 0                  # the segment includes falls and resets
    assert res["replay_end_max_abs_diff"] == 0.0
    # and each timed task round re-ran that segment from its restored start, ending where it did
    assert res["task_rounds"] == "segment" and res["task_segment_end_max_abs_diff"] == 0.0
    assert res["ratio"] == res["ratio_vs_raw_task_replay"]
    assert set(res["runs"]) == {"task", "raw_replay", "raw_none", "raw_rate", "raw_fall"}
    # the split of a step between the physics and the task's own work, and the machine's small-op cost
    assert res["engine_ms_per_step"] > 0 and res["task_work_ms_per_step"] > 0
    assert 0 < res["small_torch_ops_us"]["back_to_back"] and 0 < res["small_torch_ops_us"]["after_pause"]
