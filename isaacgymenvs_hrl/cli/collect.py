"""``hrl-collect``: roll out a policy in a task, write an offline dataset.

    hrl-collect task=HumanoidLocomotion policy=runs/<run>/nn/HumanoidLocomotion.pth num_episodes=256 noise=0.1
"""
from __future__ import annotations

import time

import isaacgymenvs_hrl  # noqa: F401
import hydra
import torch
from omegaconf import DictConfig

from isaacgymenvs_hrl.datasets import write_dataset
from isaacgymenvs_hrl.datasets.rollouts import collect, relabel_command, with_mirror
from isaacgymenvs_hrl.errors import UserError, exit_on_user_error
from isaacgymenvs_hrl.hrl.env_factory import build_env, is_hierarchical
from isaacgymenvs_hrl.learning.runs import load_rlgames_policy, run_config_path
from isaacgymenvs_hrl.paths import CFG_DIR
from isaacgymenvs_hrl.utils.task_config import HYDRA_VERSION_BASE
from isaacgymenvs_hrl.utils.config import as_bool, register_resolvers, to_dict
from isaacgymenvs_hrl.utils.provenance import provenance

register_resolvers()


@hydra.main(version_base=HYDRA_VERSION_BASE, config_name="collect", config_path=str(CFG_DIR))
@exit_on_user_error
def main_hydra(cfg: DictConfig) -> None:
    from isaacgymenvs_hrl.tasks import isaacgym_task_map
    from isaacgymenvs_hrl.utils.seeding import set_seed

    if cfg.task_name not in isaacgym_task_map:
        raise UserError(f"unknown task '{cfg.task_name}'; available: {', '.join(sorted(isaacgym_task_map))}")
    for key, kind, low in (("num_episodes", int, 1), ("num_envs", int, 1), ("noise", float, 0.0),
                           ("hindsight_steps", int, 0)):
        try:
            ok = kind(cfg[key]) >= low and not isinstance(cfg[key], bool)
        except (TypeError, ValueError):
            ok = False
        if not ok or (kind is int and float(cfg[key]) != int(cfg[key])):
            what = ("a positive integer" if low else "an integer >= 0") if kind is int else "a number >= 0"
            raise UserError(f"{key} must be {what}, got {cfg[key]!r}")
    from isaacgymenvs_hrl.utils.atomic import check_not_input, check_writable, remove_stale_tmp
    from isaacgymenvs_hrl.utils.config import as_int, check_seed
    check_seed(cfg.seed)
    for key in ("deterministic", "mirror", "torch_deterministic"):
        as_bool(cfg.get(key, False), key)
    as_int(cfg.get("torch_threads", 0) or 0, "torch_threads", low=0)
    output = check_writable(cfg.output, "output", example=f"{cfg.task_name}.hdf5")   # before any rollout
    if cfg.policy not in ("random", "expert"):
        from isaacgymenvs_hrl.hrl.library import resolve
        policy_file = resolve(cfg.policy, kind="policy")
        check_not_input(output, {"policy": policy_file, "policy config": run_config_path(policy_file)})
    remove_stale_tmp(output.parent)
    seed = set_seed(cfg.seed, cfg.torch_deterministic)
    if int(cfg.get("torch_threads", 0) or 0) > 0:
        torch.set_num_threads(int(cfg.torch_threads))
    task_cfg = to_dict(cfg.task)
    task_cfg["env"]["numEnvs"] = int(cfg.num_envs)
    if is_hierarchical(task_cfg):
        raise UserError(f"hrl-collect records a flat task's control steps; task={cfg.task_name} runs the LLC "
                        f"{task_cfg['env']['llc']['checkpoint']} (task.env.llc.checkpoint): collect on the flat "
                        "task it wraps (e.g. task=HumanoidLocomotion for HumanoidLocomotionHRL)")
    task = build_env(task_cfg, cfg.rl_device, cfg.sim_device)
    noise = float(cfg.noise)
    if cfg.policy == "expert":          # scripted expert; it applies the action noise itself
        from isaacgymenvs_hrl.experts import make_expert
        policy, noise = make_expert(task, noise, seed), 0.0
    else:
        from isaacgymenvs_hrl.hrl.library import resolve
        policy = None if cfg.policy == "random" else load_rlgames_policy(
            str(resolve(cfg.policy, kind="policy")), task.num_obs, task.num_actions, cfg.rl_device)
    # checked before any rollout: both need HumanoidLocomotion's layout (a 3-wide command slice)
    hindsight, mirror = int(cfg.get("hindsight_steps", 0)), as_bool(cfg.get("mirror", False), "mirror")
    sizes = task.spec.obs_sizes()
    if (hindsight or mirror) and (sizes.get("task") != 3 or not hasattr(task, "achieved_command")):
        raise UserError(f"mirror / hindsight_steps need a command-tracking humanoid task (HumanoidLocomotion); "
                        f"{cfg.task_name} has observation slices {sizes}")
    t0 = time.time()
    data = collect(task, policy, int(cfg.num_episodes), noise, bool(cfg.deterministic))
    elapsed = time.time() - t0
    if hindsight:
        achieved = task.achieved_command(torch.from_numpy(data["infos.qpos"]), torch.from_numpy(data["infos.qvel"]))
        data = relabel_command(data, achieved.numpy(), task.obs_slices["task"].start, hindsight)
    if mirror:
        data = with_mirror(data, task.mirror_maps())
    meta = {**task.spec.dataset_meta(), "policy": str(cfg.policy), "noise": float(cfg.noise), "task_config": task_cfg,
            "mirrored": mirror, "hindsight_steps": hindsight, **provenance(seed=seed)}
    path = write_dataset(output, data, meta)
    episodes = int(data["terminals"].sum() + data["timeouts"].sum())
    print(f"wrote {path}: {len(data['actions'])} steps, {episodes} episodes, mean return "
          f"{data['rewards'].sum() / max(episodes, 1):.2f}, {elapsed:.1f} s")


def main() -> None:
    main_hydra()


if __name__ == "__main__":
    main()
