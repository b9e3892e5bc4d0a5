#!/usr/bin/env bash
# End to end on CPU: teacher -> offline dataset -> BC skill LLC -> high-level PPO over the frozen LLC.
# Usage: bash benchmarks/hrl_end_to_end.sh [WORKDIR]   (about 45 minutes on 2 cores)
# Prints where the TensorBoard logs are; compare rewards/step of the high-level run over time.
set -euo pipefail
WORK=${1:-hrl_e2e}
TEACHER_ITERS=${TEACHER_ITERS:-700}
HL_ITERS=${HL_ITERS:-150}
mkdir -p "$WORK" && cd "$WORK"

hrl-train task=HumanoidLocomotion num_envs=256 max_iterations="$TEACHER_ITERS" experiment=teacher \
  train.params.config.minibatch_size=2048 seed=0
TEACHER=$(ls -d runs/teacher_*/ | tail -1)

hrl-collect task=HumanoidLocomotion num_envs=64 num_episodes=128 noise=0.1 seed=1 \
  policy="${TEACHER}nn/teacher.pth" output=datasets/walk.hdf5

hrl-skills algo=bc dataset=datasets/walk.hdf5 output=llcs/walk_bc.llc.pt seed=0

hrl-train task=HumanoidLocation num_envs=64 max_iterations="$HL_ITERS" experiment=hl_location seed=0 \
  task.env.llc.checkpoint=llcs/walk_bc.llc.pt task.env.llc.steps=5

echo "TensorBoard: tensorboard --logdir $WORK/runs   (teacher_*, hl_location_*)"
