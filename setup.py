"""isaacgymenvs_hrl: hierarchical RL over frozen skills on IsaacGymEnvs-style MuJoCo tasks."""
from setuptools import find_packages, setup

setup(
    name="isaacgymenvs_hrl",
    version="0.1.0",
    description="IsaacGymEnvs-style tasks on MuJoCo / MuJoCo Warp with frozen low-level skill controllers",
    packages=find_packages(include=["isaacgymenvs_hrl", "isaacgymenvs_hrl.*"]),
    package_data={"isaacgymenvs_hrl": ["pretrained/manifest.json", "pretrained/*/*.pt", "pretrained/*/*.pth",
                                       "pretrained/*/*.yaml"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.4",           # install the CPU or CUDA build you want first; CI pins torch==2.13.0 CPU
        "numpy",
        "mujoco>=3.3",
        "mujoco-warp",
        "warp-lang",
        "rl-games>=1.6.5",
        "hydra-core>=1.3",
        "omegaconf>=2.3",
        "gymnasium>=1.0",
        "tensorboard",
        "h5py",
        "imageio",
        "imageio-ffmpeg",
        "matplotlib",
        "tqdm",
        "pyyaml",
    ],
    # test: onnx/onnxruntime so that the export parity tests run, not skip
    extras_require={"test": ["pytest", "onnx", "onnxruntime"], "export": ["onnx", "onnxruntime"]},
    entry_points={"console_scripts": [
        "hrl-train=isaacgymenvs_hrl.train:main",
        "hrl-collect=isaacgymenvs_hrl.collect:main",
        "hrl-skills=isaacgymenvs_hrl.skills_cli:main",
        "hrl-import-dataset=isaacgymenvs_hrl.datasets.importers:main",
        "hrl-library=isaacgymenvs_hrl.hrl.library:main",
        "hrl-export=isaacgymenvs_hrl.export.cli:main",
        "hrl-deploy=isaacgymenvs_hrl.deploy.cli:main",
    ]},
)
