"""A high level anchored to the LLC's learned prior (rl-games ``hrl_prior_discrete`` and
``hrl_prior_continuous``).

Over sparse manipulation the skills only explore in the order their prior chains them: sampling
HeLMS' p(y_t | y_{t-1}, x_t) stacks zero-shot, a uniform skill choice explores ~20x worse. Stock
PPO starts uniform and its entropy bonus pulls back towards uniform. Here, as in SPiRL and HeLMS'
transfer objective:

- the policy's logits are log p_prior + delta(x), with delta's last layer at zero, so the
  untrained high level *is* the prior (the env appends the prior's log-probabilities to the
  observation: ``LatentSkillEnv(prior=True)``);
- the entropy bonus is replaced by KL(pi || prior): the model reports -KL as its "entropy", so
  rl-games' own ``- entropy_coef * entropy`` term becomes ``+ coef * KL``;
- the coefficient is fixed (``hrl_prior.kl_coef``) or, with ``hrl_prior.target_kl``, tuned after
  every minibatch towards that divergence (SPiRL's rule: log coef += lr * (KL - target));
- with ``hrl_prior.replay_coef`` > 0, the decisions of the best recent episodes (the top
  ``replay_elite`` share by return) are kept and imitated after every PPO minibatch (self-imitation,
  Oh et al. 2018): PPO sees a rare success once, an off-policy learner such as HeLMS' MPO replays it.

The continuous high level (``LatentSkillEnv(mode="continuous", prior=True)``) acts in the prior's own
units: the env runs z = mu_p(x) + sigma_p(x) * prior_scale * a, so a ~ N(0, 1 / prior_scale^2) is the
prior. The policy's mean starts at 0 and its std at the prior's, and KL(pi || N(0, prior std))
replaces the entropy bonus the same way. A learned skill prior is near-deterministic (one skill per
state), so a categorical policy anchored to it hardly ever varies its choice and PPO has little to
compare; a shift within the chosen skill varies without losing the skills' success rate.
"""
from __future__ import annotations

import math

import torch
from rl_games.algos_torch import model_builder, models, network_builder

from ..errors import UserError
from .rlgames_env import ContinuousAgent, DiscreteAgent

NETWORK_NAME, MODEL_NAME, ALGO_NAME = "prior_actor_critic", "discrete_prior_a2c", "hrl_prior_discrete"
CONTINUOUS_MODEL_NAME, CONTINUOUS_ALGO_NAME = "continuous_prior_a2c", "hrl_prior_continuous"


class PriorAnchoredBuilder(network_builder.A2CBuilder):
    """rl-games' actor-critic MLP whose logits are a residual on the prior's log-probabilities (the
    observation's last K columns). The MLP sees the observation with the prior as probabilities."""

    class Network(network_builder.A2CBuilder.Network):
        def __init__(self, params, **kwargs):
            self.prior_dim = int(kwargs["actions_num"])
            # > 1 flattens the anchor: more variation between decisions for PPO to learn from
            self.prior_temperature = float(params.get("prior_temperature", 1.0))
            if self.prior_temperature <= 0:
                raise UserError(f"train.params.network.prior_temperature must be > 0, got {self.prior_temperature}")
            # > 0 mixes that much of the uniform choice into the anchor: a learned prior puts ~1e-13 on
            # every skill but one, where PPO's gradient on the other skills vanishes; the argmax stays
            self.prior_floor = float(params.get("prior_floor", 0.0))
            if not 0.0 <= self.prior_floor < 1.0:
                raise UserError(f"train.params.network.prior_floor must be in [0, 1), got {self.prior_floor}")
            super().__init__(params, **kwargs)
            if not self.is_discrete:
                raise UserError(f"network.name={NETWORK_NAME} is for a discrete high level (space.discrete)")
            torch.nn.init.zeros_(self.logits.weight)      # delta = 0: the untrained policy is the prior
            torch.nn.init.zeros_(self.logits.bias)

        def forward(self, obs_dict):
            obs, k = obs_dict["obs"], self.prior_dim
            log_prior = self.anchor(obs[..., -k:])
            x = torch.cat([obs[..., :-k], log_prior.exp()], dim=-1)
            logits, value, states = super().forward({**obs_dict, "obs": x})
            return logits + log_prior, value, states

        def anchor(self, log_prior: torch.Tensor) -> torch.Tensor:
            """The distribution the policy starts as and is held near: the prior at the temperature,
            mixed with the uniform choice by ``prior_floor``."""
            log_anchor = torch.log_softmax(log_prior / self.prior_temperature, dim=-1)
            if self.prior_floor == 0.0:
                return log_anchor
            eps = self.prior_floor
            return torch.logaddexp(log_anchor + math.log1p(-eps), torch.full_like(log_anchor, math.log(eps / self.prior_dim)))

    def build(self, name, **kwargs):
        return PriorAnchoredBuilder.Network(self.params, **kwargs)


