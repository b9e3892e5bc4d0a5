"""isaacgymenvs_hrl: IsaacGymEnvs-style tasks on MuJoCo, with hierarchical RL over frozen skills."""
from __future__ import annotations

import os

__version__ = "0.2.0"        # the one place: pyproject.toml reads it, CHANGELOG.md names it

# Headless machines render through EGL unless the user chose a GL backend; must precede `import mujoco`.
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

from .errors import UserError  # noqa: E402
from .tasks import isaacgym_task_map  # noqa: E402

__all__ = ["make", "isaacgym_task_map", "UserError", "__version__"]


def make(seed: int, task: str, num_envs: int, sim_device: str, rl_device: str,
         graphics_device_id: int = -1, headless: bool = True, multi_gpu: bool = False,
         virtual_screen_capture: bool = False, force_render: bool = False, cfg=None,
         overrides: list | None = None, auto_reset: bool = True):
    """Create an env as ``isaacgymenvs.make`` does, through the env factory ``hrl-train`` uses.

    Composes ``task=<task>`` with Hydra ``overrides`` (the CLI's grammar, e.g.
    ``["task.env.llc.checkpoint=humanoid/walk_npmp"]``), or takes a composed ``cfg``. A task whose
    config names an LLC (the ``...HRL`` tasks) comes back as the hierarchical env: the frozen LLC runs
    inside ``step`` and the action space is the high level's. ``auto_reset=False`` builds a flat task
    whose resets the caller owns (e.g. to wrap it in ``LatentSkillEnv`` by hand).

    IsaacGymEnvs arguments with no effect here print one line saying what happens instead; bad
    values are a ``UserError`` (the CLI's rules), never a silent fallback."""
    from hydra.errors import MissingConfigException

    from .hrl.env_factory import build_env, display_available, ignored_settings, llc_settings, load_task_llc
    from .paths import CFG_DIR
    from .utils.config import as_int, check_device, check_seed, check_task_cfg, register_resolvers, resolve
    from .utils.seeding import set_seed
    from .utils.task_config import compose_config

    register_resolvers()
    check_seed(seed)
    sim_device, rl_device = check_device(sim_device, "sim_device"), check_device(rl_device, "rl_device")
    if cfg is None:
        from .learning.compat import apply_config_aliases
        args, lines = apply_config_aliases([f"task={task}", *(overrides or [])])
        for line in lines:
            print(line)
        try:
            cfg = compose_config(args)
        except MissingConfigException:
            configs = sorted(p.stem for p in (CFG_DIR / "task").glob("*.yaml"))
            raise UserError(f"unknown task '{task}': no cfg/task/{task}.yaml; available: "
                            f"{', '.join(configs)}") from None
    elif overrides:
        raise UserError("make(): give either cfg (a composed config) or overrides, not both")
    task_cfg = resolve(cfg.task, "task config")
    if num_envs is not None and num_envs != "":
        task_cfg.setdefault("env", {})["numEnvs"] = as_int(num_envs, "num_envs", low=1)
    check_task_cfg(task_cfg)

    given = {key: value for key, value, default in (
        ("graphics_device_id", graphics_device_id, -1), ("force_render", force_render, False),
        ("virtual_screen_capture", virtual_screen_capture, False), ("headless", headless, True))
        if value != default}
    for line in ignored_settings(given):
        print(line)
    if multi_gpu:
        print("multi_gpu=True: make() builds one env on sim_device; data-parallel training is "
              "hrl-train multi_gpu=True under torchrun")

    set_seed(seed)
    llc, steps = load_task_llc(task_cfg)
    settings = llc_settings(task_cfg)
    if llc is not None and settings.get("reward") == "smdp":
        gamma = float(settings.get("gamma", 0.99))
        print(f"task.env.llc.reward=smdp: discount the high level with gamma^k = {gamma}^{steps} = "
              f"{gamma ** steps:.5f} (hrl-train sets it)")
    if llc is not None and settings.get("match_init"):
        print("task.env.llc.match_init pre-trains hrl-train's rl-games actor; make() returns the env only "
              "(isaacgymenvs_hrl.learning.actor_init.skill_matching_init labels the data for your own policy)")
    return build_env(task_cfg, rl_device, sim_device, llc=llc, steps=steps, auto_reset=auto_reset,
                     graphics_device_id=graphics_device_id, viewer=not headless and display_available())
