"""Physics layer: one engine interface, two MuJoCo backends built from the same MJCF."""
from .engine import Engine, SimError, SimParams, load_mjcf, RANDOMIZABLE_FIELDS

ISAAC_GYM_ENGINES = ("physx", "flex")
ENGINES = ("mujoco", "mjwarp")


def create_engine(physics_engine: str, mjcf_path: str, num_envs: int, params: SimParams,
                  sim_device: str = "cpu", configure_model=None) -> Engine:
    """Build the engine named by IsaacGymEnvs' ``physics_engine`` key.

    ``configure_model(model)`` may edit the compiled host MjModel (e.g. turn motors into position
    servos) before either backend copies it."""
    if physics_engine in ISAAC_GYM_ENGINES:
        raise SimError(
            f"physics_engine={physics_engine} needs Isaac Gym, which is not supported: it only "
            "installs on Python 3.6-3.8 and is on no package registry. Use physics_engine=mujoco "
            "(C MuJoCo on CPU threads, the default) or physics_engine=mjwarp (MuJoCo Warp, GPU or "
            "Warp's CPU device).")
    if physics_engine not in ENGINES:
        raise SimError(f"unknown physics_engine '{physics_engine}': choose mujoco or mjwarp")
    if int(num_envs) <= 0:
        raise SimError(f"num_envs must be a positive integer, got {num_envs}")
    model = load_mjcf(mjcf_path, params)
    if configure_model is not None:
        configure_model(model)
    if physics_engine == "mujoco":
        from .mujoco_engine import MujocoEngine
        return MujocoEngine(model, int(num_envs), device=sim_device, num_threads=params.num_threads)
    from .mjwarp_engine import MjwarpEngine
    return MjwarpEngine(model, int(num_envs), device=sim_device)