def categorical_kl(logits: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """KL(softmax(logits) || exp(log_prior)) per row."""
    log_p = torch.log_softmax(logits, dim=-1)
    return (log_p.exp() * (log_p - torch.log_softmax(log_prior, dim=-1))).sum(-1)


class PriorAnchoredModel(models.ModelA2C):
    """rl-games' discrete A2C model that leaves the prior columns out of the input normalizer and
    reports -KL(pi || prior) as the policy's entropy in training."""

    class Network(models.ModelA2C.Network):
        def norm_obs(self, observation):
            k = self.a2c_network.prior_dim
            x = super().norm_obs(observation)
            return torch.cat([x[..., :-k], observation[..., -k:]], dim=-1)

        def forward(self, input_dict):
            log_prior = input_dict["obs"][..., -self.a2c_network.prior_dim:]
            result = super().forward(input_dict)
            if input_dict.get("is_train", True):
                result["entropy"] = -categorical_kl(result["logits"], self.a2c_network.anchor(log_prior))
            return result


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor, prior_std: float) -> torch.Tensor:
    """KL(N(mu, sigma) || N(0, prior_std)) per row, summed over the action dimensions."""
    var = (sigma / prior_std) ** 2
    return 0.5 * (var + (mu / prior_std) ** 2 - 1.0 - torch.log(var)).sum(-1)


class PriorAnchoredContinuousModel(models.ModelA2CContinuousLogStd):
    """rl-games' Gaussian A2C model reporting -KL(pi || N(0, prior std)) as the policy's entropy in
    training (the agent sets ``prior_std`` from the env's ``hl_action_info``)."""

    class Network(models.ModelA2CContinuousLogStd.Network):
        prior_std = 1.0

        def forward(self, input_dict):
            result = super().forward(input_dict)
            if input_dict.get("is_train", True):
                result["entropy"] = -gaussian_kl(result["mus"], result["sigmas"], self.prior_std)
            return result


def anchor_to_prior(model, prior_std: float) -> None:
    """Make a continuous_prior_a2c model the prior N(0, prior_std): mean 0 (its last layer at zero,
    so the rest of the network still learns) and the prior's std."""
    net = model.a2c_network
    model.prior_std = float(prior_std)
    with torch.no_grad():
        torch.nn.init.zeros_(net.mu.weight)
        torch.nn.init.zeros_(net.mu.bias)
        net.sigma.fill_(math.log(prior_std))


