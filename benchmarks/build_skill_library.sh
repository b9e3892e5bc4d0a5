#!/usr/bin/env bash
# Rebuild every file of the shipped skill library (isaacgymenvs_hrl/pretrained/) from scratch with the
# project's own commands, and record each in the manifest (command, seed, commit, dataset hash, metrics):
#   teacher  HumanoidLocomotion PPO teacher (walks and turns on command), then resumed with yaw
#            commands up to +-2 rad/s (turns at 1.7-1.8 rad/s)                    ~25-35 min on 2 cores
#   humanoid its rollouts (random commands, action noise) -> BC, NPMP, LDSE LLCs  ~10 min
#   omni     (experiment, not shipped, not in the default STAGES) the teacher resumed with backward,
#            sideways and faster-turning commands -> omni_bc, omni_npmp, omni_ldse   ~20 min; it did not
#            learn to walk backward or sideways, and its LLCs do not beat walk_* on HumanoidHeading
#            (docs/hrl.md), so it adds to the library only when asked for: STAGES=omni
#   franka   stacking expert rollouts -> BC, HeLMS, LDSE, MRS, NPMP LLCs          ~45 min
#            (LDSE and NPMP then get a fitted latent prior p(z | x): hrl-skills-prior, ~5 min)
#   peg      round-peg insertion expert rollouts -> HeLMS, LDSE, NPMP LLCs, LDSE and NPMP with a
#            fitted latent prior                                                   ~10 min
# Usage: bash benchmarks/build_skill_library.sh [WORKDIR]      (STAGES="humanoid franka" to skip some;
#        a stage that needs a teacher takes this run's, else the shipped one)
set -euo pipefail
WORK=${1:-build_library}
STAGES=${STAGES:-teacher humanoid franka peg}
mkdir -p "$WORK" && cd "$WORK"
has() { [[ " $STAGES " == *" $1 "* ]]; }
# run a command, then add its output to the library with that exact command as provenance
build() {   # build NAME KIND FILE SEED DATASET DESCRIPTION -- COMMAND...
  local name=$1 kind=$2 file=$3 seed=$4 dataset=$5 desc=$6; shift 7
  echo "+ $*"
  "$@"
  hrl-library add "$name" "$file" --kind "$kind" --seed "$seed" --command "$*" --description "$desc" \
    ${dataset:+--dataset "$dataset"}
}

