"""What the user-facing tools run: ``hrl-plot`` (learning curves from runs/), ``hrl-eval`` (a trained
policy over exactly N episodes) and ``hrl-sim2sim`` (a policy on both physics backends, with
randomization and latency). Their commands are ``cli/plot.py``, ``cli/evaluate.py``, ``cli/sim2sim.py``."""
