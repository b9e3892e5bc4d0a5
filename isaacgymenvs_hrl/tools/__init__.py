"""Command-line tools installed with the package: ``hrl-plot`` (learning curves from runs/),
``hrl-eval`` (a trained policy over exactly N episodes) and ``hrl-sim2sim`` (a policy on both
physics backends, with randomization and latency)."""
