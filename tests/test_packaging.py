"""The package a lab adopts: metadata in pyproject.toml, one version, a license, a changelog, the GPU
stack as an extra (a CPU install pulls none of it), console scripts that import, and a wheel that
carries the configs and assets hrl-train reads."""
from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import isaacgymenvs_hrl

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
GPU = {"mujoco-warp", "warp-lang"}


def _names(requirements) -> set:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_metadata_version_license_and_changelog():
    project = PYPROJECT["project"]
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"
    assert project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "isaacgymenvs_hrl.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", isaacgymenvs_hrl.__version__)
    assert f"## {isaacgymenvs_hrl.__version__}" in (ROOT / "CHANGELOG.md").read_text()
    assert project["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert any(c.startswith("Programming Language :: Python :: 3.1") for c in project["classifiers"])


def test_the_cpu_install_pulls_no_gpu_package_and_the_extras_hold_them():
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    assert not GPU & _names(project["dependencies"])
    assert _names(extras["gpu"]) == GPU
    assert GPU <= _names(extras["test"]) and {"pytest", "onnx", "onnxruntime"} <= _names(extras["test"])
    assert _names(extras["track"]) == {"wandb"} and _names(extras["export"]) == {"onnx", "onnxruntime"}
    assert _names(extras["sweep"]) == {"hydra-joblib-launcher", "hydra-submitit-launcher"}


@pytest.mark.parametrize("script", ["hrl-train", "hrl-collect", "hrl-skills", "hrl-import-dataset", "hrl-library",
                                    "hrl-export", "hrl-deploy", "hrl-plot", "hrl-eval", "hrl-sim2sim"])
def test_console_scripts_point_at_importable_mains(script):
    module, func = PYPROJECT["project"]["scripts"][script].split(":")
    assert callable(getattr(importlib.import_module(module), func))


def test_tools_answer_help():
    for module in ("plot", "evaluate", "sim2sim"):
        res = subprocess.run([sys.executable, "-m", f"isaacgymenvs_hrl.cli.{module}", "--help"],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0 and "usage: hrl-" in res.stdout, res.stderr[-1000:]


def test_the_wheel_carries_configs_assets_and_the_skill_library(tmp_path):
    pytest.importorskip("setuptools", minversion="77")          # the build backend pyproject.toml names
    src = tmp_path / "src"                                        # a copy: the build leaves build/ behind
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for name in ("isaacgymenvs_hrl", "cfg", "assets"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    wheel = next(tmp_path.glob(f"isaacgymenvs_hrl-{isaacgymenvs_hrl.__version__}-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("isaacgymenvs_hrl/cfg/config.yaml", "isaacgymenvs_hrl/cfg/task/HumanoidLocationHRL.yaml",
                 "isaacgymenvs_hrl/cfg/train/HumanoidLocationHRLPPO.yaml", "isaacgymenvs_hrl/assets/mjcf/humanoid.xml",
                 "isaacgymenvs_hrl/pretrained/manifest.json", "isaacgymenvs_hrl/pretrained/humanoid/walk_bc.llc.pt",
                 "isaacgymenvs_hrl/tools/evaluate.py"):
        assert path in names, path
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: mujoco-warp; extra == \"gpu\"" in meta
    assert not re.search(r"^Requires-Dist: (mujoco-warp|warp-lang)\s*$", meta, re.M)