class PriorAnchoring:
    """What both anchored agents add to rl-games' PPO (mixed in before the agent class):

    - the coefficient of KL(pi || prior), which takes rl-games' ``entropy_coef`` slot (the models
      report -KL as their entropy): fixed, or tuned towards ``hrl_prior.target_kl`` after every
      minibatch (SPiRL's rule: log coef += lr * (KL - target));
    - with ``hrl_prior.replay_coef`` > 0, one imitation step towards the elite episodes' actions after
      every PPO minibatch."""

    def init_anchoring(self, info: dict, seed) -> None:
        cfg = self.config.get("hrl_prior") or {}
        coef = float(cfg.get("kl_coef", 0.01))
        target = cfg.get("target_kl", None)
        self.target_kl = None if target in (None, "") else float(target)
        self.coef_lr = float(cfg.get("coef_lr", 0.02))
        if coef <= 0 or (self.target_kl is not None and self.target_kl <= 0) or self.coef_lr <= 0:
            raise UserError(f"train.params.config.hrl_prior: kl_coef ({coef}), target_kl ({self.target_kl}) and "
                            f"coef_lr ({self.coef_lr}) must be > 0 (leave target_kl empty for a fixed coefficient)")
        self.log_coef = math.log(coef)
        self.entropy_coef = coef
        self._kls, self._replay_ces = [], []
        self.replay_coef = float(cfg.get("replay_coef", 0.0))
        self.replay_batch = int(cfg.get("replay_batch", 256))
        elite, size = float(cfg.get("replay_elite", 0.05)), int(cfg.get("replay_size", 20000))
        if self.replay_coef < 0 or not 0 < elite <= 1 or size < 1 or self.replay_batch < 1:
            raise UserError(f"train.params.config.hrl_prior: replay_coef ({self.replay_coef}) must be >= 0, "
                            f"replay_elite ({elite}) in (0, 1], replay_size ({size}) and replay_batch "
                            f"({self.replay_batch}) >= 1")
        self.replay = EliteReplay(self.num_actors, self.obs_shape[0], elite, size,
                                  max_len=int(info.get("max_decisions", 1000)) + 1,
                                  act_dim=None if self.is_discrete else self.actions_num, device=self.ppo_device) \
            if self.replay_coef > 0 else None
        self._replay_gen = torch.Generator().manual_seed(int(seed or 0))

    def env_step(self, actions):
        obs_before = self.obs["obs"].clone() if self.replay is not None else None
        obs, rewards, dones, infos = super().env_step(actions)
        if self.replay is not None:
            self.replay.add(obs_before, actions, rewards, dones)
        return obs, rewards, dones, infos

    def _imitate_elites(self) -> None:
        """One gradient step of the elite episodes' negative log-likelihood under the policy."""
        obs, actions = self.replay.sample(self.replay_batch, self._replay_gen)
        rms = getattr(self.model, "running_mean_std", None)
        if rms is not None:
            rms.eval()                              # replayed observations must not move the normalizer
        out = self.model({"is_train": True, "prev_actions": actions, "obs": obs})
        if rms is not None:
            rms.train()
        nll = out["prev_neglogp"].mean()
        self.optimizer.zero_grad()
        (self.replay_coef * nll).backward()
        self.trancate_gradients_and_step()          # rl-games' own: gradients averaged over ranks, clipped
        self._replay_ces.append(float(nll.detach()))

    def train_actor_critic(self, input_dict):
        result = super().train_actor_critic(input_dict)
        self.track_kl(result)
        if self.replay is not None and self._over_ranks(float(len(self.replay.obs) >= self.replay_batch), "min"):
            self._imitate_elites()
        return result

    def train_epoch(self):
        out = super().train_epoch()
        self.log_kl()
        if self._replay_ces:
            self.writer.add_scalar("hrl/replay_cross_entropy", sum(self._replay_ces) / len(self._replay_ces), self.frame)
            self.writer.add_scalar("hrl/replay_decisions", len(self.replay.obs), self.frame)
            self._replay_ces = []
        return out

    def _over_ranks(self, value: float, op: str = "mean") -> float:
        """The same number on every rank (multi_gpu): the mean or the minimum over the ranks."""
        if not getattr(self, "multi_gpu", False):
            return value
        import torch.distributed as dist
        t = torch.tensor([value], dtype=torch.float64, device=self.ppo_device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN if op == "min" else dist.ReduceOp.SUM)
        return float(t) if op == "min" else float(t) / self.world_size

    def track_kl(self, result) -> None:
        # every rank tunes the coefficient on the same value
        kl = self._over_ranks(-float(result[2].detach()))
        self._kls.append(kl)
        if self.target_kl is not None:
            self.log_coef = min(max(self.log_coef + self.coef_lr * (kl - self.target_kl), math.log(1e-5)),
                                math.log(10.0))
            self.entropy_coef = math.exp(self.log_coef)

    def log_kl(self) -> None:
        if self._kls:
            self.writer.add_scalar("hrl/kl_prior", sum(self._kls) / len(self._kls), self.frame)
            self.writer.add_scalar("hrl/kl_coef", self.entropy_coef, self.frame)
            self._kls = []

    def get_full_state_weights(self):
        state = super().get_full_state_weights()
        state["hrl_prior_log_coef"] = torch.tensor(self.log_coef)
        return state

    def set_full_state_weights(self, weights, set_epoch=True):
        super().set_full_state_weights(weights, set_epoch=set_epoch)
        if "hrl_prior_log_coef" in weights:
            self.log_coef = float(weights["hrl_prior_log_coef"])
            self.entropy_coef = math.exp(self.log_coef)


