"""Thin setuptools shim: the metadata, dependencies and extras are in pyproject.toml.

What stays here is what TOML cannot say: cfg/ (Hydra's config folder) and assets/ (the MJCF files)
live at the repository root, where a checkout and an editable install read them, and ship inside
the wheel as ``isaacgymenvs_hrl/cfg`` and ``isaacgymenvs_hrl/assets`` (``paths.py`` finds either).
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
DATA_FOLDERS = {"isaacgymenvs_hrl.cfg": "cfg", "isaacgymenvs_hrl.assets": "assets"}


def data_packages() -> dict:
    """{package name: folder} for every folder under cfg/ and assets/."""
    out = {}
    for package, folder in DATA_FOLDERS.items():
        root = HERE / folder
        for sub in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
            parts = sub.relative_to(root).parts
            out[".".join((package, *parts))] = Path(folder, *parts).as_posix()
    return out


DATA = data_packages()
setup(
    packages=find_packages(include=["isaacgymenvs_hrl", "isaacgymenvs_hrl.*"]) + list(DATA),
    package_dir=DATA,
    package_data={"isaacgymenvs_hrl": ["pretrained/manifest.json", "pretrained/*/*.pt", "pretrained/*/*.pth",
                                       "pretrained/*/*.yaml"],
                  **{package: ["*"] for package in DATA}},
)
