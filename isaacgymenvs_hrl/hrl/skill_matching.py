"""Start a high level from LDSE's skill matching instead of from random weights.

LDSE infers which skill a stretch of behaviour is by encoding its local dynamics (the segment
encoder, ``SkillMatcher``). Applied to the demonstrations the LLC was learned from, it labels every
high-level decision point (every k steps) with the latent that reproduces the next segment; the
high level's actor is then regressed onto those labels before PPO starts, so the first rollouts
already follow the demonstrations through the skill space.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..datasets.hdf5 import episode_ids, load_dataset
from ..errors import UserError


def matched_targets(data: dict, llc, matcher, hl_obs_names, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(high-level observations (M, O), high-level actions (M, d)) at the start of every k-step
    decision inside an episode of ``data``; actions are the matched latents over the encoder's
    horizon, divided by the LLC's latent scale and clipped to the high level's box."""
    from ..skills.common import take_slices
    from ..skills.segments import window_indices, window_starts
    h = matcher.horizon
    starts = window_starts(episode_ids(data), h, k)
    if len(starts) == 0:
        raise UserError(f"skill matching: no episode of the dataset lasts {h} steps (the encoder's horizon)")
    idx = torch.from_numpy(window_indices(starts, h))                                  # (M, h)
    pol, hl_obs = take_slices(data, llc.obs_names), take_slices(data, hl_obs_names)
    act = torch.from_numpy(data["actions"].astype(np.float32))
    z = torch.cat([matcher(pol[b], act[b]) for b in idx.split(4096)])
    return hl_obs[torch.from_numpy(starts)], (z / llc.latent_scale).clamp(-1.0, 1.0)


def pretrain_actor(model, obs: torch.Tensor, targets: torch.Tensor, epochs: int = 200, lr: float = 1e-3,
                   seed: int = 0, log=print) -> float:
    """Set rl-games' input normalizer from ``obs`` and fit the actor's mean to ``targets`` by MSE;
    returns the final MSE. ``model`` is an rl-games continuous A2C model (``algo.model``)."""
    dev = next(model.parameters()).device
    obs, targets = obs.to(dev), targets.to(dev)
    if getattr(model, "normalize_input", False):
        rms = model.running_mean_std
        rms.running_mean.copy_(obs.double().mean(0))
        rms.running_var.copy_(obs.double().var(0))
        rms.count.fill_(float(len(obs)))
    was_training = model.training
    model.eval()                                          # the normalizer must not update here
    x = model.norm_obs(obs)
    net = model.a2c_network
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen).to(dev)
        for b in perm.split(256):
            loss = ((net({"obs": x[b]})[0] - targets[b]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        mse = float(((net({"obs": x})[0] - targets) ** 2).mean())
    model.train(was_training)
    log(f"skill matching: high-level actor fitted to {len(x)} matched latents, MSE {mse:.4f} "
        f"(target variance {float(targets.var(0).mean()):.4f})")
    return mse


def skill_matching_init(dataset: str, encoder: str, llc, hl_obs_names, k: int, epochs: int, seed: int):
    """The callback ``HealthObserver(init_actor=...)`` runs on the freshly built rl-games agent."""
    from ..skills.ldse import SkillMatcher, encoder_path
    if llc.spec["provenance"].get("algorithm") != "ldse":
        raise UserError(f"task.env.llc.match_init needs an LDSE LLC (skill matching is LDSE's inference "
                        f"rule); {getattr(llc, 'path', 'this LLC')} is {llc.spec['provenance'].get('algorithm')}")
    enc = Path(encoder) if encoder else encoder_path(getattr(llc, "path", ""))
    if not enc.is_file():
        raise UserError(f"task.env.llc.match_init: the LDSE encoder {enc} is not there; hrl-skills algo=ldse "
                        "writes it next to the LLC (<name>.encoder.pt), or pass task.env.llc.match_encoder=PATH")
    matcher = SkillMatcher.load(enc)
    data, _ = load_dataset(dataset, require_slices=list(llc.obs_names) + list(hl_obs_names))
    obs, targets = matched_targets(data, llc, matcher, hl_obs_names, k)

    def init(algo) -> None:
        if targets.shape[1] != algo.actions_num or obs.shape[1] != algo.obs_shape[0]:
            raise UserError(f"skill matching: targets {tuple(targets.shape)} / observations {tuple(obs.shape)} "
                            f"do not fit the high level ({algo.actions_num} actions, {algo.obs_shape} obs)")
        pretrain_actor(algo.model, obs, targets, epochs=epochs, seed=seed)
    return init
