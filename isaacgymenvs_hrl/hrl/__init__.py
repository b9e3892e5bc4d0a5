"""Hierarchical RL core: frozen, self-describing low-level controllers injected into env.step."""
from .llc import LowLevelController, MODES
from .llc_checkpoint import LLCError, FORMAT_VERSION, load_llc, save_llc, wrap_module, validate_llc_for_task
from .latent_skill_env import LatentSkillEnv

__all__ = ["LowLevelController", "MODES", "LLCError", "FORMAT_VERSION", "load_llc", "save_llc",
           "wrap_module", "validate_llc_for_task", "LatentSkillEnv"]
