"""What each skill does: skills held for a whole episode in their task, and their end states named.

Each discrete skill, or each of a few fixed random high-level actions, is held from the same initial
states; per condition the end state (TCP height, finger opening, TCP -> object distances, object
heights above the table, grasp), the fraction of steps in a grasp, a name from ``name_end_state``'s
rules, and the mutual information between the condition and the end state (k-means cells and
names), with the same estimate under permuted labels as the small-sample bias.

The task says what its end-state features are called: ``object_names`` (a class attribute, e.g.
FrankaStack's red, green, blue) names the objects that its ``object_qpos()``, ``object_dims()`` and
``grasped_colour()`` index; a task with it also has ``ee_pose()``, ``finger_opening()``, ``grasp()``
and ``reward_for()``, which these rollouts read.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch

from ..errors import UserError
from ..hrl.latent_skill_env import LatentSkillEnv
from ..hrl.llc import LowLevelController
from .exploration import random_hl_action
from .z_usage import llc_mode


def object_names(task) -> tuple | None:
    """The names a task (instance or class) gives its objects' end-state features, or None."""
    names = getattr(task, "object_names", None)
    return tuple(names) if names else None


def name_end_state(names, grasped: int, lifted: bool, raised: list, near: int, near_dist: float, pushed: int,
                   tcp_move: np.ndarray, closed: bool) -> str:
    """A name for one env's end state, by the first rule that holds (C: an object's name in ``names``,
    the indices ``grasped``, ``raised``, ``near`` and ``pushed`` point into it):
        lift C    both fingers touch object C (grasp sensor) and C is > 3 cm above the table
        grasp C   both fingers touch object C
        place C   object C rests > 2 cm above the table (on another object), not in the hand
        reach C   the TCP is within 5 cm of object C's centre
        push C    object C moved > 3 cm from its start
        stay      the TCP moved < 5 cm
        move D    otherwise: D is the main axis of the TCP's motion (+x fwd, -x back, +y left,
                  -y right, up, down)
    ``closed`` (opening < 1 cm per finger) is appended to reach / stay / move."""
    if grasped >= 0:
        return f"{'lift' if lifted else 'grasp'} {names[grasped]}"
    if any(raised):
        return f"place {names[int(np.argmax(raised))]}"
    suffix = ", closed" if closed else ""
    if near_dist < 0.05:
        return f"reach {names[near]}{suffix}"
    if pushed >= 0:
        return f"push {names[pushed]}"
    if np.linalg.norm(tcp_move) < 0.05:
        return "stay" + suffix
    axis = int(np.argmax(np.abs(tcp_move)))
    sign = tcp_move[axis] > 0
    return "move " + [("+x fwd", "-x back"), ("+y left", "-y right"), ("up", "down")][axis][0 if sign else 1] + suffix


def mutual_information(labels: np.ndarray, cells: np.ndarray) -> float:
    """Plug-in I(label; cell) in bits from paired samples."""
    lab, li = np.unique(labels, return_inverse=True)
    cel, ci = np.unique(cells, return_inverse=True)
    joint = np.zeros((len(lab), len(cel)))
    np.add.at(joint, (li, ci), 1.0)
    joint /= joint.sum()
    pl, pc = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / (pl @ pc)[nz])).sum())


class _EndStates:
    """Per control step (the first ``steps``): grasp and staged reward; the end-state features at
    control step ``steps`` itself, before LatentSkillEnv resets envs at the end of a macro step."""

    def __init__(self, task, steps: int):
        self.task, self.steps, self.grasp, self.staged, self.end = task, int(steps), [], [], None
        self.start_tcp = task.ee_pose()[0].clone()
        self.start_obj = task.object_qpos()[:, :, 0:3].clone()

    def __call__(self, *_):
        if len(self.grasp) >= self.steps:
            return
        self.grasp.append(self.task.grasp().float())
        self.staged.append(self.task.reward_for("staged"))
        if len(self.grasp) == self.steps:
            self.end = self._snapshot()

    def finish(self) -> dict:
        return self.end if self.end is not None else self._snapshot()

    def _snapshot(self) -> dict:
        task = self.task
        tcp = task.ee_pose()[0]
        obj = task.object_qpos()[:, :, 0:3]
        hh = task.object_dims()[0]
        return {"tcp": tcp, "opening": task.finger_opening(), "dist": (obj - tcp[:, None]).norm(dim=-1),
                "height": obj[:, :, 2] - hh, "grasped": task.grasped_colour(),
                "moved": (obj - self.start_obj).norm(dim=-1), "tcp_move": tcp - self.start_tcp,
                "grasp_fraction": torch.stack(self.grasp).mean(0), "staged": torch.stack(self.staged).mean(0)}


