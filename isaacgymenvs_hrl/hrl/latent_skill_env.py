"""``LatentSkillEnv``: a VecTask whose action is a high-level skill choice, executed by a frozen LLC.

Each ``step(hl_action)`` decodes the high-level action into a latent, then runs the LLC for k
control steps of the wrapped task on the task's LLC observation slices. A discrete skill y is held
for the k steps while its latent z_t = mid(y, x_t) is decoded again at every step (HeLMS' mid level
follows the state); every other mode holds its latent. rl-games sees an ordinary env: it trains
only the high-level policy.

Per macro step and env: the reward is aggregated over the executed control steps (``sum``,
``mean`` as ASE, or ``smdp``: sum of gamma_ll^i r_i, to be paired with a high-level discount of
gamma_ll^k); an env that ends mid-macro-step stops accumulating, is reset once at the end, and its
``time_outs`` flag is kept for bootstrapping. All of it is batched over envs.

This is the only code that runs an LLC: training, zero-shot exploration, skill videos and
evaluation all step through it (``on_control_step`` sees every control step). The task must be
built with ``auto_reset=False``: the wrapper owns its resets. The LLC and the high level both read
the task's processed observation (``obs_processed``: noised once per control step, clipped), the
view the datasets the LLC was trained on stored.
"""
from __future__ import annotations

import numpy as np
import torch
from ..utils import spaces

from ..errors import UserError
from ..tasks.base.vec_task import named_slices
from .llc import LowLevelController
from .llc_checkpoint import validate_llc_for_task

REWARD_AGGREGATIONS = ("sum", "mean", "smdp")


