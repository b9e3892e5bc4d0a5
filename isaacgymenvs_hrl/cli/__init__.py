"""The commands, one module each, each with ``main()`` (``[project.scripts]`` in pyproject.toml): Hydra
or argparse at the edge, then library calls with plain arguments. Nothing below this package imports it."""
