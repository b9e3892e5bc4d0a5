"""The former module of ``hrl-skills`` (now ``isaacgymenvs_hrl/cli/skills.py``): kept so that
``python -m isaacgymenvs_hrl.skills_cli`` and ``torchrun -m isaacgymenvs_hrl.skills_cli`` still run it."""
from isaacgymenvs_hrl.cli.skills import _train, main  # noqa: F401

if __name__ == "__main__":
    main()