class LatentSkillEnv:
    def __init__(self, task, llc: LowLevelController, mode: str = "continuous", steps: int | None = None,
                 hl_obs: list | None = None, reward: str = "mean", llc_gamma: float = 0.99,
                 prior: bool = False, hl_latency=None, prior_scale: float = 2.0):
        if reward not in REWARD_AGGREGATIONS:
            raise UserError(f"task.env.llc.reward must be one of {REWARD_AGGREGATIONS}, got '{reward}'")
        if task.auto_reset:
            raise UserError(f"LatentSkillEnv resets its task once per high-level step: build "
                            f"{type(task).__name__} with auto_reset=False")
        validate_llc_for_task(llc, task, mode, hl_obs)
        self.task, self.llc, self.mode = task, llc.to(task.device), mode
        self.steps = llc.decision_steps(steps)
        self.reward_mode, self.llc_gamma = reward, float(llc_gamma)
        self.hl_obs_names = list(hl_obs or task.obs_slices)
        self.num_envs, self.device, self.rl_device = task.num_envs, task.device, task.rl_device
        sizes = task.spec.view_sizes()
        views = {name: sizes[name] for name in self.hl_obs_names}
        self.prior = bool(prior)
        self.prior_scale = float(prior_scale)
        if self.prior:
            anchorable = (mode == "discrete" and llc.skill_prior is not None) or \
                (mode == "continuous" and llc.has_latent_prior)
            if not anchorable:
                raise UserError(f"task.env.llc.prior=True anchors the high level to the LLC's learned prior: a "
                                f"skill prior (mode=discrete) or a latent prior (mode=continuous); "
                                f"{getattr(llc, 'path', 'this LLC')} in mode '{mode}' has none: use an LLC that "
                                "ships one (e.g. franka/stack_helms with task.env.llc.mode=discrete or "
                                "continuous), or set task.env.llc.prior=False")
            if self.prior_scale <= 0:
                raise UserError(f"task.env.llc.prior_scale must be > 0, got {prior_scale}")
            if mode == "discrete":
                views["skill_log_prior"] = llc.num_skills
            elif llc.skill_prior is not None:           # the prior's skill, whose latent a shifts
                views["prior_skill"] = llc.num_skills
        # continuous prior without skills (a fitted p(z | x): LDSE, NPMP): z = mu_p(x_0) + sigma_p(x_0) *
        # prior_scale * a at the decision, held for its k steps; nothing is added to the observation
        self.fitted_prior = self.prior and mode == "continuous" and llc.skill_prior is None
        # continuous prior: the skill each env's next decision runs (chosen by the prior when its
        # observation is made)
        self.anchor_skill = None
        self.obs_slices, self.num_obs = named_slices(views)
        # each env's skill of its last decision; -1: the next decision is its episode's first
        self.previous_skill = torch.full((self.num_envs,), -1, dtype=torch.long, device=self.device)
        self.num_states = 0
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.num_obs,), dtype=np.float32)
        self.action_space = llc.hl_action_space(mode)
        self.num_actions = 1 if mode == "discrete" else int(self.action_space.shape[0])
        self.dt = task.dt * self.steps
        self.max_episode_length = -(-task.max_episode_length // self.steps)
        self.discounts = torch.tensor([self.llc_gamma ** i if reward == "smdp" else 1.0
                                       for i in range(self.steps)], device=self.device)
        self.extras, self.obs_dict = {}, {}
        # a tasks.base.latency.Latency counted in high-level decisions (the env factory builds it from
        # task.env.latency.high_level), or None
        self.hl_latency = hl_latency
        # what a mixture high level's trainer needs of the frozen LLC (rl-games reads it from env info)
        self.hl_action_info = None
        if self.prior and mode == "discrete":
            self.hl_action_info = {"prior": {"kind": "categorical", "dim": llc.num_skills,
                                             "max_decisions": int(self.max_episode_length)}}
        elif self.prior:     # z = mu_p(x) + sigma_p(x) * prior_scale * a: a ~ N(0, 1 / prior_scale^2) is the prior
            self.hl_action_info = {"prior": {"kind": "gaussian", "dim": self.llc.latent_dim,
                                             "std": 1.0 / self.prior_scale,
                                             "max_decisions": int(self.max_episode_length)}}
        if mode == "mixture":
            self.hl_action_info = {"num_skills": llc.num_skills, "latent_scale": llc.latent_scale,
                                   "prior_mean": llc.prior_mean.clone(), "prior_std": llc.prior_std.clone()}

    # ---- VecTask surface ------------------------------------------------------------------------
    def get_number_of_agents(self):
        return 1

    def skill_log_prior(self) -> torch.Tensor:
        """log p(y_t | y_{t-1}, x_t) (N, K) for every env's next decision, on the state the LLC reads."""
        mid_obs = self.task.obs_slice(self.task.obs_processed, self.llc.mid_obs_names)
        return self.llc.skill_log_prior(mid_obs, self.previous_skill).clamp_min(-30.0)

    def _hl_obs(self, env_ids=None) -> dict:
        obs = self.task.obs_slice(self.task.obs_dict["obs"], self.hl_obs_names)
        if self.prior and self.mode == "discrete":
            obs = torch.cat([obs, self.skill_log_prior().to(obs.device)], dim=-1)
        elif self.prior and not self.fitted_prior:
            mid_obs = self.task.obs_slice(self.task.obs_processed, self.llc.mid_obs_names)
            self.anchor_skill = self.llc.prior_skill(mid_obs, self.previous_skill)
            one_hot = torch.nn.functional.one_hot(self.anchor_skill, self.llc.num_skills).to(obs)
            obs = torch.cat([obs, one_hot], dim=-1)
        if self.hl_latency is not None:
            if env_ids is None:                       # one decision for every env: push
                obs = self.hl_latency.delay_observations(obs)
            else:                                     # envs that just started an episode: fill
                rows = self.hl_latency.delay_observations(obs[env_ids], env_ids)
                obs = self.obs_dict.get("obs", obs).clone()
                obs[env_ids] = rows
        self.obs_dict["obs"] = obs
        return self.obs_dict

    def reset(self, env_ids=None) -> dict:
        self.task.reset(env_ids)
        if env_ids is not None:
            env_ids = torch.as_tensor(env_ids, device=self.device, dtype=torch.long).view(-1)
        self.previous_skill[slice(None) if env_ids is None else env_ids] = -1
        if self.hl_latency is not None:
            self.hl_latency.reset(torch.arange(self.num_envs, device=self.device) if env_ids is None else env_ids)
        return self._hl_obs(env_ids)

    def reset_done(self):
        # resets happen inside step; with a high-level delay another _hl_obs() would push a decision
        obs = self.obs_dict if "obs" in self.obs_dict else self._hl_obs()
        return obs, torch.zeros(0, dtype=torch.long, device=self.device)

    @torch.no_grad()
    def step(self, hl_actions, on_control_step=None):
        """One high-level action for k control steps. ``on_control_step(i, actions, alive)``, when
        given, runs after each control step (statistics, video frames)."""
        task, llc, n = self.task, self.llc, self.num_envs
        hl = torch.as_tensor(hl_actions, device=self.device).detach()
        hl = hl.long().view(-1) if self.mode == "discrete" else hl.float()
        if self.hl_latency is not None:
            hl = self.hl_latency.delay_actions(hl)
        # a non-finite high-level action (inf as well as NaN) reaches the task as NaN actions, which it
        # counts in extras["nan_actions"] and resets, as it does a flat policy's
        bad = None if self.mode == "discrete" else ~torch.isfinite(hl).view(n, -1).all(-1)
        mid_obs = task.obs_slice(task.obs_processed, llc.mid_obs_names) if llc.mid_obs_names else None
        anchored = self.prior and self.mode == "continuous" and not self.fitted_prior
        if self.fitted_prior:                       # the fitted prior at the decision's state, shifted by a
            prior_obs = task.obs_slice(task.obs_processed, llc.latent_prior_obs_names)
            z, head, choice = llc.prior_latent(prior_obs, self.prior_scale * hl), None, None
        elif anchored:                              # the prior's skill, shifted by a in units of its std
            choice, shift = self.anchor_skill, self.prior_scale * hl
            mu, std = llc.skill_latent(mid_obs, choice)
            z, head = mu + std * shift, None
        else:
            z, head, choice = llc.decode(self.mode, hl, mid_obs)

        reward = torch.zeros(n, device=self.device)
        alive = torch.ones(n, dtype=torch.bool, device=self.device)
        done = torch.zeros_like(alive)
        time_outs = torch.zeros_like(alive)
        executed = torch.zeros(n, device=self.device)
        saturation = torch.zeros(n, device=self.device)
        for i in range(self.steps):
            if anchored and i > 0:                    # the prior's latent follows the state, the shift is held
                mu, std = llc.skill_latent(task.obs_slice(task.obs_processed, llc.mid_obs_names), choice)
                z = mu + std * shift
            elif self.mode == "discrete" and i > 0:   # the skill is held; its latent follows the state
                z = llc.decode("discrete", hl, task.obs_slice(task.obs_processed, llc.mid_obs_names))[0]
            actions = llc(task.obs_slice(task.obs_processed, llc.obs_names), z, head)
            if bad is not None and i == 0:          # once per high-level action: counted once, env ended
                actions = torch.where(bad[:, None], torch.full_like(actions, float("nan")), actions)
            saturation += alive * (actions.abs() >= 0.99 * llc.action_scale).float().mean(-1)
            _, r, d, extras = task.step(actions)
            reward += torch.where(alive, r.to(self.device) * self.discounts[i], torch.zeros_like(r))
            executed += alive.float()
            d = d.to(self.device).bool()
            newly_done = d & alive
            time_outs |= newly_done & extras["time_outs"].to(self.device).bool()
            done |= newly_done
            alive &= ~d
            if on_control_step is not None:
                on_control_step(i, actions, alive)
        if self.reward_mode == "mean":
            reward = reward / executed.clamp_min(1.0)

        done_ids = done.nonzero(as_tuple=False).squeeze(-1)
        task.reset(done_ids)
        if choice is not None:
            self.previous_skill = torch.where(done, -1, choice.to(self.device))
        if self.hl_latency is not None:
            self.hl_latency.reset(done_ids)
        self.extras = {k: v for k, v in task.extras.items() if k != "time_outs"}
        self.extras["time_outs"] = time_outs.long().to(self.rl_device)
        self.extras["executed_substeps"] = executed.to(self.rl_device)                  # (N,)
        self.extras["llc_saturation"] = (saturation / executed.clamp_min(1.0)).to(self.rl_device)
        self.extras["llc_saturation_mean"] = self.extras["llc_saturation"].mean()
        if choice is not None:
            self.extras["skill"] = choice.to(self.rl_device)                            # (N,)
        return self._hl_obs(), reward.to(self.rl_device), done.long().to(self.rl_device), self.extras

    # ---- pass-through ---------------------------------------------------------------------------
    def obs_slice(self, obs, names):
        return torch.cat([obs[..., self.obs_slices[n]] for n in names], dim=-1)

    def render(self, mode: str = "rgb_array", env_id: int = 0):
        return self.task.render(mode, env_id)

    def set_train_info(self, env_frames, *args, **kwargs):
        self.task.set_train_info(env_frames, *args, **kwargs)

    def get_env_state(self):
        return self.task.get_env_state()

    def set_env_state(self, env_state):
        self.task.set_env_state(env_state)

    def close(self):
        self.task.close()
