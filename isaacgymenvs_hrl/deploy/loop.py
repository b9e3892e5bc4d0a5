"""A fixed-rate control loop: read observation -> exported policy -> write action, every period.

Ticks are scheduled on absolute deadlines (``t0 + i * period``, no drift): the loop sleeps until
``spin_s`` before a deadline and spins the rest, which is what keeps the wake-up jitter small on a
loaded machine. A tick whose work ends after the next deadline is a deadline miss; the ticks it
overran are skipped (the loop never runs two ticks back to back to catch up) and counted.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import UserError
from ..export.runtime import ExportedPolicy
from .robot import RobotInterface


class DeployError(UserError, ValueError):
    pass


@dataclass
class LoopReport:
    rate_hz: float
    ticks: int
    wall_s: float
    deadline_misses: int           # ticks whose work ended after the next tick's deadline
    skipped_ticks: int             # deadlines passed while a late tick was still running
    wakeup_jitter_ms: dict         # tick start - its deadline: mean, std, p99, max (ms)
    period_jitter_ms: dict         # (start - previous start) - (deadline - previous deadline): std, p99 |.|, max |.|
    compute_ms: dict               # read + policy + write: mean, p50, p99, max (ms)
    policy_ms: dict                # the policy call alone
    observation_age_ms: dict       # tick start - the observation's timestamp
    episodes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        w, p, c = self.wakeup_jitter_ms, self.period_jitter_ms, self.compute_ms
        return (f"{self.ticks} ticks at {self.rate_hz:g} Hz in {self.wall_s:.2f} s: deadline misses "
                f"{self.deadline_misses}, skipped ticks {self.skipped_ticks}; wake-up jitter mean "
                f"{w['mean']:.3f} ms, p99 {w['p99']:.3f} ms, max {w['max']:.3f} ms; period jitter std "
                f"{p['std']:.3f} ms, max {p['max_abs']:.3f} ms; compute p50 {c['p50']:.3f} ms, p99 "
                f"{c['p99']:.3f} ms, max {c['max']:.3f} ms (policy p50 {self.policy_ms['p50']:.3f} ms)")


def _stats(x_s) -> dict:
    x = np.asarray(x_s, dtype=np.float64) * 1e3
    if x.size == 0:
        return {"mean": 0.0, "std": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    return {"mean": float(x.mean()), "std": float(x.std()), "p50": float(np.percentile(x, 50)),
            "p99": float(np.percentile(x, 99)), "max": float(x.max())}


def check_interface(policy: ExportedPolicy, robot: RobotInterface) -> None:
    """Refuse, before the first tick, a policy part that is not a controller or a robot whose
    observation layout / action size differ from the policy's metadata."""
    meta = policy.meta
    names = [i["name"] for i in policy.inputs]
    if "hl_action" in names:
        raise DeployError(f"policy={policy.path.name} is an LLC-only export (part=llc): it needs a high-level "
                          "action every tick; deploy a part=full export")
    if meta.get("hierarchy") and meta.get("part") == "hl":
        raise DeployError(f"policy={policy.path.name} is a high-level-only export (part=hl): its output is a "
                          "skill command, not a robot action; deploy a part=full export")
    want = [(s["name"], int(s["size"])) for s in meta["observation"]["slices"]]
    got = robot.observation_slices()
    if got is not None and [(n, int(s)) for n, s in got] != want:
        raise DeployError(f"the robot's observation {got} does not match the policy's {want} "
                          f"({policy.path.name}.json); deploy a policy exported for this robot's task")
    n_act = robot.action_size()
    if n_act is not None and n_act != int(meta["action"]["size"]):
        raise DeployError(f"the robot takes {n_act} actions, the policy writes {meta['action']['size']}")


def run_loop(policy: ExportedPolicy, robot: RobotInterface, rate_hz: float, ticks: int,
             spin_s: float = 0.002, warmup_ticks: int = 25, clock=time.perf_counter) -> LoopReport:
    """``ticks`` timed ticks after ``warmup_ticks`` untimed ones (TorchScript'd task code and the
    runtime optimize themselves on their first calls; a robot would run them before enabling)."""
    if rate_hz <= 0 or ticks <= 0:
        raise DeployError(f"rate_hz and the number of ticks must be positive, got {rate_hz}, {ticks}")
    check_interface(policy, robot)
    period = 1.0 / float(rate_hz)
    policy.reset(1)
    wake, starts, deadlines, compute, pol, age = [], [], [], [], [], []
    misses = skipped = episodes = 0
    robot.start()
    try:
        t0 = clock()
        deadline = t0 + period
        for i in range(int(warmup_ticks) + int(ticks)):
            if i == int(warmup_ticks):                      # timing starts here
                wake, starts, deadlines, compute, pol, age = [], [], [], [], [], []
                misses = skipped = 0
                t0 = clock()
            while True:                         # sleep, then spin the last spin_s
                remaining = deadline - clock()
                if remaining <= 0:
                    break
                if remaining > spin_s:
                    time.sleep(remaining - spin_s)
            start, mono = clock(), time.monotonic()
            stamp, obs = robot.read_observation()
            if robot.episode_started():
                policy.reset(1)
                episodes += 1
            obs = policy.check_observation(obs)            # refuses a mismatched observation
            p0 = clock()
            action = policy.act(obs)[0]
            p1 = clock()
            robot.write_action(action)
            end = clock()
            wake.append(start - deadline)
            starts.append(start)
            deadlines.append(deadline)
            compute.append(end - start)
            pol.append(p1 - p0)
            age.append(mono - float(stamp))
            deadline += period
            if end > deadline:                              # overran the next tick's deadline
                misses += 1
                late = int((end - deadline) // period) + 1
                skipped += late
                deadline += late * period
        wall = clock() - t0
    finally:
        robot.stop()
    # interval between tick starts minus the interval between their deadlines (skips excluded)
    intervals = np.diff(np.asarray(starts)) - np.diff(np.asarray(deadlines)) if len(starts) > 1 else np.zeros(0)
    a = np.abs(intervals) * 1e3
    return LoopReport(
        rate_hz=float(rate_hz), ticks=len(starts), wall_s=float(wall), deadline_misses=misses,
        skipped_ticks=skipped, wakeup_jitter_ms=_stats(wake),
        period_jitter_ms={"std": float(intervals.std() * 1e3) if a.size else 0.0,
                          "p99_abs": float(np.percentile(a, 99)) if a.size else 0.0,
                          "max_abs": float(a.max()) if a.size else 0.0},
        compute_ms=_stats(compute), policy_ms=_stats(pol), observation_age_ms=_stats(age),
        episodes=episodes)