# fit a latent prior p(z | x) into a library LLC from its dataset and record the new file with both
# commands (skills/latent_prior.py): with_prior NAME DATASET DESCRIPTION [hrl-skills-prior options...]
with_prior() {
  local name=$1 D=$2 desc=$3; shift 3
  local out=llcs/${name#*/}_prior.llc.pt made
  made=$(python -c "from isaacgymenvs_hrl.hrl.library import load_manifest; print(load_manifest()['$name']['command'])")
  local cmd=(hrl-skills-prior "$name" --dataset "$D" --output "$out" "$@")
  echo "+ ${cmd[*]}"
  "${cmd[@]}"
  hrl-library add "$name" "$out" --kind llc --seed 0 --dataset "$D" --description "$desc" --command "$made && ${cmd[*]}"
}

# BC, NPMP and LDSE over one walking dataset: walking_llcs NAME_PREFIX DATASET DESCRIPTION_PREFIX
walking_llcs() {
  local p=$1 D=$2 what=$3
  build humanoid/${p}_bc llc llcs/${p}_bc.llc.pt 0 $D \
    "${what}velocity-conditioned BC: the latent is the velocity achieved over the next second (vx, vy, yaw rate; hindsight-relabelled teacher data, mirrored)" -- \
    hrl-skills algo=bc dataset=$D output=llcs/${p}_bc.llc.pt seed=0 skills.epochs=20 report.videos=false
  build humanoid/${p}_npmp llc llcs/${p}_npmp.llc.pt 0 $D \
    "${what}NPMP: latent from a look-ahead encoder with an AR(1) prior; not the command" -- \
    hrl-skills algo=npmp dataset=$D output=llcs/${p}_npmp.llc.pt seed=0 skills.seq_stride=16 skills.epochs=10 \
    skills.latent_scale=2.0 report.videos=false
  build humanoid/${p}_ldse llc llcs/${p}_ldse.llc.pt 0 $D \
    "${what}LDSE: latent of an 8-step local-dynamics VAE, skill policy cloned on it; not the command" -- \
    hrl-skills algo=ldse dataset=$D output=llcs/${p}_ldse.llc.pt seed=0 skills.stride=8 skills.epochs=10 \
    skills.latent_scale=2.0 report.videos=false
}

TEACHER_CMD=(hrl-train task=HumanoidLocomotion num_envs=256 max_iterations=1300 experiment=teacher
             train.params.config.minibatch_size=2048 seed=0 headless=True "task.env.command.yaw_rate=[-1.0,1.0]")
# the walking teacher resumed with yaw commands up to +-2 rad/s: from scratch on them it would first
# have to learn to walk; resumed, it keeps its gait and learns to turn fast (docs/hrl.md)
TURN=("task.env.command.yaw_rate=[-2.0,2.0]")
TURN_CMD=(hrl-train task=HumanoidLocomotion num_envs=256 max_iterations=1900 experiment=teacher_turn
          train.params.config.minibatch_size=2048 seed=0 headless=True "${TURN[@]}" checkpoint=teacher_base.pth)
if has teacher; then
  echo "+ ${TEACHER_CMD[*]}"
  "${TEACHER_CMD[@]}"
  cp "$(ls -td runs/teacher_2*/nn/teacher.pth | head -1)" teacher_base.pth
  echo "+ ${TURN_CMD[*]}"
  "${TURN_CMD[@]}"
  hrl-library add humanoid/teacher "$(ls -td runs/teacher_turn_*/nn/teacher_turn.pth | head -1)" --kind policy \
    --task HumanoidLocomotion --seed 0 --command "${TEACHER_CMD[*]} && ${TURN_CMD[*]}" \
    --description "HumanoidLocomotion PPO teacher: tracks a commanded planar velocity and yaw rate (yaw commands up to +-2 rad/s)"
fi

if has humanoid; then
  # this run's teacher, else the shipped one, asked for the yaw rates it was trained on (the task's
  # default range is a quarter of them); every episode is stored mirrored too (both turning directions)
  # and its command slice relabelled with the velocity achieved over the next second
  TEACHER=$(ls -td runs/teacher_turn_*/nn/teacher_turn.pth 2>/dev/null | head -1 || true)
  hrl-collect task=HumanoidLocomotion num_envs=64 num_episodes=128 noise=0.1 seed=1 "${TURN[@]}" \
    policy="${TEACHER:-humanoid/teacher}" mirror=True hindsight_steps=50 output=datasets/walk.hdf5
  walking_llcs walk datasets/walk.hdf5 ""
fi

# the same three methods over omnidirectional walking: vx [-0.5, 1.2] m/s, vy [-0.5, 0.5] m/s, yaw
# rate [-1.5, 1.5] rad/s, resumed from the teacher above (turning and walking forward already learnt)
OMNI=("task.env.command.vx=[-0.5,1.2]" "task.env.command.vy=[-0.5,0.5]" "task.env.command.yaw_rate=[-1.5,1.5]")
if has omni; then
  BASE=$(ls -td runs/teacher_*/nn/teacher.pth 2>/dev/null | head -1 || true)
  BASE=${BASE:-$(python -c "from isaacgymenvs_hrl.hrl.library import resolve; print(resolve('humanoid/teacher'))")}
  cp "$BASE" teacher_base.pth
  OMNI_CMD=(hrl-train task=HumanoidLocomotion num_envs=256 max_iterations=2000 experiment=teacher_omni
            train.params.config.minibatch_size=2048 seed=0 headless=True "${OMNI[@]}" checkpoint=teacher_base.pth)
  echo "+ ${OMNI_CMD[*]}"
  "${OMNI_CMD[@]}"
  OMNI_TEACHER=$(ls -td runs/teacher_omni_*/nn/teacher_omni.pth | head -1)
  hrl-library add humanoid/teacher_omni "$OMNI_TEACHER" --kind policy --task HumanoidLocomotion --seed 0 \
    --command "${OMNI_CMD[*]}" \
    --description "HumanoidLocomotion PPO teacher resumed with backward, sideways and faster-turning commands"
  hrl-collect task=HumanoidLocomotion num_envs=64 num_episodes=128 noise=0.1 seed=1 "${OMNI[@]}" \
    policy="$OMNI_TEACHER" mirror=True hindsight_steps=50 output=datasets/omni.hdf5
  walking_llcs omni datasets/omni.hdf5 "omnidirectional walking; "
fi

if has franka; then
  hrl-collect task=FrankaStack policy=expert num_envs=64 num_episodes=1000 noise=0.05 seed=1 \
    output=datasets/stack.hdf5
  D=datasets/stack.hdf5
  COMMON=(dataset=$D seed=0 report.videos=false report.exploration=false)
  # HeLMS' and MRS' low levels read joint positions and the finger opening only: with the joint
  # velocities they imitate the expert without their latent. LDSE and NPMP keep all of proprio,
  # which explored better for them (docs/skills.md, "Information asymmetry")
  LOW=skills.policy_obs=[proprio.joint_pos,proprio.gripper]
  build franka/stack_bc llc llcs/stack_bc.llc.pt 0 $D "plain BC of the stacking expert (sees object poses)" -- \
    hrl-skills algo=bc output=llcs/stack_bc.llc.pt "${COMMON[@]}" skills.policy_obs=[proprio,objects,task] \
    skills.condition_on=[] skills.epochs=20
  # HeLMS gets about 16x the gradient steps of its first build (docs/results/stack_prior_anchor.md);
  # ~20 min on one thread. Its mid level reads grasp_yaw (the turn to the nearest grasp face), its low
  # level the hand -> object vectors as well; seed 1 of two (seed 1's prior stacked zero-shot in 97% of
  # episodes, seed 2's in 49%: docs/results/stack_prior_anchor.md, round 4)
  build franka/stack_helms llc llcs/stack_helms.llc.pt 1 $D "HeLMS: 6 discrete skills -> latent -> controller (reads joint positions, finger opening and the hand -> object vectors; its mid level also reads grasp_yaw)" -- \
    hrl-skills algo=helms output=llcs/stack_helms.llc.pt dataset=$D seed=1 report.videos=false report.exploration=false \
    "skills.policy_obs=[proprio.joint_pos,proprio.gripper,objects.ee_to_obj]" "skills.mid_obs=[proprio,objects,grasp_yaw]" \
    skills.seq_stride=16 skills.epochs=100 torch_threads=1
  build franka/stack_ldse llc llcs/stack_ldse.llc.pt 0 $D "LDSE: 8-step local-dynamics latent" -- \
    hrl-skills algo=ldse output=llcs/stack_ldse.llc.pt "${COMMON[@]}" skills.stride=8 skills.epochs=10
  build franka/stack_mrs llc llcs/stack_mrs.llc.pt 0 $D "MRS: skills at horizons 4/8/16/32 + unconditional head (reads joint positions + finger opening)" -- \
    hrl-skills algo=mrs output=llcs/stack_mrs.llc.pt "${COMMON[@]}" $LOW skills.stride=16 skills.epochs=6
  build franka/stack_npmp llc llcs/stack_npmp.llc.pt 0 $D "NPMP: look-ahead encoder + AR(1) prior" -- \
    hrl-skills algo=npmp output=llcs/stack_npmp.llc.pt "${COMMON[@]}" skills.seq_stride=16 skills.epochs=10
  # a continuous high level anchored to a latent prior (task.env.llc.prior=True) starts where the skills
  # go in each state: LDSE's from its encoder's latents, NPMP's (no encoder saved) from its policy's
  with_prior franka/stack_ldse $D "LDSE: 8-step local-dynamics latent; latent prior p(z | x) fitted to its encoder's latents"
  with_prior franka/stack_npmp $D "NPMP: look-ahead encoder + AR(1) prior; latent prior p(z | x) fitted to the latents its policy infers" \
    --stride 10 --invert-iters 80
fi

if has peg; then
  hrl-collect task=FrankaPegInHole policy=expert num_envs=64 num_episodes=400 noise=0.05 seed=1 \
    output=datasets/peg_round.hdf5
  D=datasets/peg_round.hdf5
  COMMON=(dataset=$D seed=0 torch_threads=1 report.videos=false report.exploration=false)
  build franka/peg_helms llc llcs/peg_helms.llc.pt 0 $D "HeLMS on round-peg insertion data: 6 discrete skills -> latent -> controller (reads joint positions, finger opening, wrist F/T; the mid level reads proprio, peg, hole, F/T)" -- \
    hrl-skills algo=helms output=llcs/peg_helms.llc.pt "${COMMON[@]}" skills.policy_obs=[proprio.joint_pos,proprio.gripper,ft] \
    skills.mid_obs=[proprio,peg,hole,ft] skills.seq_stride=32 skills.epochs=12
  build franka/peg_ldse llc llcs/peg_ldse.llc.pt 0 $D "LDSE on round-peg insertion data (peg in hand, 1 mm): 8-step local-dynamics latent; the policy reads proprio + wrist F/T; the encoder beside it does skill matching" -- \
    hrl-skills algo=ldse output=llcs/peg_ldse.llc.pt "${COMMON[@]}" skills.policy_obs=[proprio,ft] skills.stride=8 skills.epochs=10 \
    skills.latent_scale=2.0
  build franka/peg_npmp llc llcs/peg_npmp.llc.pt 0 $D "NPMP on round-peg insertion data: look-ahead encoder + AR(1) prior; the policy reads proprio + wrist F/T" -- \
    hrl-skills algo=npmp output=llcs/peg_npmp.llc.pt "${COMMON[@]}" skills.policy_obs=[proprio,ft] skills.seq_stride=16 skills.epochs=10 \
    skills.latent_scale=2.0
  with_prior franka/peg_ldse $D "LDSE on round-peg insertion data (peg in hand, 1 mm): 8-step local-dynamics latent; the policy reads proprio + wrist F/T; the encoder beside it does skill matching; latent prior p(z | x) fitted to its encoder's latents"
  with_prior franka/peg_npmp $D "NPMP on round-peg insertion data: look-ahead encoder + AR(1) prior; the policy reads proprio + wrist F/T; latent prior p(z | x) fitted to the latents its policy infers" \
    --stride 10 --invert-iters 80
fi
hrl-library verify
hrl-library list
