"""rl-games algo observer that puts the tasks' health counters on the console, not only in TensorBoard.

Tasks count NaN actions and diverging (unstable) envs cumulatively in ``extras["nan_actions"]`` and
``extras["unstable_envs"]``; both envs are reset, so training goes on silently. This observer prints
them per epoch when they grow and in the final summary, and stops the run with a ``UserError`` when
most actions of an epoch were NaN (the policy has diverged; nothing more can be learned). Its
``Episode/*`` scalars are means over the epoch's ended episodes (IsaacGymEnvs' observer weighs
each step alike, stale values included).
"""
from __future__ import annotations

import torch
from rl_games.algos_torch import torch_ext
from rl_games.common.algo_observer import IsaacAlgoObserver

from ..errors import UserError

# an epoch in which more than this share of the actions was NaN stops the run
NAN_STOP_FRACTION = 0.5


class TrainingDivergedError(UserError):
    pass


def _count(value) -> int | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return int(value.item())
    if isinstance(value, (int, float)):
        return int(value)
    return None


class HealthObserver(IsaacAlgoObserver):
    """IsaacGymEnvs' observer (episode terms, scalars to TensorBoard) plus NaN/unstable accounting."""

    def __init__(self, log=print, stop_fraction: float = NAN_STOP_FRACTION, num_envs: int | None = None,
                 actions_per_step: int = 1, max_seconds: float | None = None, init_actor=None,
                 actor_warmup: int = 0):
        """``actions_per_step``: task actions per env step the algorithm sees (k for an LLC's macro step).
        ``max_seconds``: end training (with rl-games' final checkpoint) once its clock passes this.
        ``init_actor(algo)``: runs once on the new agent, before training (and before a checkpoint
        given with ``checkpoint=`` is restored, which then wins). ``actor_warmup``: epochs after it
        during which only the value head learns, so that PPO's first advantages come from a
        trained critic instead of moving the pre-trained actor off its start."""
        super().__init__()
        self.init_actor, self.actor_warmup = init_actor, max(int(actor_warmup), 0)
        self._frozen = []
        self.max_seconds = max_seconds
        self.actions_per_step = max(int(actions_per_step), 1)
        self.log, self.stop_fraction = log, stop_fraction
        self.nan_total = self.unstable_total = 0       # cumulative counts as last reported by the env
        self.steps = 0                                 # env steps (vectorised) seen since the start
        self._epoch_start = (0, 0, 0)                  # (steps, nan, unstable) at the last print
        self._last = None
        self.num_envs = num_envs or 1                  # set from the algorithm in after_init otherwise
        self._envs_given = num_envs is not None

    def after_init(self, algo):
        self.algo = algo
        device = getattr(algo, "ppo_device", None) or getattr(algo, "device", "cpu")
        self.mean_scores = torch_ext.AverageMeter(1, getattr(algo, "games_to_track", 100)).to(device)
        self.ep_infos, self.direct_info = [], {}
        self.writer = algo.writer
        if not self._envs_given:
            self.num_envs = int(getattr(algo, "num_actors", 1)) * int(getattr(algo, "num_agents", 1) or 1)
        if self.init_actor is not None:
            self.init_actor(algo)
            if self.actor_warmup:
                self._frozen = [p for n, p in algo.model.a2c_network.named_parameters()
                                if p.requires_grad and not n.startswith("value")]
                for p in self._frozen:
                    p.requires_grad_(False)
                self.log(f"actor frozen for {self.actor_warmup} epochs while the value head learns")

    def process_infos(self, infos, done_indices):
        # IsaacGymEnvs' scalar logging, episodes below; a multi-rank run logs rank 0's (the others never
        # print, so they keep nothing)
        if hasattr(self, "algo") and getattr(self.algo, "global_rank", 0) == 0:
            episode = infos.get("episode") if isinstance(infos, dict) else None
            super().process_infos({k: v for k, v in infos.items() if k != "episode"}
                                  if episode is not None else infos, done_indices)
            if episode is not None:
                self._add_episode_stats(episode, done_indices)
        self.steps += 1
        self._last = infos                  # read at the print, once per epoch (no device sync per step)

    def _add_episode_stats(self, episode: dict, done_indices) -> None:
        """IsaacGymEnvs' observer appends the task's last ``extras["episode"]`` at every step, so a
        batch of episodes that ended together counts once per step until the next reset, whatever
        its size. Keep it only on steps where episodes ended, once per ended episode: the epoch's
        ``Episode/*`` is then the mean over its episodes."""
        ended = 0 if done_indices is None else len(done_indices)
        if ended:
            self.ep_infos.append({k: (v.reshape(1).expand(ended) if isinstance(v, torch.Tensor) and v.numel() == 1
                                      else torch.full((ended,), float(v)) if isinstance(v, (int, float)) else v)
                                  for k, v in episode.items()})

    def _read(self) -> None:
        if not isinstance(self._last, dict):
            return
        nan, unstable = _count(self._last.get("nan_actions")), _count(self._last.get("unstable_envs"))
        if nan is not None:
            self.nan_total = nan
        if unstable is not None:
            self.unstable_total = unstable

    def after_print_stats(self, frame, epoch_num, total_time):
        super().after_print_stats(frame, epoch_num, total_time)
        self.check_epoch(epoch_num)
        if self.max_seconds is not None and hasattr(self, "algo"):
            stop = total_time >= self.max_seconds
            decide = getattr(self.algo, "rank0_decides", None)     # every rank stops at rank 0's epoch
            if decide is not None:
                stop = decide(stop)
            if stop:
                if getattr(self.algo, "global_rank", 0) == 0:
                    self.log(f"max_time: {total_time:.0f} s of training reached at epoch {epoch_num}; stopping")
                self.algo.max_epochs = epoch_num  # rl-games saves its last checkpoint and exits this epoch

    def after_train_epoch(self, epoch_num) -> None:
        """Called by the agents (learning.distributed.DataParallel) after each epoch's update, on every
        rank: unfreezing changes which gradients exist and resets the learning rate, both of which the
        ranks must do at the same epoch (rl-games runs the stats hooks on rank 0 only)."""
        if self._frozen:
            # a frozen actor has no KL, so an adaptive schedule would raise the rate each epoch
            self.algo.last_lr = float(self.algo.config["learning_rate"])
            self.algo.update_lr(self.algo.last_lr)
            if epoch_num >= self.actor_warmup:
                for p in self._frozen:
                    p.requires_grad_(True)
                self._frozen = []
                if getattr(self.algo, "global_rank", 0) == 0:
                    self.log(f"epoch {epoch_num}: actor unfrozen, PPO trains the whole network")

    def check_epoch(self, epoch_num) -> None:
        """Report this epoch's NaN actions and unstable envs; stop when most actions were NaN."""
        self._read()
        steps0, nan0, unstable0 = self._epoch_start
        actions = max((self.steps - steps0) * self.num_envs * self.actions_per_step, 1)
        nan, unstable = self.nan_total - nan0, self.unstable_total - unstable0
        self._epoch_start = (self.steps, self.nan_total, self.unstable_total)
        if nan or unstable:
            self.log(f"warning: epoch {epoch_num}: {nan} NaN actions in {actions} actions "
                     f"({min(100.0 * nan / actions, 100.0):.1f}%; those envs were reset), {unstable} unstable "
                     "envs reset")
        if nan > self.stop_fraction * actions:
            raise TrainingDivergedError(
                f"stopped at epoch {epoch_num}: {min(100.0 * nan / actions, 100.0):.0f}% of the actions were NaN, the "
                "policy (or its low-level controller) produces no usable actions. Check the LLC's "
                "normalizer and weights, lower train.params.config.learning_rate, or resume from an "
                "earlier checkpoint in the run's nn/ folder")

    def close(self) -> None:
        """Flush and close the run's TensorBoard file: rl-games leaves it open to a background flush
        every two minutes, so an in-process run would end with its last scalars not yet on disk."""
        writer = getattr(self, "writer", None)
        if writer is not None:
            writer.close()

    def summary(self) -> str:
        """The run's totals, over every rank of a multi-rank run (call it on every rank)."""
        from .distributed import sum_over_ranks
        self._read()
        actions, nan, unstable = sum_over_ranks([self.steps * self.num_envs * self.actions_per_step,
                                                 self.nan_total, self.unstable_total])
        actions, nan, unstable = max(int(actions), 1), int(nan), int(unstable)
        return (f"summary: {actions} actions, {nan} NaN actions "
                f"({100.0 * nan / actions:.2f}%), {unstable} unstable envs reset")
