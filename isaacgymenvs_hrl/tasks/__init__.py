"""Task registry, as IsaacGymEnvs' ``isaacgym_task_map``."""
from .humanoid_locomotion import HumanoidLocomotion
from .humanoid import Humanoid
from .humanoid_location import HumanoidLocation
from .humanoid_heading import HumanoidHeading
from .franka_stack import FrankaStack
from .franka_peg_in_hole import FrankaPegInHole

isaacgym_task_map = {
    "HumanoidLocomotion": HumanoidLocomotion,
    "Humanoid": Humanoid,
    "HumanoidLocation": HumanoidLocation,
    "HumanoidHeading": HumanoidHeading,
    "FrankaStack": FrankaStack,
    "FrankaPegInHole": FrankaPegInHole,
}