class EliteReplay:
    """The (observation, action) pairs of the best recent episodes, collected over all envs at once.

    Every env's decisions are kept until its episode ends; an ended episode whose return is at least
    the (1 - elite) quantile of the last ``window`` ended episodes, and above their median, joins the
    buffer (first in, first out, ``size`` decisions)."""

    def __init__(self, num_envs: int, obs_dim: int, elite: float, size: int, window: int = 512,
                 max_len: int = 1000, act_dim: int | None = None, device="cpu"):
        self.elite, self.size, self.max_len = elite, size, max_len
        self.obs_hist = torch.zeros(max_len, num_envs, obs_dim, device=device)
        # act_dim None: one skill index per decision; else a continuous action of act_dim
        self.act_shape, self.act_dtype = ((), torch.long) if act_dim is None else ((act_dim,), torch.float32)
        self.act_hist = torch.zeros(max_len, num_envs, *self.act_shape, dtype=self.act_dtype, device=device)
        self.length = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.ret = torch.zeros(num_envs, device=device)
        self.recent = torch.zeros(0, device=device)
        self.window = window
        self.obs = torch.zeros(0, obs_dim, device=device)
        self.act = torch.zeros(0, *self.act_shape, dtype=self.act_dtype, device=device)

    def add(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, dones: torch.Tensor) -> None:
        envs = torch.arange(len(obs), device=obs.device)
        step = self.length.clamp_max(self.max_len - 1)          # an over-long episode keeps its last slot
        self.obs_hist[step, envs] = obs
        self.act_hist[step, envs] = actions.reshape(len(obs), *self.act_shape).to(self.act_dtype)
        self.length += 1
        self.ret += rewards.view(-1)
        ended = dones.view(-1).bool().nonzero(as_tuple=False).view(-1)
        if len(ended):
            self.recent = torch.cat([self.recent, self.ret[ended]])[-self.window:]
            # above the median too: under a sparse reward most returns are 0, and 0 is no elite
            bar, median = torch.quantile(self.recent, 1.0 - self.elite), self.recent.median()
            ret = self.ret[ended]
            for e in ended[(ret >= bar) & (ret > median)].tolist():     # this step's few elite episodes
                n = int(self.length[e].clamp_max(self.max_len))
                self.obs = torch.cat([self.obs, self.obs_hist[:n, e]])[-self.size:]
                self.act = torch.cat([self.act, self.act_hist[:n, e]])[-self.size:]
            self.length[ended] = 0
            self.ret[ended] = 0.0

    def sample(self, batch: int, gen: torch.Generator):
        idx = torch.randint(len(self.obs), (batch,), generator=gen).to(self.obs.device)
        return self.obs[idx], self.act[idx]


class PriorAnchoredAgent(PriorAnchoring, DiscreteAgent):
    """rl-games' discrete PPO whose entropy term is the KL to the prior, with its coefficient."""

    def __init__(self, base_name, params):
        super().__init__(base_name, params)
        info = (self.env_info.get("hl_action_info") or {}).get("prior") or {}
        if info.get("kind") != "categorical" or int(info.get("dim", -1)) != self.actions_num:
            raise UserError(f"train.params.algo.name={ALGO_NAME} needs the skill prior in the high level's "
                            "observation: set task.env.llc.prior=True with a discrete LLC that ships one "
                            "(task.env.llc.checkpoint=franka/stack_helms task.env.llc.mode=discrete)")
        if params.get("network", {}).get("name") != NETWORK_NAME or params.get("model", {}).get("name") != MODEL_NAME:
            raise UserError(f"train.params.algo.name={ALGO_NAME} needs network.name={NETWORK_NAME} and "
                            f"model.name={MODEL_NAME} (see cfg/train/HRLPriorPPO.yaml)")
        self.init_anchoring(info, params.get("seed"))


class PriorAnchoredContinuousAgent(PriorAnchoring, ContinuousAgent):
    """rl-games' continuous PPO in the prior's units: mean 0 and the prior's std at the start, and
    KL(pi || N(0, prior std)) in place of the entropy bonus."""

    def __init__(self, base_name, params):
        super().__init__(base_name, params)
        info = (self.env_info.get("hl_action_info") or {}).get("prior") or {}
        if info.get("kind") != "gaussian" or int(info.get("dim", -1)) != self.actions_num:
            raise UserError(f"train.params.algo.name={CONTINUOUS_ALGO_NAME} needs a latent prior to anchor to: set "
                            "task.env.llc.prior=True with task.env.llc.mode=continuous and an LLC that ships one "
                            "(task.env.llc.checkpoint=franka/stack_helms)")
        net = self.model.a2c_network
        if params.get("model", {}).get("name") != CONTINUOUS_MODEL_NAME or not getattr(net, "fixed_sigma", False):
            raise UserError(f"train.params.algo.name={CONTINUOUS_ALGO_NAME} needs model.name={CONTINUOUS_MODEL_NAME} "
                            "and network.space.continuous.fixed_sigma=True (see cfg/train/HRLPriorContinuousPPO.yaml)")
        anchor_to_prior(self.model, float(info["std"]))
        self.init_anchoring(info, params.get("seed"))


def register() -> None:
    """The network and model names rl-games' builders look up (as IsaacGymEnvs registers AMP's)."""
    model_builder.register_network(NETWORK_NAME, PriorAnchoredBuilder)
    model_builder.register_model(MODEL_NAME, PriorAnchoredModel)
    model_builder.register_model(CONTINUOUS_MODEL_NAME, PriorAnchoredContinuousModel)
