#!/usr/bin/env python
"""Task throughput versus the bare physics engine, side by side in one process.

Three measurements (see benchmarks/README.md for how to read them):

1. ``task[mujoco]``: env-steps/s of the full ``VecTask.step`` (random actions in [-1, 1];
   observations, rewards, terminations and auto-resets included) on physics_engine=mujoco.
2. ``raw[mujoco]``: ``mujoco.rollout.Rollout`` stepping the same MJCF with the same N, threads,
   timestep and substeps, preallocated outputs and ``skip_checks=True``; each call continues from
   the last call's state. Four variants, which differ in what they simulate:
     - task's trajectory replayed (the headline): a segment of the task's own run, recorded
       untimed, is replayed: the same start state, the same controls at every physics step and the
       same envs restarted at the same steps from the same initial states. The raw engine does the
       task's physics, bit for bit where the engine is deterministic (the report says whether the
       replay ended where the task did), without any of the task's Python and torch work;
     - no resets: random controls; humanoids fall and lie on the floor, which is cheaper to
       simulate than the task's standing and falling humanoids: the fastest row;
     - resets at task rate: random controls; every control step a random subset of envs, drawn at
       the task's reset rate, restarts from one of the task's initial states (about half of them
       lie on the floor meanwhile, which the task never simulates);
     - reset on fall: random controls; envs whose torso is below the task's termination height
       restart (the task's own rule; only tasks with a ``termination_height``).
   Controls of the random rows (``--raw-ctrl``): ``random`` draws uniform controls in [-1, 1];
   ``replay`` cycles through the actuator controls the task applied during its warm-up.
3. ``task[mjwarp]`` versus a bare MuJoCo Warp loop (``put_model``/``put_data`` with the same
   nconmax/njmax as ``MjwarpEngine``, ``mujoco_warp.step`` substeps times per control step) on
   Warp's CPU device (or CUDA when --warp-device cuda is given and available).

Task and raw runs are interleaved for ``--rounds`` rounds and the median is reported, so that load
on the other cores hits both sides alike. Each timed task round re-runs the recorded segment from
its restored start (``--task-rounds segment``): the physics of every task round is then the physics
the replay row replays, where a continued run (``continue``) would simulate other states each round.

    python benchmarks/throughput.py                       # defaults: N=256, both engines
    python benchmarks/throughput.py --engine mujoco --steps 400 --json /tmp/tp.json
    python benchmarks/throughput.py --engine mujoco --profile   # cProfile of task.step
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:            # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

import mujoco                            # noqa: E402
import numpy as np                       # noqa: E402
import yaml                              # noqa: E402
import torch                             # noqa: E402
from mujoco import rollout               # noqa: E402

from isaacgymenvs_hrl.tasks import isaacgym_task_map    # noqa: E402
from isaacgymenvs_hrl.utils.task_config import load_task_config   # noqa: E402

_FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS.value
TARGET_RATIO = 0.7


# ---- helpers ----------------------------------------------------------------------------------
def make_task(name: str, engine: str, num_envs: int, threads: int, substeps: int, dt: float,
              device: str = "cpu"):
    """The task as its YAML ships it (servo ramp, solver options, sleeping islands), with the
    benchmark's N, threads and timing; episodes of 1000 control steps keep resets rare."""
    cfg = load_task_config(name, [f"physics_engine={engine}", f"task.env.numEnvs={num_envs}",
                                  "task.env.episodeLength=1000", f"task.sim.dt={dt}",
                                  f"task.sim.substeps={substeps}", f"++task.sim.mujoco.num_threads={threads}"])
    return isaacgym_task_map[name](cfg, device, device, -1, True)


def raw_model(task) -> mujoco.MjModel:
    """The task's own compiled model (its MJCF edits, timestep and solver options) for the bare
    loops, with sleeping islands off: a rollout's shared MjData would carry sleep across envs."""
    model = copy.deepcopy(task.engine.model)
    model.opt.enableflags &= ~int(mujoco.mjtEnableBit.mjENBL_SLEEP)
    return model


def state_offset(model: mujoco.MjModel, bit: int) -> int:
    """Offset of one component inside an mjSTATE_FULLPHYSICS vector."""
    return mujoco.mj_stateSize(model, _FULL & (bit - 1))


