"""``python -m isaacgymenvs_hrl.train`` (IsaacGymEnvs' ``python train.py``): the ``hrl-train`` command,
which lives in ``cli/train.py``."""
from .cli.train import main, run  # noqa: F401  (tests and scripts call train.run(cfg))

if __name__ == "__main__":
    main()
