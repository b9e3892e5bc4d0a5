"""Episode starts drawn from the states of a demonstration dataset.

Restarting a share of the episodes from states along demonstrations lets PPO see the late stages of
a long task (carry, place, release) before its own rollouts reach them: the resets to demonstration
states of Nair et al. 2018 ("Overcoming Exploration in RL with Demonstrations"). The dataset is an
``hrl-collect`` file of the same task and scene, which stores the simulator state behind every
observation (``infos.qpos``, ``infos.qvel``).
"""
from __future__ import annotations

import torch

from ..datasets import load_dataset
from ..errors import UserError


class DemoStates:
    """The (qpos, qvel, task observation) rows of a dataset, as tensors to sample episode starts from."""

    def __init__(self, path: str, task_name: str, nq: int, nv: int, device):
        data, meta = load_dataset(path, require_slices=["task"])
        if meta.get("task") != task_name:
            raise UserError(f"demoResets.path={path} holds {meta.get('task')} data; this task is {task_name}. "
                            f"Collect one with: hrl-collect task={task_name} policy=expert output=...")
        if "infos.qpos" not in data or "infos.qvel" not in data:
            raise UserError(f"demoResets.path={path} has no simulator states (infos.qpos / infos.qvel): it was "
                            f"written before hrl-collect stored them; collect it again")
        widths = data["infos.qpos"].shape[1], data["infos.qvel"].shape[1]
        if widths != (nq, nv):
            raise UserError(f"demoResets.path={path} was collected in another scene (state widths qpos/qvel "
                            f"{widths[0]}/{widths[1]}, this scene {nq}/{nv}); collect it with the same "
                            "task.env settings (objectSets)")
        self.qpos = torch.as_tensor(data["infos.qpos"], dtype=torch.float32, device=device)
        self.qvel = torch.as_tensor(data["infos.qvel"], dtype=torch.float32, device=device)
        self.task_obs = torch.as_tensor(data["obs"]["task"], dtype=torch.float32, device=device)

    def __len__(self) -> int:
        return len(self.qpos)

    def sample(self, n: int, fraction: float, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Which of ``n`` new episodes start from a demonstration state (mask (n,)), and from which row."""
        use = torch.rand(n, device=device) < fraction
        rows = torch.randint(len(self), (n,), device=device)
        return use, rows
