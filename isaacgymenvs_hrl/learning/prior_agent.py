"""A high level anchored to the LLC's learned skill prior (rl-games ``hrl_prior_discrete``).

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
  every minibatch towards that divergence (SPiRL's rule: log coef += lr * (KL - target)).
"""
from __future__ import annotations

import math

import torch
from rl_games.algos_torch import model_builder, models, network_builder

from ..errors import UserError
from .rlgames_env import DiscreteAgent

NETWORK_NAME, MODEL_NAME, ALGO_NAME = "prior_actor_critic", "discrete_prior_a2c", "hrl_prior_discrete"


class PriorAnchoredBuilder(network_builder.A2CBuilder):
    """rl-games' actor-critic MLP whose logits are a residual on the prior's log-probabilities (the
    observation's last K columns). The MLP sees the observation with the prior as probabilities."""

    class Network(network_builder.A2CBuilder.Network):
        def __init__(self, params, **kwargs):
            self.prior_dim = int(kwargs["actions_num"])
            super().__init__(params, **kwargs)
            if not self.is_discrete:
                raise UserError(f"network.name={NETWORK_NAME} is for a discrete high level (space.discrete)")
            torch.nn.init.zeros_(self.logits.weight)      # delta = 0: the untrained policy is the prior
            torch.nn.init.zeros_(self.logits.bias)

        def forward(self, obs_dict):
            obs, k = obs_dict["obs"], self.prior_dim
            log_prior = torch.log_softmax(obs[..., -k:], dim=-1)
            x = torch.cat([obs[..., :-k], log_prior.exp()], dim=-1)
            logits, value, states = super().forward({**obs_dict, "obs": x})
            return logits + log_prior, value, states

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
                result["entropy"] = -categorical_kl(result["logits"], log_prior)
            return result


class PriorAnchoredAgent(DiscreteAgent):
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
        self._kls = []

    def train_actor_critic(self, input_dict):
        result = super().train_actor_critic(input_dict)
        kl = -float(result[2].detach())            # the model's "entropy" is -KL(pi || prior)
        self._kls.append(kl)
        if self.target_kl is not None:
            self.log_coef = min(max(self.log_coef + self.coef_lr * (kl - self.target_kl), math.log(1e-5)),
                                math.log(10.0))
            self.entropy_coef = math.exp(self.log_coef)
        return result

    def train_epoch(self):
        out = super().train_epoch()
        if self._kls:
            self.writer.add_scalar("hrl/kl_prior", sum(self._kls) / len(self._kls), self.frame)
            self.writer.add_scalar("hrl/kl_coef", self.entropy_coef, self.frame)
            self._kls = []
        return out

    def get_full_state_weights(self):
        state = super().get_full_state_weights()
        state["hrl_prior_log_coef"] = torch.tensor(self.log_coef)
        return state

    def set_full_state_weights(self, weights, set_epoch=True):
        super().set_full_state_weights(weights, set_epoch=set_epoch)
        if "hrl_prior_log_coef" in weights:
            self.log_coef = float(weights["hrl_prior_log_coef"])
            self.entropy_coef = math.exp(self.log_coef)


def register() -> None:
    """The network and model names rl-games' builders look up (as IsaacGymEnvs registers AMP's)."""
    model_builder.register_network(NETWORK_NAME, PriorAnchoredBuilder)
    model_builder.register_model(MODEL_NAME, PriorAnchoredModel)
