"""``hrl-collect``: roll out a policy in a task, write an offline dataset.

    hrl-collect task=HumanoidLocomotion policy=runs/<run>/nn/HumanoidLocomotion.pth num_episodes=256 noise=0.1
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import isaacgymenvs_hrl  # noqa: F401
import hydra
import numpy as np
import torch
import yaml
from omegaconf import DictConfig

from isaacgymenvs_hrl.datasets import write_dataset
from isaacgymenvs_hrl.errors import UserError, exit_on_user_error
from isaacgymenvs_hrl.paths import CFG_DIR
from isaacgymenvs_hrl.utils.task_config import HYDRA_VERSION_BASE
from isaacgymenvs_hrl.utils.config import as_bool, register_resolvers, to_dict
from isaacgymenvs_hrl.utils.provenance import provenance

register_resolvers()


def load_rlgames_policy(checkpoint: str, num_obs: int, num_actions: int, device: str = "cpu"):
    """Rebuild an rl-games actor from its checkpoint and the run's saved config; returns obs -> (mu, sigma)."""
    from isaacgymenvs_hrl.learning.evaluation import build_network

    ckpt_path = Path(checkpoint)
    if not ckpt_path.is_file():
        raise UserError(f"policy checkpoint not found: {checkpoint}")
    # a skill library policy keeps its run config beside it (<name>.yaml); a run's is next to nn/
    run_cfg = ckpt_path.with_suffix(".yaml")
    if not run_cfg.is_file():
        run_cfg = ckpt_path.parent.parent / "config.yaml"
    if not run_cfg.is_file():
        raise UserError(f"{run_cfg} not found: hrl-collect reads the network of policy={checkpoint} from "
                        "the config.yaml that hrl-train writes next to nn/")
    params = yaml.safe_load(run_cfg.read_text())["train"]["params"]
    net = build_network(params, num_obs, num_actions)
    from isaacgymenvs_hrl.learning.checkpoints import check_fits, load_checkpoint, require_parts
    ckpt = load_checkpoint(ckpt_path, key="policy")          # weights only: a pickled payload is refused
    require_parts(ckpt, ("model",), ckpt_path, key="policy")
    check_fits(net, ckpt["model"], ckpt_path, "model", key="policy",
               hint=f"; this task has {num_obs} observations and {num_actions} actions")
    net.load_state_dict(ckpt["model"])
    net.to(device).eval()

    @torch.no_grad()
    def act(obs):
        res = net({"is_train": False, "prev_actions": None, "obs": obs, "rnn_states": None})
        return res["mus"], res["sigmas"]
    return act


def collect(task, policy, num_episodes: int, noise: float = 0.0, deterministic: bool = True,
            progress: bool = True):
    """Step all envs until ``num_episodes`` episodes have finished; keep only complete episodes."""
    from tqdm import tqdm

    n = task.num_envs
    obs = task.reset()["obs"]
    keys = ("observations", "actions", "rewards", "terminals", "timeouts", "infos.qpos", "infos.qvel")
    steps = {k: [] for k in keys}
    finished = 0
    bar = tqdm(total=num_episodes, desc="episodes", disable=not progress, file=sys.stdout)
    while finished < num_episodes:
        # the simulator state behind each observation (D4RL's infos/qpos, infos/qvel): tasks can
        # restart episodes from it (FrankaStack's demoResets)
        qpos, qvel = task.engine.qpos.clone(), task.engine.qvel.clone()
        if policy is None:
            actions = torch.rand(n, task.num_actions, device=obs.device) * 2 - 1
        else:
            out = policy(obs)                 # rl-games: (mu, sigma); scripted expert: actions
            if isinstance(out, tuple):
                mu, sigma = out
                actions = mu if deterministic else mu + sigma * torch.randn_like(mu)
            else:
                actions = out
        if noise > 0:
            actions = actions + noise * torch.randn_like(actions)
        actions = actions.clamp(-1.0, 1.0)
        next_obs, rew, done, extras = task.step(actions)
        timeout = extras["time_outs"].bool()
        for key, value in (("observations", obs), ("actions", actions), ("rewards", rew),
                           ("terminals", done.bool() & ~timeout), ("timeouts", timeout),
                           ("infos.qpos", qpos), ("infos.qvel", qvel)):
            steps[key].append(value.detach().cpu().clone())
        new = int(done.sum())
        finished += new
        bar.update(min(new, num_episodes - bar.n))
        obs = next_obs["obs"]
    bar.close()
    # (T, N, ...) -> env-major, the first num_episodes complete episodes only (the last step can end
    # more episodes than were still wanted)
    arrays = {k: torch.stack(v, 1).numpy() for k, v in steps.items()}           # (N, T, ...)
    ends = np.logical_or(arrays["terminals"], arrays["timeouts"])                 # (N, T)
    env_ids, times = np.nonzero(ends.T)[::-1]                                     # in order of ending
    keep = np.full(n, -1)
    for e, t in zip(env_ids[:num_episodes], times[:num_episodes]):
        keep[e] = max(keep[e], t)
    out = {k: [] for k in arrays}
    for e in range(n):
        if keep[e] >= 0:
            for k in arrays:
                out[k].append(arrays[k][e, : keep[e] + 1])
    return {k: np.concatenate(v).astype(bool if k in ("terminals", "timeouts") else np.float32)
            for k, v in out.items()}


def relabel_command(data: dict, achieved: np.ndarray, start: int, steps: int) -> dict:
    """Hindsight relabelling: the command slice ``[start, start + 3)`` becomes the mean of what was
    achieved over the next ``steps`` steps of the same episode, so a command-conditioned LLC learns
    what the actions do rather than what the teacher was asked (a teacher that drifts under a
    zero yaw command would otherwise teach that drift as 'straight')."""
    ends = np.nonzero(np.logical_or(data["terminals"], data["timeouts"]))[0]
    t = np.arange(len(achieved))
    episode_end = ends[np.searchsorted(ends, t)] + 1                  # one past the episode's last step
    stop = np.minimum(t + steps, episode_end)
    csum = np.concatenate([np.zeros((1, achieved.shape[1])), np.cumsum(achieved, 0, dtype=np.float64)])
    mean = (csum[stop] - csum[t]) / (stop - t)[:, None]
    out = dict(data)
    out["observations"] = data["observations"].copy()
    out["observations"][:, start:start + achieved.shape[1]] = mean
    return out


def with_mirror(data: dict, maps: dict) -> dict:
    """The data followed by its reflection through the sagittal plane (episodes stay whole)."""
    keys = {"observations": "obs", "actions": "actions", "infos.qpos": "qpos", "infos.qvel": "qvel"}
    mirrored = {k: (v[:, maps[keys[k]][0].numpy()] * maps[keys[k]][1].numpy() if k in keys else v)
                for k, v in data.items()}
    return {k: np.concatenate([data[k], mirrored[k]]).astype(data[k].dtype) for k in data}


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
        check_not_input(output, {"policy": policy_file, "policy config": policy_file.parent.parent / "config.yaml"})
    remove_stale_tmp(output.parent)
    seed = set_seed(cfg.seed, cfg.torch_deterministic)
    if int(cfg.get("torch_threads", 0) or 0) > 0:
        torch.set_num_threads(int(cfg.torch_threads))
    task_cfg = to_dict(cfg.task)
    task_cfg["env"]["numEnvs"] = int(cfg.num_envs)
    task = isaacgym_task_map[cfg.task_name](cfg=task_cfg, rl_device=cfg.rl_device, sim_device=cfg.sim_device,
                                            graphics_device_id=-1, headless=True)
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
