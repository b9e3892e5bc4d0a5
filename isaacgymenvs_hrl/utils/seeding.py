"""One seed fixes a CPU run: python, numpy and torch generators."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def set_seed(seed: int, torch_deterministic: bool = False, rank: int = 0) -> int:
    """Seed everything; -1 draws a seed (printed so the run can be repeated). Returns the seed used."""
    seed = int(seed)
    if seed == -1:
        seed = 42 if torch_deterministic else np.random.SeedSequence().entropy % (2 ** 31)
    seed += rank
    print(f"Setting seed: {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if torch_deterministic:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True)
    return seed
