"""``hrl-deploy``: a real exported policy (ONNX, onnxruntime) at a fixed rate against the robot
interface, the simulator (real C MuJoCo task) as the stand-in robot.

Checks the loop's pacing at 50 Hz on this machine (the numbers are printed), that every tick's
action is the policy's action for that tick's observation, that the hierarchical hold state runs,
and that a robot whose observation does not match the metadata is refused before any action is
written.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from test_export import llc_file, write_run  # noqa: E402,F401  (fixture re-used)
from isaacgymenvs_hrl.deploy import DeployError, RobotInterface, SimRobot, run_loop  # noqa: E402
from isaacgymenvs_hrl.deploy.robot import sim_robot  # noqa: E402
from isaacgymenvs_hrl.export import ExportedPolicy, ObservationMismatch, export_policy, load_run  # noqa: E402

ENV = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, llc_file):  # noqa: F811
    root = tmp_path_factory.mktemp("deploy")
    out = {}
    for name, overrides in (("flat", []), ("hrl", [f"task.env.llc.checkpoint={llc_file}"])):
        run = load_run(write_run(root, name, overrides))
        out[name], _ = export_policy(run, root / f"{name}.onnx", part="full")
        if name == "hrl":
            out["llc"], _ = export_policy(run, root / "llc.onnx", part="llc")
        run.task.close()
    return root, out


class RecordingRobot(RobotInterface):
    """A robot built on the simulator that keeps what it sent and received (a logging driver)."""

    def __init__(self, sim: SimRobot, drop_last: bool = False, declare: bool = True):
        self.sim, self.drop_last, self.declare = sim, drop_last, declare
        self.observations, self.actions = [], []

    def observation_slices(self):
        return self.sim.observation_slices() if self.declare else None

    def action_size(self):
        return self.sim.action_size()

    def start(self):
        self.sim.start()

    def stop(self):
        self.sim.stop()

    def episode_started(self):
        return self.sim.episode_started()

    def read_observation(self):
        stamp, obs = self.sim.read_observation()
        obs = obs[:-1] if self.drop_last else obs
        self.observations.append(obs.copy())
        return stamp, obs

    def write_action(self, action):
        self.actions.append(np.array(action))
        self.sim.write_action(action)


def test_loop_at_50hz_paces_and_sends_the_policy_action(exported):
    _, files = exported
    policy = ExportedPolicy(files["flat"])
    robot = RecordingRobot(sim_robot(policy.meta))
    report = run_loop(policy, robot, rate_hz=50.0, ticks=100, warmup_ticks=5)
    print("50 Hz:", report.summary())
    assert report.ticks == 100
    # 100 periods of 20 ms (+ those a late tick skipped): no running ahead of the deadlines, no drift
    periods = report.ticks + report.skipped_ticks
    assert periods * 0.02 - 0.021 <= report.wall_s <= periods * 0.02 + 0.03
    assert report.wakeup_jitter_ms["p50"] < 5.0
    assert report.deadline_misses <= report.ticks
    # every action written is the policy's action for the observation read in that tick
    check = ExportedPolicy(files["flat"])
    obs = np.stack(robot.observations)
    check.reset(len(obs))
    np.testing.assert_allclose(np.stack(robot.actions), check.act(obs), atol=1e-6)
    assert np.std(np.stack(robot.actions), 0).mean() > 1e-3        # the robot moved, actions varied


def test_hierarchical_policy_holds_its_latent_across_ticks(exported):
    _, files = exported
    policy = ExportedPolicy(files["hrl"])
    robot = RecordingRobot(sim_robot(policy.meta))
    k = policy.meta["hierarchy"]["k"]
    report = run_loop(policy, robot, rate_hz=50.0, ticks=2 * k, warmup_ticks=0)
    assert report.ticks == 2 * k
    assert int(policy.state["step"][0]) == 0                 # 2k ticks: the next tick is a decision


def test_mismatched_observation_is_refused_before_any_action(exported):
    _, files = exported
    policy = ExportedPolicy(files["flat"])
    robot = RecordingRobot(sim_robot(policy.meta), drop_last=True, declare=False)
    with pytest.raises(ObservationMismatch, match=r"shape \(1, 54\) refused.*\(batch, 55\) = proprio \(52\), task \(3\)"):
        run_loop(policy, robot, rate_hz=50.0, ticks=10, warmup_ticks=0)
    assert robot.actions == []
    # a robot that declares another layout is refused before the first tick
    robot = RecordingRobot(sim_robot(policy.meta))
    robot.observation_slices = lambda: [("proprio", 52)]
    with pytest.raises(DeployError, match=r"does not match the policy's \[\('proprio', 52\), \('task', 3\)\]"):
        run_loop(policy, robot, rate_hz=50.0, ticks=10)
    assert robot.observations == []


def test_llc_only_export_is_not_deployable(exported):
    _, files = exported
    policy = ExportedPolicy(files["llc"])
    with pytest.raises(DeployError, match="LLC-only export"):
        run_loop(policy, sim_robot(policy.meta), rate_hz=50.0, ticks=2)


def test_hrl_deploy_cli_writes_its_report(exported, tmp_path):
    root, files = exported
    report = tmp_path / "deploy.json"
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.deploy", f"policy={files['hrl']}",
                          "duration_s=1", f"report={report}", "latency.action_delay=1"],
                         cwd=root, capture_output=True, text=True, timeout=300, env=ENV)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "ticks at 50 Hz" in res.stdout
    data = json.loads(report.read_text())
    assert data["ticks"] == 50 and data["rate_hz"] == 50.0
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.deploy", f"policy={tmp_path}/none.onnx"],
                         cwd=root, capture_output=True, text=True, timeout=300, env=ENV)
    assert res.returncode == 2 and "file not found" in res.stderr and "Traceback" not in res.stderr
