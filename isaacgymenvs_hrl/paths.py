"""Where the installed project keeps its configs and assets (found from any working directory)."""
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
# A wheel carries cfg/ and assets/ inside the package (setup.py maps them there); a source checkout,
# editable installs included, keeps them at the repository root.
CFG_DIR = PACKAGE / "cfg" if (PACKAGE / "cfg").is_dir() else ROOT / "cfg"
ASSETS_DIR = PACKAGE / "assets" if (PACKAGE / "assets").is_dir() else ROOT / "assets"

# IsaacGymEnvs asset names that this project replaces with its own MJCF of the same robot.
ASSET_ALIASES = {"mjcf/nv_humanoid.xml": "mjcf/humanoid.xml"}


def asset_path(name: str) -> Path:
    """Resolve an asset name from a task config: absolute, relative to assets/, or an alias."""
    p = Path(name)
    if p.is_absolute():
        return p
    return ASSETS_DIR / ASSET_ALIASES.get(name, name)
