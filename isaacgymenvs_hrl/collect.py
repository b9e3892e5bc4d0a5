"""``python -m isaacgymenvs_hrl.collect``: the ``hrl-collect`` command, which lives in ``cli/collect.py``."""
from .cli.collect import main

if __name__ == "__main__":
    main()
