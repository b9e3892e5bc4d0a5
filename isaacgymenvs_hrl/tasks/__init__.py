"""Task registry, as IsaacGymEnvs' ``isaacgym_task_map``."""
from .humanoid_locomotion import HumanoidLocomotion
from .humanoid import Humanoid

isaacgym_task_map = {
    "HumanoidLocomotion": HumanoidLocomotion,
    "Humanoid": Humanoid,
}
