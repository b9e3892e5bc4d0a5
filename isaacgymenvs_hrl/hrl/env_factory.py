"""The one way to turn a task config into an env: the task, and, where ``task.env.llc.checkpoint``
names a frozen LLC, that task inside ``LatentSkillEnv`` so that the env's action is the high level's.

Every command, ``isaacgymenvs_hrl.make`` and the tools build through ``build_env`` (or its two halves,
``build_task`` and ``wrap_task``, where a caller holds the bare task as well), so the
Python API returns exactly what the CLI trains (IsaacGymEnvs shares one creation function between
``isaacgymenvs.make`` and its train.py for the same reason). The config arrives resolved (plain
dicts); the caller reads everything else (devices, seeds, the trainer's settings) at its edge.
"""
from __future__ import annotations

import os

from ..errors import UserError
from ..tasks import isaacgym_task_map
from ..tasks.base.latency import Latency
from ..utils.config import as_bool
from ..utils.viewer import PassiveViewer
from .head_choice import apply_head_choice
from .latent_skill_env import LatentSkillEnv
from .llc_checkpoint import load_llc


def llc_settings(task_cfg: dict) -> dict:
    """The task's ``env.llc`` block ({} for a flat task)."""
    return (task_cfg.get("env") or {}).get("llc") or {}


def is_hierarchical(task_cfg: dict) -> bool:
    return bool(llc_settings(task_cfg).get("checkpoint"))


def llc_label(checkpoint: str) -> str:
    """A short name for an LLC in run names: ``humanoid/walk_bc`` -> ``walk_bc``,
    ``llcs/walk_bc.llc.pt`` -> ``walk_bc``."""
    base = os.path.basename(str(checkpoint).rstrip("/"))
    for suffix in (".pt", ".pth", ".llc"):
        base = base[:-len(suffix)] if base.endswith(suffix) else base
    return base or "llc"


def load_task_llc(task_cfg: dict):
    """(frozen LLC, k) named by ``task.env.llc``, or (None, None) for a flat task.

    k is ``task.env.llc.steps``, or the checkpoint's ``default_steps`` where that is ''. Callers that
    need k before the env exists (the SMDP discount, the trainer's step counts) load it here once and
    pass both to ``build_env``."""
    settings = llc_settings(task_cfg)
    if not settings.get("checkpoint"):
        return None, None
    llc = load_llc(settings["checkpoint"], trust_code=settings.get("trust_code") is True)
    return llc, llc.decision_steps(settings.get("steps"))


def task_class(task_cfg: dict):
    """The class that implements the config's ``name``."""
    name = task_cfg.get("name")
    if name not in isaacgym_task_map:
        raise UserError(f"task config names class '{name}', which has no implementation here; "
                        f"available: {', '.join(sorted(isaacgym_task_map))}")
    return isaacgym_task_map[name]


def build_task(task_cfg: dict, rl_device: str = "cpu", sim_device: str = "cpu", *, auto_reset: bool = True,
               graphics_device_id: int = -1, viewer: bool = False):
    """The ``VecTask`` of a resolved task config (its ``env.llc`` block, if any, is not read here)."""
    # force_render would render a discarded frame at every physics step: frames are drawn only for
    # capture_video, the viewer and eval videos
    return task_class(task_cfg)(cfg=task_cfg, rl_device=rl_device, sim_device=sim_device,
                                   graphics_device_id=graphics_device_id, headless=not viewer,
                                   virtual_screen_capture=False, force_render=False, auto_reset=auto_reset)


