"""Arm controllers shared by manipulation tasks: batched kinematics, IK and action maps."""
from .kinematics import ChainKinematics, rotation_from_quat, quat_from_rotation
from .ik import dls_step, orientation_error, solve_ik
from .arm_action import ArmActionMap, ARM_CONTROL_TYPES

__all__ = ["ChainKinematics", "rotation_from_quat", "quat_from_rotation", "dls_step",
           "orientation_error", "solve_ik", "ArmActionMap", "ARM_CONTROL_TYPES"]
