"""Start a high level's rl-games actor from the skill method's own inference instead of from random weights.

LDSE infers which skill a stretch of behaviour is by encoding its local dynamics (the segment
encoder, ``SkillMatcher``). Applied to the demonstrations the LLC was learned from, it labels every
high-level decision point (every k steps) with the latent that reproduces the next segment; the
high level's actor is then regressed onto those labels before PPO starts, so the first rollouts
already follow the demonstrations through the skill space.

HeLMS (discrete mode) ships its skill prior p(y_t | y_{t-1}, x_t): run along each demonstration
(each step's previous skill is the prior's most likely one), it gives the skill distribution at
every decision point, and the actor's logits are fitted to it by cross-entropy. The high level then
starts as the prior that stacks zero-shot (what PPO keeps of it is measured in docs/skills.md).

Flat PPO can start the same way from behaviour cloning (``bc_init``): its actor's mean is fitted to
the demonstrations' actions, the baseline that skill methods are measured against as "BC fine-tuning".
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..datasets.hdf5 import episode_ids, load_dataset, take_slices
from ..datasets.windows import window_indices, window_starts
from ..errors import UserError
from ..hrl.segment_encoder import SkillMatcher, encoder_path


def matched_targets(data: dict, llc, matcher, hl_obs_names, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(high-level observations (M, O), high-level actions (M, d)) at the start of every k-step
    decision inside an episode of ``data``; actions are the matched latents over the encoder's
    horizon, divided by the LLC's latent scale and clipped to the high level's box."""
    h = matcher.horizon
    starts = window_starts(episode_ids(data), h, k)
    if len(starts) == 0:
        raise UserError(f"skill matching: no episode of the dataset lasts {h} steps (the encoder's horizon)")
    idx = torch.from_numpy(window_indices(starts, h))                                  # (M, h)
    pol, hl_obs = take_slices(data, llc.obs_names), take_slices(data, hl_obs_names)
    act = torch.from_numpy(data["actions"].astype(np.float32))
    z = torch.cat([matcher(pol[b], act[b]) for b in idx.split(4096)])
    return hl_obs[torch.from_numpy(starts)], (z / llc.latent_scale).clamp(-1.0, 1.0)


def prior_targets(data: dict, llc, hl_obs_names, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(high-level observations (M, O), skill probabilities (M, K)) at the start of every k-step
    decision of ``data``: the LLC's skill prior, chained greedily along each episode."""
    with torch.no_grad():
        mid = take_slices(data, llc.mid_obs_names)
        rows = torch.cat([llc.skill_prior_rows(b).exp() for b in mid.split(8192)])     # (N, K+1, K)
    ep = episode_ids(data)
    first = np.r_[True, ep[1:] != ep[:-1]]
    probs, prev = torch.empty(len(ep), llc.num_skills), llc.num_skills
    for t in range(len(ep)):
        probs[t] = rows[t, llc.num_skills if first[t] else prev]
        prev = int(probs[t].argmax())
    step_in_episode = np.arange(len(ep)) - np.flatnonzero(first)[ep]          # episode ids run 0, 1, ...
    decision = torch.from_numpy(np.flatnonzero(step_in_episode % k == 0))
    return take_slices(data, hl_obs_names)[decision], probs[decision]


def pretrain_actor(model, obs: torch.Tensor, targets: torch.Tensor, epochs: int = 200, lr: float = 1e-3,
                   seed: int = 0, log=print, discrete: bool = False, what: str = "skill matching") -> float:
    """Set rl-games' input normalizer from ``obs`` and fit the actor to ``targets``: its mean by MSE
    (continuous), or its logits to the target probabilities by cross-entropy (``discrete``).
    Returns the final loss. ``model`` is an rl-games A2C model (``algo.model``)."""
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
    def loss_of(out, target):
        if discrete:
            return -(target * torch.log_softmax(out, -1)).sum(-1).mean()
        return ((out - target) ** 2).mean()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen).to(dev)
        for b in perm.split(256):
            loss = loss_of(net({"obs": x[b]})[0], targets[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        final = float(loss_of(net({"obs": x})[0], targets))
    model.train(was_training)
    if discrete:
        entropy = float(-(targets * targets.clamp_min(1e-8).log()).sum(-1).mean())
        log(f"skill prior: high-level actor fitted to {len(x)} decisions, cross-entropy {final:.4f} "
            f"(the targets' own entropy {entropy:.4f})")
    else:
        log(f"{what}: actor fitted to {len(x)} targets, MSE {final:.4f} "
            f"(target variance {float(targets.var(0).mean()):.4f})")
    return final


def skill_matching_init(dataset: str, encoder: str, llc, hl_obs_names, k: int, epochs: int, seed: int,
                        mode: str = "continuous"):
    """The callback ``HealthObserver(init_actor=...)`` runs on the freshly built rl-games agent."""
    algorithm = llc.spec["provenance"].get("algorithm")
    if algorithm == "helms" and llc.skill_prior is not None:
        if mode != "discrete":
            raise UserError("task.env.llc.match_init over HeLMS starts a discrete high level from the skill "
                            f"prior: set task.env.llc.mode=discrete (got {mode})")
        data, _ = load_dataset(dataset, require_slices=list(llc.mid_obs_names) + list(hl_obs_names))
        obs, targets = prior_targets(data, llc, hl_obs_names, k)

        def init_from_prior(algo) -> None:
            if targets.shape[1] != algo.actions_num or obs.shape[1] != algo.obs_shape[0]:
                raise UserError(f"skill prior: targets {tuple(targets.shape)} / observations {tuple(obs.shape)} "
                                f"do not fit the high level ({algo.actions_num} actions, {algo.obs_shape} obs)")
            pretrain_actor(algo.model, obs, targets, epochs=epochs, seed=seed, discrete=True)
        return init_from_prior
    if algorithm != "ldse":
        raise UserError(f"task.env.llc.match_init needs an LDSE LLC (skill matching) or a HeLMS LLC with a "
                        f"skill prior; {getattr(llc, 'path', 'this LLC')} is {algorithm}")
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


def bc_init(dataset: str, epochs: int, seed: int):
    """The callback that starts a flat actor by behaviour cloning: its mean regressed onto the actions
    of ``dataset`` (hrl-collect of the same task: its observations are the task's), clipped to [-1, 1]."""
    data, meta = load_dataset(dataset)
    obs = torch.from_numpy(data["observations"].astype(np.float32))
    actions = torch.from_numpy(data["actions"].astype(np.float32)).clamp(-1.0, 1.0)

    def init(algo) -> None:
        if actions.shape[1] != algo.actions_num or obs.shape[1] != algo.obs_shape[0]:
            raise UserError(f"bc_init: {dataset} has {obs.shape[1]} observations and {actions.shape[1]} actions "
                            f"per step, the task {algo.obs_shape[0]} and {algo.actions_num}; give a dataset "
                            f"collected on this task (it was collected on {meta.get('task', 'another task')})")
        pretrain_actor(algo.model, obs, actions, epochs=epochs, seed=seed, what="behaviour cloning")
    return init
