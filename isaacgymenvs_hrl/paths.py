"""Where the installed project keeps its configs and assets (found from any working directory)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CFG_DIR = ROOT / "cfg"
ASSETS_DIR = ROOT / "assets"

# IsaacGymEnvs asset names that this project replaces with its own MJCF of the same robot.
ASSET_ALIASES = {"mjcf/nv_humanoid.xml": "mjcf/humanoid.xml"}


def asset_path(name: str) -> Path:
    """Resolve an asset name from a task config: absolute, relative to assets/, or an alias."""
    p = Path(name)
    if p.is_absolute():
        return p
    return ASSETS_DIR / ASSET_ALIASES.get(name, name)
