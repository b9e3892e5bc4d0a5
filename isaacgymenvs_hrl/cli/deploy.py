"""``hrl-deploy``: an exported policy at a fixed rate against the robot interface (the simulator here).

    hrl-deploy policy=exported/policy.onnx duration_s=10 rate_hz=50
"""
from __future__ import annotations

import json
from pathlib import Path

import isaacgymenvs_hrl  # noqa: F401  (sets MUJOCO_GL before mujoco loads)
import hydra
import torch
from omegaconf import DictConfig

from isaacgymenvs_hrl.errors import UserError, exit_on_user_error
from isaacgymenvs_hrl.paths import CFG_DIR
from isaacgymenvs_hrl.utils.task_config import HYDRA_VERSION_BASE
from isaacgymenvs_hrl.utils.config import register_resolvers, to_dict

register_resolvers()


def check_settings(cfg: DictConfig) -> None:
    """Every number and path of the command, before the policy or the robot is touched."""
    from isaacgymenvs_hrl.sim import ENGINES
    from isaacgymenvs_hrl.utils.atomic import check_not_input, check_writable
    from isaacgymenvs_hrl.utils.config import as_float, as_int
    if cfg.rate_hz not in ("", None):
        as_float(cfg.rate_hz, "rate_hz", low=1.0, high=10000.0, hint=" (Hz; '' = the policy's own rate)")
    as_float(cfg.duration_s, "duration_s", low=0.0, low_open=True, hint=" (seconds)")
    as_float(cfg.spin_s, "spin_s", low=0.0, high=1.0, hint=" (seconds spun before each deadline)")
    as_int(cfg.seed, "seed")
    as_int(cfg.torch_threads or 0, "torch_threads", low=0)
    if cfg.physics_engine not in ENGINES:
        raise UserError(f"physics_engine={cfg.physics_engine}: choose one of {', '.join(ENGINES)}")
    if cfg.report:
        check_writable(cfg.report, "report", example="deploy.json")
        check_not_input(cfg.report, {"policy": cfg.policy, "policy metadata": f"{cfg.policy}.json"}, "report")


@hydra.main(version_base=HYDRA_VERSION_BASE, config_name="deploy", config_path=str(CFG_DIR))
@exit_on_user_error
def main_hydra(cfg: DictConfig) -> None:
    from isaacgymenvs_hrl.export.runtime import ExportedPolicy

    from isaacgymenvs_hrl.deploy.loop import run_loop
    from isaacgymenvs_hrl.deploy.robot import sim_robot

    if not cfg.policy:
        raise UserError("policy= is required: a file written by hrl-export, e.g. policy=exported/policy.onnx")
    if cfg.robot != "sim":
        raise UserError(f"robot={cfg.robot}: only the simulator stand-in (robot=sim) ships here; for hardware "
                        "implement isaacgymenvs_hrl.deploy.RobotInterface and call deploy.run_loop")
    check_settings(cfg)
    if int(cfg.torch_threads or 0) > 0:
        torch.set_num_threads(int(cfg.torch_threads))
    torch.manual_seed(int(cfg.seed))
    policy = ExportedPolicy(cfg.policy)
    rate = float(cfg.rate_hz) if cfg.rate_hz not in ("", None) else float(policy.meta["control"]["rate_hz"])
    if abs(rate - float(policy.meta["control"]["rate_hz"])) > 1e-6:
        print(f"note: running at {rate:g} Hz; the policy was trained at {policy.meta['control']['rate_hz']:g} Hz")
    robot = sim_robot(policy.meta, cfg.physics_engine, to_dict(cfg.latency) or None)
    ticks = max(1, int(round(float(cfg.duration_s) * rate)))
    report = run_loop(policy, robot, rate, ticks, spin_s=float(cfg.spin_s))
    print(report.summary())
    if robot.returns:
        print(f"episodes finished: {len(robot.returns)}, mean return {sum(robot.returns) / len(robot.returns):.2f}")
    if cfg.report:
        from isaacgymenvs_hrl.utils.atomic import write_text
        path = Path(cfg.report)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({**report.to_dict(), "policy": str(cfg.policy)}, indent=2) + "\n")
        print(f"wrote {path}")


def main() -> None:
    main_hydra()


if __name__ == "__main__":
    main()
