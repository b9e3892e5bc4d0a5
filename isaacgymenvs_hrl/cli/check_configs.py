"""``hrl-check-configs``: every rl-games train file of an IsaacGymEnvs ``cfg/`` folder through hrl-train, one
line each.

Users arrive with IsaacGymEnvs' own ``cfg/`` folder. Each ``cfg/train/<name>.yaml`` is run as a user
would run it, against a task of ours (``hydra.searchpath=[file://<cfg>] train=<name>``), with a few
envs and ``max_iterations`` (default 1), each in its own ``hrl-train`` process under a timeout, and
classified from its exit status and output:

    trains       exit 0
    clear error  exit 2 with one ``error: ...`` line and no traceback (printed after the name)
    traceback    any other failure (the last line of the traceback is printed)
    hang         still running at --timeout

A minibatch that does not divide num_envs * horizon_length is what a user meets first with tiny
settings; like a user, the script reruns once with the divisor the error asks for.

    hrl-check-configs /path/to/IsaacGymEnvs/isaacgymenvs/cfg
    hrl-check-configs /path/to/IsaacGymEnvs/isaacgymenvs/cfg --num-envs 16 --timeout 300
    hrl-check-configs PATH/cfg --only HumanoidSAC,ShadowHandPPOAsymm --test
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# which of our tasks a train file is pointed at: by a word in its name, else the humanoid
TASK_BY_WORD = (("franka", "FrankaStack"), ("industreal", "FrankaPegInHole"), ("factory", "FrankaPegInHole"),
                ("automate", "FrankaPegInHole"), ("tacsl", "FrankaPegInHole"))
DEFAULT_TASK = "HumanoidLocomotion"


def task_for(train_name: str, forced: str | None = None) -> str:
    if forced:
        return forced
    low = train_name.lower()
    return next((task for word, task in TASK_BY_WORD if word in low), DEFAULT_TASK)


def run_one(cfg_dir: Path, train_name: str, task: str, num_envs: int, iterations: int, timeout: float,
            workdir: Path, test_checkpoint: str | None = None) -> tuple[str, str, float]:
    """(kind, detail, seconds) for one train file."""
    args = [f"hydra.searchpath=[file://{cfg_dir.resolve()}]", f"task={task}", f"train={train_name}",
            f"num_envs={num_envs}", "headless=True", f"experiment=compat_{train_name}"]
    args += ["test=True", f"checkpoint={test_checkpoint}"] if test_checkpoint else [f"max_iterations={iterations}"]
    extra: list[str] = []
    t0 = time.time()
    for _ in range(3):
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        try:
            res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.train", *args, *extra], cwd=workdir,
                                 capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return "hang", f"no exit after {timeout:.0f} s", time.time() - t0
        out = res.stdout + res.stderr
        if res.returncode == 0:
            return "trains", "", time.time() - t0
        if "Traceback (most recent call last)" in out or res.returncode != 2:
            last = [line for line in out.strip().splitlines() if line.strip()][-1:] or [f"exit {res.returncode}"]
            return "traceback", last[0][:200], time.time() - t0
        line = next((ln for ln in res.stderr.splitlines() if ln.startswith("error: ")), "error: (no message)")
        divisor = re.search(r"set (train\.params\.config\.minibatch_size) to a divisor of (\d+)", line) or \
            re.search(r"(train\.params\.config\.central_value_config\.minibatch_size).*"
                      r"set it to a divisor of (\d+)", line)
        if divisor and not any(a.startswith(divisor.group(1) + "=") for a in extra):
            extra.append(f"{divisor.group(1)}={divisor.group(2)}")
            continue
        return "clear error", line[len("error: "):][:300], time.time() - t0
    return "clear error", line[len("error: "):][:300], time.time() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="hrl-check-configs", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("cfg", type=Path, help="an IsaacGymEnvs cfg/ folder (with train/*.yaml)")
    ap.add_argument("--task", default=None, help=f"run every file against this task (default: by name, "
                                                 f"else {DEFAULT_TASK})")
    ap.add_argument("--num-envs", type=int, default=16)
    ap.add_argument("--max-iterations", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per run before it counts as a hang")
    ap.add_argument("--only", default="", help="comma-separated train file names (without .yaml)")
    ap.add_argument("--workdir", type=Path, default=None, help="where runs/ goes (default: a temporary folder)")
    ap.add_argument("--test", action="store_true", help="also replay each trained checkpoint with test=True")
    a = ap.parse_args(argv)
    files = sorted((a.cfg / "train").glob("*.yaml"))
    if a.only:
        keep = set(a.only.split(","))
        files = [f for f in files if f.stem in keep]
    if not files:
        print(f"no train files under {a.cfg / 'train'}", file=sys.stderr)
        return 2
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="compat_configs_"))
    workdir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    width = max(len(f.stem) for f in files)
    for f in files:
        task = task_for(f.stem, a.task)
        kind, detail, secs = run_one(a.cfg, f.stem, task, a.num_envs, a.max_iterations, a.timeout, workdir)
        counts[kind] = counts.get(kind, 0) + 1
        print(f"{f.stem:<{width}}  {task:<18} {kind:<11} {secs:6.1f} s  {detail}", flush=True)
        if a.test and kind == "trains":
            ckpts = sorted(workdir.glob(f"runs/compat_{f.stem}_*/nn/*.pth"), key=os.path.getmtime)
            if ckpts:
                kind, detail, secs = run_one(a.cfg, f.stem, task, a.num_envs, a.max_iterations, a.timeout,
                                             workdir, test_checkpoint=str(ckpts[-1]))
                counts[f"test {kind}"] = counts.get(f"test {kind}", 0) + 1
                print(f"{'  test=True':<{width}}  {task:<18} {kind:<11} {secs:6.1f} s  {detail}", flush=True)
    print(f"{len(files)} train files: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return 0 if not (counts.get("traceback") or counts.get("hang")) else 1


if __name__ == "__main__":
    sys.exit(main())