@torch.no_grad()
def rollout_held(task, llc: LowLevelController, mode: str, hl: torch.Tensor, steps: int, seed: int = 0) -> dict:
    """One high-level action (or skill) ``hl`` (broadcast to all envs) held for ``steps`` control
    steps from a reset drawn with ``seed`` (the same initial states for every condition). The
    task's episodes must last at least ``steps`` control steps (episodeLength > steps)."""
    if task.max_episode_length < steps:
        raise UserError(f"skill rollouts of {steps} steps need task.env.episodeLength > {steps}, "
                        f"got {task.max_episode_length}")
    torch.manual_seed(seed)
    env = LatentSkillEnv(task, llc, mode=mode, reward="sum")
    env.reset()
    rec = _EndStates(task, steps)
    n = task.num_envs
    hl = hl.expand(n) if mode == "discrete" else hl.expand(n, -1)
    for _ in range(-(-int(steps) // env.steps)):
        env.step(hl, on_control_step=rec)
    return rec.finish()


def _names(end: dict, objects) -> list:
    out = []
    moved = end["moved"].numpy()
    for e in range(len(end["tcp"])):
        g = int(end["grasped"][e])
        near = int(end["dist"][e].argmin())
        pushed = int(moved[e].argmax()) if moved[e].max() > 0.03 else -1
        raised = [bool(h > 0.02) and g != j and float(end["dist"][e, j]) > 0.04
                  for j, h in enumerate(end["height"][e].tolist())]
        out.append(name_end_state(objects, g, g >= 0 and float(end["height"][e, g]) > 0.03, raised, near,
                                  float(end["dist"][e, near]), pushed, end["tcp_move"][e].numpy(),
                                  float(end["opening"][e]) < 0.01))
    return out


def skill_rollouts(task, llc: LowLevelController, steps: int = 100, num_latents: int = 6, seed: int = 0) -> dict:
    """Each discrete skill held (discrete LLCs), else ``num_latents`` fixed random high-level
    actions held (continuous, multires): per-condition end-state statistics and names, and the
    mutual information between the condition and the end state."""
    objects = object_names(task)
    if objects is None:
        raise UserError(f"skill rollouts need a task that names its objects' end-state features (object_names, "
                        f"e.g. FrankaStack); got {type(task).__name__}")
    mode = "discrete" if "discrete" in llc.modes else llc_mode(llc)
    gen = torch.Generator().manual_seed(seed + 1)
    if mode == "discrete":
        conds = [(f"skill {y}", torch.tensor([y])) for y in range(llc.num_skills)]
    else:
        hls = random_hl_action(llc, mode, num_latents, gen)
        conds = [(f"latent {i}", hls[i:i + 1]) for i in range(num_latents)]
    rows, feats, labels, names = {}, [], [], []
    for c, (label, hl) in enumerate(conds):
        end = rollout_held(task, llc, mode, hl, steps, seed)
        env_names = _names(end, objects)
        top, count = Counter(env_names).most_common(1)[0]
        rows[label] = {"name": f"{top} ({count}/{len(env_names)})", "tcp_z": float(end["tcp"][:, 2].mean()),
                       "opening": float(end["opening"].mean()),
                       **{f"dist_{col}": float(end["dist"][:, j].mean()) for j, col in enumerate(objects)},
                       **{f"height_{col}": float(end["height"][:, j].mean()) for j, col in enumerate(objects)},
                       "grasp_end": float((end["grasped"] >= 0).float().mean()),
                       "grasp_fraction": float(end["grasp_fraction"].mean()),
                       "staged_reward": float(end["staged"].mean()), "env_names": env_names}
        feats.append(torch.cat([end["tcp"], end["opening"][:, None], end["dist"], end["height"],
                                (end["grasped"] >= 0).float()[:, None]], -1))
        labels += [c] * len(env_names)
        names += env_names
    from .rollout_videos import kmeans
    x = torch.cat(feats).numpy()
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    labels = np.asarray(labels)
    _, _, cells, used = kmeans(x, len(conds), seed=seed)
    lab = labels[used]
    rng = np.random.default_rng(seed)
    perm_mi = lambda cl, ce: float(np.mean([mutual_information(rng.permutation(cl), ce) for _ in range(20)]))
    names = np.asarray(names)
    return {"mode": mode, "steps": int(steps), "envs": int(task.num_envs), "objects": list(objects),
            "per_condition": rows,
            "mi_bits_kmeans": mutual_information(lab, cells), "mi_bits_kmeans_permuted": perm_mi(lab, cells),
            "mi_bits_names": mutual_information(labels, names), "mi_bits_names_permuted": perm_mi(labels, names),
            "mi_bits_max": math.log2(len(conds)), "distinct_names": int(len(set(r["name"].split(" (")[0]
                                                                             for r in rows.values())))}


@torch.no_grad()
def grasp_coverage(task, llc: LowLevelController | None, steps: int = 100, seed: int = 0) -> dict:
    """Fraction of control steps in a grasp (HeLMS Table 1's grasp coverage) and staged reward per
    step: random flat actions (``llc`` None) or a random high level in each of the LLC's modes
    (a new uniform high-level action every k steps)."""
    out = {}
    gen = torch.Generator().manual_seed(seed)
    if llc is None:
        torch.manual_seed(seed)
        task.reset()
        grasp, staged = [], []
        for _ in range(steps):
            task.step(torch.rand(task.num_envs, task.num_actions, generator=gen) * 2 - 1)
            grasp.append(task.grasp().float())
            staged.append(task.reward_for("staged"))
        return {"random flat actions": {"grasp_fraction": float(torch.stack(grasp).mean()),
                                        "staged_reward": float(torch.stack(staged).mean())}}
    for mode in llc.modes:
        torch.manual_seed(seed)
        env = LatentSkillEnv(task, llc, mode=mode, reward="sum")
        env.reset()
        rec = _EndStates(task, steps)
        for _ in range(-(-int(steps) // env.steps)):
            env.step(random_hl_action(llc, mode, task.num_envs, gen), on_control_step=rec)
        out[f"random high level ({mode})"] = {"grasp_fraction": float(torch.stack(rec.grasp).mean()),
                                              "staged_reward": float(torch.stack(rec.staged).mean())}
    return out

