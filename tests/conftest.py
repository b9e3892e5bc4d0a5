"""Shared helpers for the engine, VecTask and randomization tests.

Everything here builds real MuJoCo (C, ``mujoco.rollout``) or MuJoCo Warp (Warp's "cpu" device)
engines from the project's humanoid MJCF; nothing is mocked. Sizes are kept small (a few envs, a
few control steps) so that the whole suite runs in minutes on two CPU cores. MuJoCo Warp compiles
its kernels once on first use (about a minute, cached in ~/.cache/warp).
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:          # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from isaacgymenvs_hrl.paths import asset_path  # noqa: E402
from isaacgymenvs_hrl.sim import SimParams, create_engine  # noqa: E402
from isaacgymenvs_hrl.sim.mjwarp_engine import MissingExtraError  # noqa: E402

HUMANOID_XML = str(asset_path("mjcf/humanoid.xml"))


# MuJoCo Warp is the [gpu] extra (the [test] extra installs it, so CI runs these tests on Warp's CPU
# device). Where it is not installed, a test that builds an mjwarp engine is skipped with the engine's
# own message; nothing else is: the hooks act on that one exception type only.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    try:
        return (yield)
    except MissingExtraError as exc:
        pytest.skip(str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except MissingExtraError as exc:
        pytest.skip(str(exc))


# IsaacGymEnvs' own config files, as users have them on disk (read-only, outside the repo).
IGE_CFG_DIR = ROOT.parent / "shared" / "compat" / "isaacgymenvs" / "cfg"

BASE_CFG = {
    "name": "HumanoidLocomotion",
    "physics_engine": "mujoco",
    "env": {"numEnvs": 8, "episodeLength": 50, "clipActions": 1.0, "clipObservations": 5.0},
    "sim": {"dt": 0.02, "substeps": 4, "mujoco": {"num_threads": 2}},
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def make_cfg(**overrides) -> dict:
    """A small HumanoidLocomotion task config; nested dicts in ``overrides`` are merged.

    ``make_cfg(env={"numEnvs": 4, "episodeLength": 5})`` keeps the other env keys.
    """
    return _merge(BASE_CFG, overrides)


def make_task(cfg: dict | None = None, seed: int | None = 0, task_cls=None, auto_reset: bool = True):
    """Build a task on CPU, seeding torch first so that two calls give identical tasks."""
    from isaacgymenvs_hrl.tasks import HumanoidLocomotion
    if seed is not None:
        torch.manual_seed(seed)
    cls = task_cls or HumanoidLocomotion
    return cls(cfg if cfg is not None else make_cfg(), "cpu", "cpu", -1, True, auto_reset=auto_reset)


def make_engine(backend: str, num_envs: int, dt: float = 0.02, substeps: int = 4,
                gravity=(0.0, 0.0, -9.81), path: str = HUMANOID_XML):
    return create_engine(backend, path, num_envs,
                         SimParams(dt=dt, substeps=substeps, gravity=tuple(gravity), num_threads=2))


def stand_state(engine, height: float | None = None):
    """(qpos, qvel) of the MJCF's 'stand' keyframe for every env, float32; optional torso height."""
    m = engine.model
    qpos = torch.tensor(m.key_qpos[m.key("stand").id], dtype=torch.float32).repeat(engine.num_envs, 1)
    if height is not None:
        qpos[:, 2] = height
    return qpos, torch.zeros(engine.num_envs, m.nv)


def load_ige_task_cfg(task: str, num_envs: int, physics_engine: str = "mujoco") -> dict:
    """IsaacGymEnvs' ``cfg/task/<task>.yaml`` resolved with its root keys, as Hydra would compose it."""
    if not (IGE_CFG_DIR / "task" / f"{task}.yaml").is_file():
        pytest.skip(f"IsaacGymEnvs config files not found under {IGE_CFG_DIR}")
    from omegaconf import OmegaConf
    from isaacgymenvs_hrl.utils.config import register_resolvers
    register_resolvers()
    root = OmegaConf.load(IGE_CFG_DIR / "config.yaml")
    root = OmegaConf.merge(root, {"task": OmegaConf.load(IGE_CFG_DIR / "task" / f"{task}.yaml")})
    root.num_envs = num_envs
    root.physics_engine = physics_engine
    root.pipeline = "cpu"
    root.sim_device = "cpu"
    root.rl_device = "cpu"
    root.num_threads = 2
    return OmegaConf.to_container(root.task, resolve=True)


@pytest.fixture
def cfg_factory():
    return make_cfg


def compose_train_config(args):
    """The config hrl-train composes for ``args`` (the project's cfg/ and Hydra's overrides)."""
    from isaacgymenvs_hrl.utils.task_config import compose_config
    return compose_config(args)


def train_in_process(args, capsys):
    """hrl-train's path without a subprocess: compose, then ``exit_on_user_error(train.run)``;
    returns (exit status, stdout + stderr, stderr)."""
    import isaacgymenvs_hrl.train as train
    from isaacgymenvs_hrl.errors import exit_on_user_error
    cfg = compose_train_config(args)
    capsys.readouterr()
    status = 0
    try:
        exit_on_user_error(train.run)(cfg, overrides=list(args))
    except SystemExit as exc:
        status = exc.code
    out = capsys.readouterr()
    return status, out.out + out.err, out.err


def humanoid_walk_data(n: int = 256) -> tuple[dict, dict]:
    """(arrays, metadata) of a small random dataset in HumanoidLocomotion's layout: episodes of 64 steps."""
    import numpy as np

    from isaacgymenvs_hrl.datasets.importers import task_metadata
    meta = task_metadata("HumanoidLocomotion")
    width = sum(s for _, s in meta["obs_layout"])
    rng = np.random.default_rng(0)
    data = {"observations": rng.normal(size=(n, width)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(n, meta["num_actions"])).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32), "terminals": np.zeros(n, bool),
            "timeouts": np.arange(n) % 64 == 63}
    return data, meta
