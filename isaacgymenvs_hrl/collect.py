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
from isaacgymenvs_hrl.utils.config import register_resolvers, to_dict
from isaacgymenvs_hrl.utils.provenance import provenance

register_resolvers()


def load_rlgames_policy(checkpoint: str, num_obs: int, num_actions: int, device: str = "cpu"):
    """Rebuild an rl-games actor from its checkpoint and the run's saved config; returns obs -> (mu, sigma)."""
    from rl_games.algos_torch.model_builder import ModelBuilder

    ckpt_path = Path(checkpoint)
    if not ckpt_path.is_file():
        raise UserError(f"policy checkpoint not found: {checkpoint}")
    run_cfg = ckpt_path.parent.parent / "config.yaml"
    if not run_cfg.is_file():
        raise UserError(f"{run_cfg} not found: hrl-collect reads the network of policy={checkpoint} from "
                        "the config.yaml that hrl-train writes next to nn/")
    params = yaml.safe_load(run_cfg.read_text())["train"]["params"]
    net = ModelBuilder().load(params).build({
        "actions_num": num_actions, "input_shape": (num_obs,), "num_seqs": 1, "value_size": 1,
        "normalize_value": params["config"].get("normalize_value", False),
        "normalize_input": params["config"].get("normalize_input", False)})
    state = torch.load(ckpt_path, map_location=device, weights_only=False)["model"]
    state = {k.replace("_orig_mod.", ""): v for k, v in state.items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"policy={checkpoint} does not fit this task ({num_obs} observations, "
                        f"{num_actions} actions): {str(exc).splitlines()[0]}") from None
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
    # (T, N, ...) -> env-major, complete episodes only
    arrays = {k: torch.stack(v, 1).numpy() for k, v in steps.items()}           # (N, T, ...)
    ends = np.logical_or(arrays["terminals"], arrays["timeouts"])                 # (N, T)
    out = {k: [] for k in arrays}
    for e in range(n):
        last = np.nonzero(ends[e])[0]
        if len(last):
            for k in arrays:
                out[k].append(arrays[k][e, : last[-1] + 1])
    return {k: np.concatenate(v).astype(bool if k in ("terminals", "timeouts") else np.float32)
            for k, v in out.items()}


@hydra.main(version_base="1.1", config_name="collect", config_path=str(CFG_DIR))
@exit_on_user_error
def main_hydra(cfg: DictConfig) -> None:
    from isaacgymenvs_hrl.tasks import isaacgym_task_map
    from isaacgymenvs_hrl.utils.seeding import set_seed

    if cfg.task_name not in isaacgym_task_map:
        raise UserError(f"unknown task '{cfg.task_name}'; available: {', '.join(sorted(isaacgym_task_map))}")
    if int(cfg.num_episodes) <= 0:
        raise UserError(f"num_episodes must be positive, got {cfg.num_episodes}")
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
        policy = None if cfg.policy == "random" else load_rlgames_policy(
            cfg.policy, task.num_obs, task.num_actions, cfg.rl_device)
    t0 = time.time()
    data = collect(task, policy, int(cfg.num_episodes), noise, bool(cfg.deterministic))
    elapsed = time.time() - t0
    meta = {"task": cfg.task_name, "obs_layout": [[k, s.stop - s.start] for k, s in task.obs_slices.items()],
            "control_dt": task.dt, "control_type": getattr(task, "control_type", None),
            "task_family": getattr(task, "task_family", None), "num_actions": task.num_actions,
            "policy": str(cfg.policy), "noise": float(cfg.noise), "task_config": task_cfg,
            **provenance(seed=seed)}
    path = write_dataset(cfg.output, data, meta)
    episodes = int(data["terminals"].sum() + data["timeouts"].sum())
    print(f"wrote {path}: {len(data['actions'])} steps, {episodes} episodes, mean return "
          f"{data['rewards'].sum() / max(episodes, 1):.2f}, {elapsed:.1f} s")


def main() -> None:
    main_hydra()


if __name__ == "__main__":
    main()
