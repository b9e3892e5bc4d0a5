"""rl-games agent for HeLMS-mix high levels: PPO plus two KL regularizers on the policy mean.

The high-level action is K component scores followed by K latents (see ``llc.LowLevelController``).
With p = softmax(scores) and the frozen LLC's per-component latent priors N(m_k, s_k):

    loss += eta_y * KL(p || uniform(K)) + eta_z * sum_k p_k * KL(N(scale * mu_k, sigma) || N(m_k, s_k))

The Gaussian KL is taken with the policy's own sigma, so it pulls the means towards the offline
posteriors and keeps the exploration noise comparable to theirs. Registered as ``hrl_mixture``,
the way IsaacGymEnvs registers its AMP agent.
"""
from __future__ import annotations

import math

import torch

from .rlgames_env import ContinuousAgent
from ..errors import UserError


def mixture_kl_terms(mu: torch.Tensor, sigma: torch.Tensor, k: int, scale: float,
                     prior_mean: torch.Tensor, prior_std: torch.Tensor):
    """(KL to the uniform categorical, expected Gaussian KL to the priors), each (B,)."""
    d = prior_mean.shape[-1]
    p = torch.softmax(mu[:, :k], dim=-1)                                    # (B, K)
    kl_y = (p * (torch.log(p.clamp_min(1e-8)) + math.log(k))).sum(-1)
    mean = scale * mu[:, k:].reshape(-1, k, d)                              # (B, K, d)
    std = scale * sigma[:, k:].reshape(-1, k, d)
    kl = torch.log(prior_std / std) + (std ** 2 + (mean - prior_mean) ** 2) / (2 * prior_std ** 2) - 0.5
    kl_z = (p * kl.sum(-1)).sum(-1)
    return kl_y, kl_z


class MixtureAgent(ContinuousAgent):
    def __init__(self, base_name, params):
        super().__init__(base_name, params)
        mix = self.config.get("hrl_mixture", {})
        self.eta_y, self.eta_z = float(mix.get("eta_y", 0.01)), float(mix.get("eta_z", 0.01))
        # the priors come through the env info (LatentSkillEnv.hl_action_info in mixture mode), not
        # from reaching into the env object: rl-games may hand the agent an env_info without a vec_env
        info = self.env_info.get("hl_action_info")
        if not info:
            raise UserError("train.params.algo.name=hrl_mixture needs a mixture high level: set "
                            "task.env.llc.checkpoint=<LLC with a mixture> task.env.llc.mode=mixture, or use "
                            "a PPO train config (a2c_continuous)")
        self.k, self.scale = int(info["num_skills"]), float(info["latent_scale"])
        self.prior_mean = torch.as_tensor(info["prior_mean"], dtype=torch.float32).to(self.ppo_device)
        self.prior_std = torch.as_tensor(info["prior_std"], dtype=torch.float32).to(self.ppo_device).clamp_min(1e-3)

    def calc_losses(self, actor_loss_func, old_action_log_probs_batch, action_log_probs, advantage,
                    curr_e_clip, value_preds_batch, values, return_batch, mu, entropy, rnn_masks):
        loss, a_loss, c_loss, entropy, b_loss, sum_mask = super().calc_losses(
            actor_loss_func, old_action_log_probs_batch, action_log_probs, advantage, curr_e_clip,
            value_preds_batch, values, return_batch, mu, entropy, rnn_masks)
        sigma = torch.exp(self.model.a2c_network.sigma).expand_as(mu) \
            if self.model.a2c_network.fixed_sigma else torch.ones_like(mu)
        kl_y, kl_z = mixture_kl_terms(mu, sigma, self.k, self.scale, self.prior_mean, self.prior_std)
        self.last_kl = (kl_y.mean().detach(), kl_z.mean().detach())
        self.writer.add_scalar("hrl/kl_uniform_y", self.last_kl[0], self.frame)
        self.writer.add_scalar("hrl/kl_prior_z", self.last_kl[1], self.frame)
        return loss + self.eta_y * kl_y.mean() + self.eta_z * kl_z.mean(), a_loss, c_loss, entropy, b_loss, sum_mask
