"""isaacgymenvs_hrl: IsaacGymEnvs-style tasks on MuJoCo, with hierarchical RL over frozen skills."""
from __future__ import annotations

import os

# Headless machines render through EGL unless the user chose a GL backend; must precede `import mujoco`.
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

from .errors import UserError  # noqa: E402
from .tasks import isaacgym_task_map  # noqa: E402

__all__ = ["make", "isaacgym_task_map", "UserError"]


def make(seed: int, task: str, num_envs: int, sim_device: str, rl_device: str,
         graphics_device_id: int = -1, headless: bool = True, multi_gpu: bool = False,
         virtual_screen_capture: bool = False, force_render: bool = False, cfg=None):
    """Create a task as ``isaacgymenvs.make`` does: compose the Hydra config (or take ``cfg``), seed, build."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from .paths import CFG_DIR
    from .utils.config import register_resolvers, to_dict
    from .utils.seeding import set_seed

    register_resolvers()
    if cfg is None:
        if GlobalHydra.instance().is_initialized():
            GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.1"):
            cfg = compose(config_name="config", overrides=[f"task={task}"])
    task_cfg = to_dict(cfg.task)
    if num_envs is not None and num_envs != "":
        task_cfg["env"]["numEnvs"] = num_envs
    if task not in isaacgym_task_map:
        raise UserError(f"unknown task '{task}'; available: {', '.join(sorted(isaacgym_task_map))}")
    set_seed(seed)
    return isaacgym_task_map[task](cfg=task_cfg, rl_device=rl_device, sim_device=sim_device,
                                   graphics_device_id=graphics_device_id, headless=headless,
                                   virtual_screen_capture=virtual_screen_capture, force_render=force_render)