def initial_state_pool(task, model: mujoco.MjModel, copies: int) -> np.ndarray:
    """FULLPHYSICS state rows of ``copies`` x N fresh episodes drawn by the task's own reset_idx."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    base = np.empty(mujoco.mj_stateSize(model, _FULL))
    mujoco.mj_getState(model, data, base, _FULL)
    t = mujoco.mjtState
    q0, v0 = state_offset(model, t.mjSTATE_QPOS.value), state_offset(model, t.mjSTATE_QVEL.value)
    rows = []
    for _ in range(copies):
        task.reset()
        rows_k = np.tile(base, (task.num_envs, 1))
        rows_k[:, q0:q0 + model.nq] = task.engine.qpos.double().cpu().numpy()
        rows_k[:, v0:v0 + model.nv] = task.engine.qvel.double().cpu().numpy()
        rows.append(rows_k)
    return np.concatenate(rows)


def median_rate(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def machine_info(threads: int) -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "mujoco": mujoco.__version__,
        "numpy": np.__version__,
        "engine_threads": threads,
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["processor"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import warp
        import mujoco_warp
        info["warp"] = warp.__version__
        info["mujoco_warp"] = getattr(mujoco_warp, "__version__", "?")
    except ImportError:
        pass
    return info


def snapshot_task(task) -> dict:
    """What decides a task's next steps on the C engine: its and its engine's tensors and arrays,
    plain attributes and the torch RNG."""
    objs = {}
    for obj in (task, task.engine):
        objs[id(obj)] = (obj, {k: v.clone() if isinstance(v, torch.Tensor) else
                               v.copy() if isinstance(v, np.ndarray) else v
                               for k, v in vars(obj).items()
                               if isinstance(v, (torch.Tensor, np.ndarray, int, float, bool))})
    return {"rng": torch.get_rng_state(), "objs": objs}


def restore_task(task, snap: dict) -> None:
    """Back to ``snapshot_task``'s state, in place where the attribute is the same-shaped buffer
    (callers keep references to the task's buffers)."""
    torch.set_rng_state(snap["rng"])
    for obj, saved in snap["objs"].values():
        for k, v in saved.items():
            cur = getattr(obj, k, None)
            if isinstance(v, torch.Tensor) and isinstance(cur, torch.Tensor) and cur.shape == v.shape \
                    and cur.dtype == v.dtype:
                cur.copy_(v)
            elif isinstance(v, np.ndarray) and isinstance(cur, np.ndarray) and cur.shape == v.shape:
                np.copyto(cur, v)
            else:
                setattr(obj, k, v.clone() if isinstance(v, torch.Tensor) else copy.copy(v))


# ---- C MuJoCo: task vs raw rollout --------------------------------------------------------------
class TaskRunner:
    """Times ``task.step`` with uniform random actions; counts resets."""

    def __init__(self, task, gen: torch.Generator):
        self.task, self.gen = task, gen
        self.resets = 0
        self.steps = 0
        self.total_s = 0.0         # timed task.step loop
        self.engine_s = 0.0        # of which inside engine.step (physics + its array copies)
        self._in_engine = 0.0
        self.recorded_ctrl: list[np.ndarray] = []   # controls applied in untimed runs, for replay
        self._calls: list[np.ndarray] | None = None  # while recording: each engine call's controls
        self.segment_end_diff = float("nan")   # max |state - recorded end| after run_segment
        engine = task.engine

        def timed(fn):
            def call(arg) -> None:
                t = time.perf_counter()
                fn(arg)
                self._in_engine += time.perf_counter() - t
                if self._calls is not None:             # the (N, nstep, nu) array the rollout saw
                    self._calls.append(engine._ctrl64.copy())
            return call
        # instance attributes; the class is untouched
        engine.step, engine.step_controls = timed(engine.step), timed(engine.step_controls)

    def run(self, nsteps: int, count: bool = True) -> float:
        task, n, na = self.task, self.task.num_envs, self.task.num_actions
        resets = 0
        self._in_engine = 0.0
        t0 = time.perf_counter()
        for _ in range(nsteps):
            actions = torch.rand(n, na, generator=self.gen) * 2 - 1
            _, _, done, _ = task.step(actions)
            resets += int(done.sum())
            if not count:
                self.recorded_ctrl.append(task.engine.ctrl.double().cpu().numpy())
        elapsed = time.perf_counter() - t0
        if count:
            self._count(nsteps, resets, elapsed)
        return nsteps * n / elapsed

    def run_segment(self, seg: dict) -> float:
        """The recorded segment again: the task restored to its state at the segment's start and
        stepped with the segment's actions, so every timed round simulates the physics that the
        replay row replays (``segment_end_diff`` checks it)."""
        task, resets = self.task, 0
        restore_task(task, seg["task_start"])
        self._in_engine = 0.0
        t0 = time.perf_counter()
        for actions in seg["actions"]:
            _, _, done, _ = task.step(actions)
            resets += int(done.sum())
        elapsed = time.perf_counter() - t0
        self.segment_end_diff = float(np.abs(task.engine._state - seg["end"]).max())
        self._count(len(seg["actions"]), resets, elapsed)
        return len(seg["actions"]) * task.num_envs / elapsed

    def _count(self, nsteps: int, resets: int, elapsed: float) -> None:
        self.resets += resets
        self.steps += nsteps * self.task.num_envs
        self.total_s += elapsed
        self.engine_s += self._in_engine

    def record(self, nsteps: int) -> dict:
        """An untimed segment of the task's own run, for the raw side to replay: the engine's full
        state at the start and the end, per control step the controls of each engine call and the
        state rows of the envs reset in that step (after their reset)."""
        engine, n, na = self.task.engine, self.task.num_envs, self.task.num_actions
        seg = {"start": engine._state.copy(), "task_start": snapshot_task(self.task), "steps": [], "actions": []}
        for _ in range(nsteps):
            self._calls = []
            seg["actions"].append(torch.rand(n, na, generator=self.gen) * 2 - 1)
            _, _, done, _ = self.task.step(seg["actions"][-1])
            ids = done.nonzero().squeeze(-1).numpy()
            seg["steps"].append((self._calls, ids, engine._state[ids].copy()))
        self._calls = None
        seg["end"] = engine._state.copy()
        seg["resets"] = sum(len(ids) for _, ids, _ in seg["steps"])
        return seg

    @property
    def engine_share(self) -> float:
        """Fraction of timed task.step wall time spent inside engine.step."""
        return self.engine_s / self.total_s if self.total_s else float("nan")

    @property
    def reset_rate(self) -> float:
        """Resets per env-step, measured over all timed task steps so far."""
        return self.resets / self.steps if self.steps else 0.0


class RawRunner:
    """Bare ``mujoco.rollout`` loop with the engine's call pattern and no task work.

    mode: "none" (never reset), "rate" (random subset at ``rate`` per env-step restarts from the
    task's initial states), "fall" (torso z below ``fall_height`` restarts, the task's rule) or
    "replay" (``segment`` from ``TaskRunner.record``: the task's controls and resets, from the
    segment's start state at every ``run``).
    """

    def __init__(self, model: mujoco.MjModel, num_envs: int, threads: int, substeps: int,
                 pool: np.ndarray, mode: str, seed: int, fall_height: float, replay=None,
                 segment: dict | None = None):
        self.model, self.n, self.substeps = model, num_envs, substeps
        self.replay, self.replay_i = replay, 0      # list of (N, nu) controls, or None: random
        self.mode, self.pool, self.fall_height = mode, pool, fall_height
        # Same choice as MujocoEngine: nthread=0 runs on the caller when there is one thread.
        self.threads = threads
        self.rollout = rollout.Rollout(nthread=0 if threads == 1 else threads)
        self.datas = [mujoco.MjData(model) for _ in range(max(1, threads))]
        self.models = [model] * num_envs
        nstate = mujoco.mj_stateSize(model, _FULL)
        self.state = np.ascontiguousarray(pool[:num_envs])                   # (N, nstate)
        self.ctrl = np.zeros((num_envs, substeps, model.nu))                 # (N, nstep, nu)
        self.out = np.empty((num_envs, substeps, nstate))                    # (N, nstep, nstate)
        self.z = state_offset(model, mujoco.mjtState.mjSTATE_QPOS.value) + 2  # torso height
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.rate = 0.0
        self.resets = 0
        self.env_steps = 0
        self.segment = segment
        self.replay_end_diff = float("nan")    # max |state - task's state| after a full replay

    def run(self, nsteps: int, count: bool = True) -> float:
        if self.mode == "replay":
            return self._run_replay(nsteps, count)
        n, nu, ss = self.n, self.model.nu, self.substeps
        rng, pool, resets = self.rng, self.pool, 0
        t0 = time.perf_counter()
        for _ in range(nsteps):
            if self.replay:
                self.ctrl[:] = self.replay[self.replay_i % len(self.replay)][:, None, :]
                self.replay_i += 1
            else:
                self.ctrl[:] = (torch.rand(n, nu, generator=self.gen) * 2 - 1).numpy()[:, None, :]
            self.rollout.rollout(self.models, self.datas, self.state, self.ctrl, skip_checks=True,
                                 nstep=ss, state=self.out)
            self.state[:] = self.out[:, -1]
            if self.mode == "rate":
                ids = np.flatnonzero(rng.random(n) < self.rate)
            elif self.mode == "fall":
                ids = np.flatnonzero(self.state[:, self.z] < self.fall_height)
            else:
                continue
            if len(ids):
                self.state[ids] = pool[rng.integers(0, len(pool), len(ids))]
                resets += len(ids)
        elapsed = time.perf_counter() - t0
        if count:
            self.resets += resets
            self.env_steps += nsteps * n
        return nsteps * n / elapsed

    def _run_replay(self, nsteps: int, count: bool) -> float:
        seg, n, state, resets = self.segment, self.n, self.state, 0
        steps = seg["steps"]
        outs = {}                                           # (N, nstep, nstate) outputs by nstep
        for calls, _, _ in steps:
            for c in calls:
                outs.setdefault(c.shape[1], np.empty((n, c.shape[1], state.shape[1])))
        state[:] = seg["start"]
        t0 = time.perf_counter()
        for i in range(nsteps):
            if i and i % len(steps) == 0:
                state[:] = seg["start"]
            calls, ids, rows = steps[i % len(steps)]
            for c in calls:
                if c.shape == self.ctrl.shape:
                    self.ctrl[:] = c
                    c = self.ctrl
                out = outs[c.shape[1]]
                self.rollout.rollout(self.models, self.datas, state, c, skip_checks=True,
                                     nstep=c.shape[1], state=out)
                state[:] = out[:, -1]
            if len(ids):
                state[ids] = rows
                resets += len(ids)
        elapsed = time.perf_counter() - t0
        if nsteps % len(steps) == 0:
            self.replay_end_diff = float(np.abs(state - seg["end"]).max())
        if count:
            self.resets += resets
            self.env_steps += nsteps * n
        return nsteps * n / elapsed

    def close(self):
        self.rollout.close()


def bench_mujoco(args, log) -> dict:
    threads = args.threads
    log(f"[mujoco] building {args.task} with N={args.num_envs}, threads={threads}, "
        f"substeps={args.substeps}, dt={args.dt}")
    torch.manual_seed(args.seed)
    task = make_task(args.task, "mujoco", args.num_envs, threads, args.substeps, args.dt)
    model = raw_model(task)
    pool = initial_state_pool(task, model, copies=4)
    fall_height = getattr(task, "termination_height", None)
    modes = ("none", "rate", "fall") if fall_height is not None else ("none", "rate")

    task_runner = TaskRunner(task, torch.Generator().manual_seed(args.seed))
    # Warm-up: the task long enough that episodes desynchronize (first falls happen together).
    task.reset()
    task_runner.run(args.warmup, count=False)
    replay = task_runner.recorded_ctrl if args.raw_ctrl == "replay" else None
    segment = task_runner.record(args.steps)               # what the "replay" row simulates
    raws = {mode: RawRunner(model, args.num_envs, threads, args.substeps, pool, mode,
                            args.seed + i + 1, float(fall_height or 0.0), replay,
                            segment if mode == "replay" else None)
            for i, mode in enumerate((*modes, "replay"))}
    task_runner.run(max(1, args.warmup // 2))          # seed the reset-rate estimate
    for r in raws.values():
        r.rate = task_runner.reset_rate
        r.run(max(1, args.warmup // 2), count=False)

    samples = {"task": [], **{f"raw_{m}": [] for m in raws}}
    order = ["task", *raws]
    for k in range(args.rounds):
        for name in order[k % len(order):] + order[:k % len(order)]:   # rotate: no fixed slot
            if name == "task":
                samples["task"].append(task_runner.run_segment(segment) if args.task_rounds == "segment"
                                       else task_runner.run(args.steps))
            else:
                raws[name].rate = task_runner.reset_rate
                samples[f"raw_{name}"].append(raws[name].run(args.steps))
        log(f"[mujoco] round {k + 1}/{args.rounds}: " +
            ", ".join(f"{name}={v[-1]:,.0f}" for name, v in samples.items()) + " env-steps/s")

    res = {"num_envs": args.num_envs, "threads": threads, "substeps": args.substeps,
           "timestep": model.opt.timestep, "steps_per_round": args.steps, "rounds": args.rounds,
           "task_reset_rate": task_runner.reset_rate, "replayed_resets": segment["resets"],
           "replay_end_max_abs_diff": raws["replay"].replay_end_diff, "task_rounds": args.task_rounds,
           "task_segment_end_max_abs_diff": task_runner.segment_end_diff, "runs": {}}
    for name, v in samples.items():
        rate = task_runner.reset_rate if name == "task" else \
            raws[name[4:]].resets / max(1, raws[name[4:]].env_steps)
        med = median_rate(v)
        res["runs"][name] = {"env_steps_per_s": med, "physics_steps_per_s": med * args.substeps,
                             "rounds": v, "reset_rate": rate}
    t = res["runs"]["task"]["env_steps_per_s"]
    res["ratio_vs_raw_task_replay"] = t / res["runs"]["raw_replay"]["env_steps_per_s"]
    res["round_ratios_vs_raw_task_replay"] = [a / b for a, b in zip(samples["task"], samples["raw_replay"])]
    # each round's task and replay ran back to back: the median of their ratios cancels slow drifts of load
    res["ratio_paired_median"] = statistics.median(res["round_ratios_vs_raw_task_replay"])
    res["ratio_vs_raw_no_resets"] = t / res["runs"]["raw_none"]["env_steps_per_s"]
    res["ratio_vs_raw_resets_at_task_rate"] = t / res["runs"]["raw_rate"]["env_steps_per_s"]
    if "raw_fall" in res["runs"]:
        res["ratio_vs_raw_reset_on_fall"] = t / res["runs"]["raw_fall"]["env_steps_per_s"]
    res["raw_ctrl"] = args.raw_ctrl
    res["ratio"] = res["ratio_vs_raw_task_replay"]
    res["engine_share_of_task_step"] = task_runner.engine_share
    control_steps = task_runner.steps / args.num_envs
    res["engine_ms_per_step"] = 1e3 * task_runner.engine_s / control_steps
    res["task_work_ms_per_step"] = 1e3 * (task_runner.total_s - task_runner.engine_s) / control_steps
    res["small_torch_ops_us"] = small_op_cost()

    if args.profile:
        res["profile"] = profile_task(task_runner, args.profile_steps, log)
    for r in raws.values():
        r.close()
    task.close()
    return res


def profile_task(task_runner: TaskRunner, nsteps: int, log) -> str:
    prof = cProfile.Profile()
    prof.enable()
    task_runner.run(nsteps, count=False)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
    text = buf.getvalue()
    log(f"\n[profile] task.step x {nsteps}, top functions by own time:\n{text}")
    return text


def small_op_cost(pause_s: float = 0.02, reps: int = 40) -> dict:
    """Median CPU time of ten small torch ops (256 x 28 floats) back to back, and right after a busy
    pause as long as a rollout call: how much this machine charges the task's per-step torch work
    for running after the physics rather than in a tight loop."""
    x, y = torch.rand(256, 28), torch.rand(256, 28)

    def ten_ops() -> float:
        t0 = time.thread_time()
        a = x * 2.0 + y
        b = torch.atan2(a, y).cos().exp()
        c = torch.cat([a, b], -1).sum(-1).abs().clamp(0, 1) < 0.5
        del c
        return time.thread_time() - t0

    def median_us(pause: float) -> float:
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            while time.perf_counter() - t < pause:
                pass
            times.append(ten_ops())
        return 1e6 * statistics.median(times)
    return {"back_to_back": median_us(0.0), "after_pause": median_us(pause_s), "pause_ms": 1e3 * pause_s}


# ---- MuJoCo Warp: task vs bare loop -------------------------------------------------------------
def bench_mjwarp(args, log) -> dict:
    try:
        import warp as wp
        import mujoco_warp as mjw
    except ImportError as exc:
        log(f"[mjwarp] skipped: {exc}")
        return {"skipped": str(exc)}
    wp.config.quiet = True
    wp.config.verbose = False
    n = args.warp_num_envs
    device = args.warp_device
    log(f"[mjwarp] building {args.task} with N={n} on Warp device '{device}', "
        f"substeps={args.substeps} (first-ever kernel compilation on CPU takes ~75 s)")
    torch.manual_seed(args.seed)
    t_build = time.perf_counter()
    task = make_task(args.task, "mjwarp", n, args.threads, args.substeps, args.dt,
                     device="cpu" if device == "cpu" else "cuda:0")
    engine = task.engine
    model = raw_model(task)
    # Same buffer sizes as MjwarpEngine's defaults.
    nconmax = max(64, 4 * model.ngeom)
    njmax = max(256, 6 * nconmax)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    with wp.ScopedDevice(engine.wp_device):
        m = mjw.put_model(model)
        d = mjw.put_data(model, data, nworld=n, nconmax=nconmax, njmax=njmax)
    ctrl, qpos, qvel = wp.to_torch(d.ctrl), wp.to_torch(d.qpos), wp.to_torch(d.qvel)
    task.reset()
    qpos.copy_(engine.qpos)                       # start from the task's initial states
    qvel.copy_(engine.qvel)
    gen_task = torch.Generator().manual_seed(args.seed)
    gen_bare = torch.Generator().manual_seed(args.seed + 1)
    tdev = ctrl.device

    acc = {"engine": 0.0, "total": 0.0, "in_engine": 0.0}
    engine_step = engine.step

    def timed_engine_step(nsteps: int) -> None:
        t = time.perf_counter()
        engine_step(nsteps)
        acc["in_engine"] += time.perf_counter() - t
    engine.step = timed_engine_step              # instance attribute; the class is untouched

    def run_task(nsteps: int, count: bool = True) -> float:
        acc["in_engine"] = 0.0
        t0 = time.perf_counter()
        for _ in range(nsteps):
            task.step((torch.rand(n, task.num_actions, generator=gen_task) * 2 - 1).to(tdev))
        if tdev.type == "cuda":
            wp.synchronize()
        elapsed = time.perf_counter() - t0
        if count:
            acc["total"] += elapsed
            acc["engine"] += acc["in_engine"]
        return nsteps * n / elapsed

    def run_bare(nsteps: int) -> float:
        t0 = time.perf_counter()
        with wp.ScopedDevice(engine.wp_device):
            for _ in range(nsteps):
                ctrl[:] = (torch.rand(n, model.nu, generator=gen_bare) * 2 - 1).to(tdev)
                for _ in range(args.substeps):
                    mjw.step(m, d)
            if tdev.type == "cuda":
                wp.synchronize()
        return nsteps * n / (time.perf_counter() - t0)

    warm = max(1, args.warp_warmup)
    with contextlib.redirect_stdout(io.StringIO()):       # Warp's module-load chatter
        run_task(warm, count=False)
        run_bare(warm)
    log(f"[mjwarp] build + warm-up took {time.perf_counter() - t_build:.1f} s")
    samples = {"task": [], "bare": []}
    for k in range(args.warp_rounds):
        samples["task"].append(run_task(args.warp_steps))
        samples["bare"].append(run_bare(args.warp_steps))
        log(f"[mjwarp] round {k + 1}/{args.warp_rounds}: task={samples['task'][-1]:,.1f}, "
            f"bare={samples['bare'][-1]:,.1f} env-steps/s")
    res = {"num_envs": n, "device": device, "substeps": args.substeps, "nconmax": nconmax,
           "njmax": njmax, "steps_per_round": args.warp_steps, "rounds": args.warp_rounds,
           "runs": {}}
    for name, v in samples.items():
        med = median_rate(v)
        res["runs"][name] = {"env_steps_per_s": med, "physics_steps_per_s": med * args.substeps,
                             "rounds": v}
    res["ratio"] = res["runs"]["task"]["env_steps_per_s"] / res["runs"]["bare"]["env_steps_per_s"]
    res["engine_share_of_task_step"] = acc["engine"] / acc["total"] if acc["total"] else float("nan")
    task.close()
    return res


# ---- report -------------------------------------------------------------------------------------
def print_report(results: dict, log) -> None:
    mi = results["machine"]
    log("")
    log("=" * 96)
    log(f"Throughput: {results['task']}  |  {mi['processor']}")
    log(f"cpu_count={mi['cpu_count']} affinity={mi['cpu_affinity']} engine_threads={mi['engine_threads']} "
        f"torch_threads={mi['torch_threads']} | python {mi['python']} torch {mi['torch']} "
        f"mujoco {mi['mujoco']} numpy {mi['numpy']}"
        + (f" warp {mi['warp']} mujoco_warp {mi['mujoco_warp']}" if "warp" in mi else ""))
    log("=" * 96)
    hdr = f"{'run':<34}{'N':>6}{'thr':>5}{'sub':>5}{'env-steps/s':>14}{'phys-steps/s':>15}{'resets/step':>13}{'ratio':>8}"
    log(hdr)
    log("-" * len(hdr))
    mj = results.get("mujoco")
    if mj:
        names = {"task": "task[mujoco] VecTask.step",
                 "raw_replay": "raw rollout, task's run replayed",
                 "raw_none": "raw rollout, no resets",
                 "raw_rate": "raw rollout, resets at task rate",
                 "raw_fall": "raw rollout, reset on fall"}
        task_rate = mj["runs"]["task"]["env_steps_per_s"]
        for key, label in names.items():
            if key not in mj["runs"]:
                continue
            r = mj["runs"][key]
            ratio = "" if key == "task" else f"{task_rate / r['env_steps_per_s']:.3f}"
            log(f"{label:<34}{mj['num_envs']:>6}{mj['threads']:>5}{mj['substeps']:>5}"
                f"{r['env_steps_per_s']:>14,.0f}{r['physics_steps_per_s']:>15,.0f}"
                f"{100 * r['reset_rate']:>12.2f}%{ratio:>8}")
    wr = results.get("mjwarp")
    if wr and "runs" in wr:
        for key, label in (("task", f"task[mjwarp/{wr['device']}] VecTask.step"),
                           ("bare", f"bare mujoco_warp loop ({wr['device']})")):
            r = wr["runs"][key]
            ratio = "" if key == "task" else f"{wr['ratio']:.3f}"
            log(f"{label:<34}{wr['num_envs']:>6}{'-':>5}{wr['substeps']:>5}"
                f"{r['env_steps_per_s']:>14,.1f}{r['physics_steps_per_s']:>15,.1f}{'':>13}{ratio:>8}")
    log("-" * len(hdr))
    if mj:
        target = results["args"]["target"]
        ok = "OK" if mj["ratio"] >= target else "BELOW TARGET"
        same = mj["replay_end_max_abs_diff"]
        log(f"mujoco task/raw (task's run replayed) = {mj['ratio']:.3f}  [target >= {target}: {ok}]   "
            f"(vs resets at task rate {mj['ratio_vs_raw_resets_at_task_rate']:.3f}, "
            f"vs no resets {mj['ratio_vs_raw_no_resets']:.3f}"
            + (f", vs reset on fall {mj['ratio_vs_raw_reset_on_fall']:.3f}" if "ratio_vs_raw_reset_on_fall" in mj
               else "") + f"; random rows' controls: {mj['raw_ctrl']})")
        log("  rows: 'task's run replayed' = the same physics as the task (its start state, controls, reset "
            "envs and steps, initial states; "
            + ("replay ended bit for bit where the task did" if same == 0 else
               f"replay ended within {same:.3g} of the task's state") + f", {mj['replayed_resets']} resets "
            f"in {mj['steps_per_round']} steps); the other raw rows use random controls and their own reset rule")
        if mj.get("task_rounds") == "segment":
            seg_same = mj["task_segment_end_max_abs_diff"]
            log("  task rounds: the recorded segment again from its start, "
                + ("ending bit for bit where it first did" if seg_same == 0 else
                   f"ending within {seg_same:.3g} of where it first did (not the replay's physics)"))
        log("  per-round task/replay ratios: " + ", ".join(f"{r:.3f}" for r in mj["round_ratios_vs_raw_task_replay"])
            + f"  (their median {mj['ratio_paired_median']:.3f})")
        log(f"  engine.step share of task.step wall time = {mj['engine_share_of_task_step']:.3f} "
            "(the rest is task/VecTask Python+torch work; measured inside the same timed loop, so "
            "it is robust to load on other cores)")
        ops = mj["small_torch_ops_us"]
        log(f"  per control step: engine.step {mj['engine_ms_per_step']:.2f} ms, the task's own work "
            f"{mj['task_work_ms_per_step']:.2f} ms (at most {mj['engine_ms_per_step'] / 9:.2f} ms for a ratio "
            f"of 0.9); ten small torch ops take {ops['back_to_back']:.0f} us back to back and "
            f"{ops['after_pause']:.0f} us after a {ops['pause_ms']:.0f} ms pause on this machine")
        log(f"  median of {mj['rounds']} interleaved rounds x {mj['steps_per_round']} control steps; "
            f"timestep={mj['timestep']:.4g}s; task reset rate {100 * mj['task_reset_rate']:.2f}% "
            "of envs per control step")
    if wr and "runs" in wr:
        log(f"mjwarp task/bare = {wr['ratio']:.3f}  (median of {wr['rounds']} rounds x "
            f"{wr['steps_per_round']} control steps, nconmax={wr['nconmax']}, njmax={wr['njmax']}); "
            f"engine.step share of task.step = {wr['engine_share_of_task_step']:.3f}")
    elif wr:
        log(f"mjwarp: skipped ({wr['skipped']})")
    log(f"total wall time {results['wall_s']:.1f} s")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", default="HumanoidLocomotion", choices=sorted(isaacgym_task_map))
    p.add_argument("--num-envs", type=int, default=256)
    p.add_argument("--steps", type=int, default=120, help="control steps per timed round (mujoco)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved task/raw rounds (mujoco)")
    p.add_argument("--warmup", type=int, default=60, help="untimed task control steps (mujoco)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="C MuJoCo threads, task and raw alike")
    p.add_argument("--substeps", type=int, default=None, help="default: the task config's sim.substeps")
    p.add_argument("--dt", type=float, default=None, help="control period; default: the task config's sim.dt")
    p.add_argument("--raw-ctrl", choices=("random", "replay"), default="random",
                   help="raw engine controls: uniform in [-1, 1], or the task's own recorded controls")
    p.add_argument("--task-rounds", choices=("segment", "continue"), default="segment",
                   help="each timed task round: the recorded segment again from its start (the physics "
                        "the replay row replays), or the task's run continued (the headline before 2026-12-07)")
    p.add_argument("--target", type=float, default=TARGET_RATIO, help="ratio the report checks against")
    p.add_argument("--engine", choices=("mujoco", "mjwarp", "both"), default="both")
    p.add_argument("--warp-num-envs", type=int, default=64)
    p.add_argument("--warp-steps", type=int, default=20, help="control steps per timed round (mjwarp)")
    p.add_argument("--warp-rounds", type=int, default=3)
    p.add_argument("--warp-warmup", type=int, default=2, help="untimed control steps (mjwarp)")
    p.add_argument("--warp-device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true",
                   help="after the mujoco rounds, cProfile task.step and print the top functions")
    p.add_argument("--profile-steps", type=int, default=100)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch intra-op threads, 1 as hrl-train's default torch_threads; 0 = torch's default")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    sim = yaml.safe_load((ROOT / "cfg" / "task" / f"{args.task}.yaml").read_text())["sim"] \
        if (ROOT / "cfg" / "task" / f"{args.task}.yaml").is_file() else {"dt": 0.02, "substeps": 4}
    args.dt = float(sim["dt"]) if args.dt is None else args.dt
    args.substeps = int(sim["substeps"]) if args.substeps is None else args.substeps
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    log = lambda s="": print(s, flush=True)
    t0 = time.perf_counter()
    results = {"task": args.task, "machine": machine_info(args.threads), "args": vars(args)}
    if args.engine in ("mujoco", "both"):
        results["mujoco"] = bench_mujoco(args, log)
    if args.engine in ("mjwarp", "both"):
        results["mjwarp"] = bench_mjwarp(args, log)
    results["wall_s"] = time.perf_counter() - t0
    print_report(results, log)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        log(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
