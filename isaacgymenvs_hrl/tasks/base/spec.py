"""``TaskSpec``: what a task is, declared once and read by everything that must match it.

Datasets store it, LLC checkpoints are validated against it, ``hrl-collect`` and the importers
write it, reports name observations with it. A task declares its parts as class attributes
(``task_family``, ``reward_terms``, ``obs_units``, ``action_semantics``) and two hooks
(``obs_layout``, ``state_layout``); ``VecTask`` assembles the spec once at construction.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class TaskSpec:
    name: str                                  # the task class (isaacgym_task_map key)
    task_family: str                           # robot family: which LLCs fit ("humanoid", "franka")
    control_type: str                          # what an action means: "joint_position", "torque", "ee_delta", ...
    control_dt: float                          # s per control step (sim.dt * controlFrequencyInv)
    obs_layout: tuple                          # ((slice name, size), ...) in observation order
    action_dim: int
    action_semantics: str = ""                 # one line: units and range of each action entry
    obs_units: dict = field(default_factory=dict)     # slice name -> units / contents
    reward_terms: tuple = ()                   # names of the rew_* terms logged per episode
    state_layout: tuple = ()                   # privileged critic input ("states"), like obs_layout
    obs_fields: dict = field(default_factory=dict)    # slice name -> ((field, size), ...) within it

    @property
    def num_obs(self) -> int:
        return sum(size for _, size in self.obs_layout)

    @property
    def num_states(self) -> int:
        return sum(size for _, size in self.state_layout)

    def obs_sizes(self) -> dict:
        return {name: size for name, size in self.obs_layout}

    def obs_views(self) -> "OrderedDict[str, slice]":
        """Every slice and every ``slice.field`` (see ``view_ranges``) as a slice of the observation."""
        return view_ranges(self.obs_layout, self.obs_fields)

    def view_sizes(self) -> dict:
        return {name: s.stop - s.start for name, s in self.obs_views().items()}

    def to_dict(self) -> dict:
        """Plain lists and numbers, for HDF5 attributes, YAML and checkpoints."""
        d = asdict(self)
        d["obs_layout"] = [[n, int(s)] for n, s in self.obs_layout]
        d["state_layout"] = [[n, int(s)] for n, s in self.state_layout]
        d["reward_terms"] = list(self.reward_terms)
        d["obs_fields"] = {k: [[f, int(n)] for f, n in v] for k, v in self.obs_fields.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TaskSpec":
        d = dict(d)
        d["obs_layout"] = tuple((str(n), int(s)) for n, s in d.get("obs_layout", ()))
        d["state_layout"] = tuple((str(n), int(s)) for n, s in d.get("state_layout", ()))
        d["reward_terms"] = tuple(d.get("reward_terms", ()))
        d["obs_fields"] = {str(k): tuple((str(f), int(n)) for f, n in v) for k, v in d.get("obs_fields", {}).items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def dataset_meta(self) -> dict:
        """The metadata keys datasets have always carried, plus the whole spec under ``spec``."""
        d = self.to_dict()
        return {"task": self.name, "obs_layout": d["obs_layout"], "obs_fields": d["obs_fields"],
                "control_dt": float(self.control_dt), "control_type": self.control_type,
                "task_family": self.task_family, "num_actions": int(self.action_dim), "spec": d}


def view_ranges(obs_layout, obs_fields=None) -> "OrderedDict[str, slice]":
    """Named slices of an observation laid out as ``obs_layout``, plus ``<slice>.<field>`` for the
    fields a slice declares in ``obs_fields``. Fields let a low level read part of a slice (joint
    positions without velocities, say) while datasets and tasks keep one layout."""
    views, start = OrderedDict(), 0
    for name, size in obs_layout:
        views[name] = slice(start, start + int(size))
        start += int(size)
    for name, fields in (obs_fields or {}).items():
        if name not in views:
            raise ValueError(f"obs_fields: '{name}' is not an observation slice ({list(views)[:len(obs_layout)]})")
        at = views[name].start
        for fname, size in fields:
            views[f"{name}.{fname}"] = slice(at, at + int(size))
            at += int(size)
        if at != views[name].stop:
            raise ValueError(f"obs_fields.{name}: the fields add up to {at - views[name].start}, the slice "
                             f"has {views[name].stop - views[name].start}")
    return views