def wrap_task(task, task_cfg: dict, llc, steps: int | None = None) -> LatentSkillEnv:
    """``task`` (built with ``auto_reset=False``) inside the ``LatentSkillEnv`` that ``task.env.llc``
    describes, running ``llc`` for ``steps`` (None: the LLC's default k) control steps per decision;
    ``task.env.latency.high_level`` delays the decisions."""
    settings = llc_settings(task_cfg)
    env = LatentSkillEnv(task, llc, mode=settings.get("mode", "continuous"), steps=llc.decision_steps(steps),
                         hl_obs=settings.get("hl_obs") or None, reward=settings.get("reward", "mean"),
                         llc_gamma=float(settings.get("gamma", 0.99)),
                         prior=as_bool(settings.get("prior", False), "task.env.llc.prior"),
                         prior_scale=float(settings.get("prior_scale", 2.0)),
                         hl_latency=Latency.high_level_from_task_config(task_cfg, task.num_envs, task.device))
    # task.env.llc.head: a multires LLC's head fixed or drawn at random (the high level then picks z only)
    return apply_head_choice(env, settings)


def build_env(task_cfg: dict, rl_device: str = "cpu", sim_device: str = "cpu", *, llc=None,
              steps: int | None = None, auto_reset: bool = True, graphics_device_id: int = -1,
              viewer: bool = False):
    """The env of a resolved task config: a ``VecTask``, or a ``LatentSkillEnv`` over it.

    ``llc`` / ``steps``: a frozen LLC and its k already loaded with ``load_task_llc`` (else they are
    loaded here when the config names one). ``auto_reset=False`` hands a flat task's resets to the
    caller (for a wrapper of one's own); a hierarchical env resets its task itself, once per
    high-level step. ``viewer``: MuJoCo's passive viewer on env 0 (needs a display)."""
    settings = llc_settings(task_cfg)
    task_class(task_cfg)                                        # an unknown task before any LLC loads
    if llc is None and settings.get("checkpoint"):
        llc, steps = load_task_llc(task_cfg)
    if llc is not None and not auto_reset:
        raise UserError(f"auto_reset=False gives you a bare task to wrap yourself, but this config runs the LLC "
                        f"{settings.get('checkpoint')} (task.env.llc.checkpoint), whose LatentSkillEnv resets done "
                        f"envs itself; build the flat task (e.g. task={task_cfg.get('name')}) with auto_reset=False, "
                        "or keep auto_reset=True")
    env = build_task(task_cfg, rl_device, sim_device, auto_reset=auto_reset and llc is None,
                     graphics_device_id=graphics_device_id, viewer=viewer)
    if llc is not None:
        env = wrap_task(env, task_cfg, llc, steps)
    if viewer:
        env = PassiveViewer(env)
    return env


def display_available() -> bool:
    """An X11 or Wayland display to open a window on."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def ignored_settings(given: dict) -> list[str]:
    """One line for each IsaacGymEnvs setting in ``given`` that has no effect here, saying what
    happens instead. ``given`` holds only what the user set (command-line keys, or ``make()``
    arguments that differ from its defaults)."""
    lines = []
    if "pipeline" in given and str(given["pipeline"]).lower() == "gpu":
        lines.append("pipeline=gpu: there is no separate GPU pipeline here; tensors live on sim_device "
                     "(for GPU physics: physics_engine=mjwarp sim_device=cuda:0 rl_device=cuda:0)")
    if "graphics_device_id" in given:
        lines.append(f"graphics_device_id={given['graphics_device_id']}: not used; MuJoCo renders through "
                     "MUJOCO_GL (egl picks the GPU with MUJOCO_EGL_DEVICE_ID)")
    if "force_render" in given:
        lines.append(f"force_render={given['force_render']}: not used; frames are rendered only for "
                     "capture_video=True, headless=False (the viewer) and eval_summary's video")
    if "virtual_screen_capture" in given:
        lines.append("virtual_screen_capture: not used; frames come from MuJoCo's offscreen renderer "
                     "(env.render() returns an RGB array), no virtual display is started")
    if given.get("headless") is False and not display_available():
        lines.append("headless=False: no display (DISPLAY / WAYLAND_DISPLAY unset), so no viewer opens; "
                     "running headless (capture_video=True writes MP4s of env 0 instead)")
    return lines
