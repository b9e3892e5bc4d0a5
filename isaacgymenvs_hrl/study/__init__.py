"""The study: sweeps of hrl-train over arms (methods), settings and seeds as Hydra multiruns, the raw
result of each cell beside its TensorBoard log, and the report that turns the results into tables
and learning curves (``hrl-study``, docs/results/study_commands.md)."""
