"""Deployment: a fixed-rate loop running an exported policy against a robot interface."""
from .loop import DeployError, LoopReport, check_interface, run_loop
from .robot import RobotInterface, SimRobot

__all__ = ["DeployError", "LoopReport", "check_interface", "run_loop", "RobotInterface", "SimRobot"]
