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
    """Create a task as ``isaacgymenvs.make`` does: compose ``task=<task>`` (or take ``cfg``), build the
    class named by the composed config's ``name`` (``task="HumanoidRun"`` builds ``Humanoid``), seed.

    The values are checked with the CLI's rules, so a bad one is a ``UserError``, not a silent fallback."""
    from hydra.errors import MissingConfigException

    from .paths import CFG_DIR
    from .utils.config import as_int, check_device, check_seed, check_task_cfg, register_resolvers, resolve
    from .utils.seeding import set_seed
    from .utils.task_config import compose_config

    register_resolvers()
    check_seed(seed)
    sim_device, rl_device = check_device(sim_device, "sim_device"), check_device(rl_device, "rl_device")
    if cfg is None:
        try:
            cfg = compose_config([f"task={task}"])
        except MissingConfigException:
            configs = sorted(p.stem for p in (CFG_DIR / "task").glob("*.yaml"))
            raise UserError(f"unknown task '{task}': no cfg/task/{task}.yaml; available: "
                            f"{', '.join(configs)}") from None
    task_cfg = resolve(cfg.task, "task config")
    if num_envs is not None and num_envs != "":
        task_cfg.setdefault("env", {})["numEnvs"] = as_int(num_envs, "num_envs", low=1)
    name = task_cfg.get("name")
    if name not in isaacgym_task_map:
        raise UserError(f"task config '{task}' names class '{name}', which has no implementation here; "
                        f"available: {', '.join(sorted(isaacgym_task_map))}")
    check_task_cfg(task_cfg)
    set_seed(seed)
    return isaacgym_task_map[name](cfg=task_cfg, rl_device=rl_device, sim_device=sim_device,
                                   graphics_device_id=graphics_device_id, headless=headless,
                                   virtual_screen_capture=virtual_screen_capture, force_render=force_render)
