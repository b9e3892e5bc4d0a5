"""hrl-study end to end at a tiny budget: each experiment's sweep through Hydra's joblib launcher
(real hrl-train processes, real MuJoCo and rl-games), the raw results beside the TensorBoard logs,
skip on rerun, never over an earlier result, the report (markdown + PNG) whose written command
reproduces the sweep, and the SLURM launcher writing its job script on a machine without SLURM.

The tiny settings (4 envs, 16-step episodes, one or two epochs) make every number meaningless;
the tests check the machinery, not the learning.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="the [sweep] extra: pip install hydra-joblib-launcher")

STUDY = [sys.executable, "-m", "isaacgymenvs_hrl.cli.study"]
TINY = ["budget.env_steps=64", "budget.num_envs=4", "budget.horizon=8", "+hrl_train.task.env.episodeLength=16",
        "+hrl_train.task.env.llc.match_epochs=5"]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def run(cmd, cwd, env=None, timeout=1800):
    """A command in its own process group: a sweep's launcher workers and hrl-train processes end
    with it on a timeout (which only catches hangs: a busy shared machine is slow)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def study(*args, cwd, env=None):
    return run(STUDY + list(args), cwd, env)


def results(sweep: Path) -> dict:
    return {p.relative_to(sweep).parts[:3]: p for p in sorted(sweep.glob("*/*/*/runs/*/result.json"))}


@pytest.fixture(scope="module")
def peg_sweep(tmp_path_factory):
    """peg_transfer, flat PPO and the LDSE high level with skill matching, on the square peg: the
    matching reads a round-peg dataset collected here by the scripted expert."""
    work = tmp_path_factory.mktemp("peg")
    collect = run([sys.executable, "-m", "isaacgymenvs_hrl.cli.collect", "task=FrankaPegInHole", "policy=expert",
                   "num_envs=4", "num_episodes=4", "task.env.episodeLength=40", "output=datasets/peg_round.hdf5"], work)
    assert collect.returncode == 0, collect.stderr[-2000:]
    args = ["run", "peg_transfer", "arm=flat,ldse_match", "setting=square_1mm", "seed=0", "out=sweep", *TINY]
    first = study(*args, *JOBLIB, cwd=work)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    return work, args


@pytest.fixture(scope="module")
def object_sweep(tmp_path_factory):
    work = tmp_path_factory.mktemp("objects")
    args = ["run", "object_transfer", "arm=ldse,helms", "setting=mixed", "seed=0", "out=sweep", *TINY]
    first = study(*args, *JOBLIB, cwd=work)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    return work, args


@pytest.fixture(scope="module")
def multires_sweep(tmp_path_factory):
    """multires: the meta-controller, one fixed head (h=32) and a random head over franka/stack_mrs."""
    work = tmp_path_factory.mktemp("multires")
    args = ["run", "multires", "arm=meta,h32,random", "setting=sparse", "seed=0", "out=sweep", *TINY]
    first = study(*args, *JOBLIB, cwd=work)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    return work, args


@pytest.fixture(scope="module")
def stack_sweep(tmp_path_factory):
    """stack_methods: every arm, on the staged reward; BC fine-tuning clones a few expert episodes."""
    work = tmp_path_factory.mktemp("stack")
    collect = run([sys.executable, "-m", "isaacgymenvs_hrl.cli.collect", "task=FrankaStack", "policy=expert",
                   "num_envs=4", "num_episodes=4", "task.env.episodeLength=40", "output=datasets/stack.hdf5"], work)
    assert collect.returncode == 0, collect.stderr[-2000:]
    args = ["run", "stack_methods", "arm=flat,bc_ft,bc_ft_warm,helms_cat,helms_mix,helms_anchored_z,ldse,npmp",
            "setting=staged",
            "seed=0", "out=sweep", *TINY]
    first = study(*args, *JOBLIB, cwd=work)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    return work, args


def check_results(sweep: Path, cells: dict) -> None:
    found = results(sweep)
    assert set(found) == set(cells)
    for (arm, setting, seed), path in found.items():
        r = json.loads(path.read_text())
        assert (r["arm"], r["setting"], f"s{r['seed']}") == (arm, setting, seed)
        assert (path.parent / "summaries").is_dir() and (path.parent / "eval_summary.json").is_file()
        assert r["budget"]["k"] == cells[(arm, setting, seed)]
        assert r["budget"]["env_steps"] >= 64 and r["budget"]["env_steps"] == r["budget"]["epochs"] * 4 * 8 * r["budget"]["k"]
        assert f"max_iterations={r['budget']['epochs']}" in r["train_command"]
        for when in ("untrained", "trained"):
            assert 0.0 <= r["eval"][when]["success_per_episode"] <= 1.0
        ret = r["curve"]["return"]
        assert ret["value"] and len(ret["value"]) == len(ret["env_steps"]) == len(ret["wall_s"])
        assert ret["wall_s"] == sorted(ret["wall_s"]) and ret["wall_s"][0] > 0
        assert max(ret["env_steps"]) <= r["budget"]["env_steps"]


def test_peg_transfer_sweep_writes_raw_results(peg_sweep):
    work, _ = peg_sweep
    check_results(work / "sweep", {("flat", "square_1mm", "s0"): 1, ("ldse_match", "square_1mm", "s0"): 8})
    r = json.loads(results(work / "sweep")[("ldse_match", "square_1mm", "s0")].read_text())
    assert "task.env.llc.match_init=" + str(work / "datasets" / "peg_round.hdf5") in r["train_command"]
    assert "task.env.pegShapes=[square]" in r["train_command"] and r["return_scale"] == 8


def test_object_transfer_sweep_writes_raw_results(object_sweep):
    work, _ = object_sweep
    check_results(work / "sweep", {("ldse", "mixed", "s0"): 8, ("helms", "mixed", "s0"): 5})


def test_rerun_skips_finished_cells_and_never_overwrites(peg_sweep):
    work, args = peg_sweep
    before = {k: (p, p.read_bytes()) for k, p in results(work / "sweep").items()}
    runs = sorted(work.glob("sweep/*/*/*/runs/*"))
    again = study(*args, *JOBLIB, cwd=work)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("done already") == 2
    assert sorted(work.glob("sweep/*/*/*/runs/*")) == runs
    assert {k: (p, p.read_bytes()) for k, p in results(work / "sweep").items()} == before
    # another budget in the same folder is refused, in one line, before anything runs
    other = study(*[a if a != "budget.env_steps=64" else "budget.env_steps=4096" for a in args], cwd=work)
    assert other.returncode != 0 and "holds a result of another command" in other.stderr
    assert sorted(work.glob("sweep/*/*/*/runs/*")) == runs


def test_report_tables_pngs_and_the_command_beside_them(peg_sweep, object_sweep):
    import matplotlib.image

    peg, _ = peg_sweep
    objects, _ = object_sweep
    rep = study("report", str(peg / "sweep"), str(objects / "sweep"), "--out", "docs/results.md", cwd=peg)
    assert rep.returncode == 0, rep.stderr[-2000:]
    text = (peg / "docs" / "results.md").read_text()
    assert "## peg_transfer" in text and "## object_transfer" in text
    assert re.search(r"^\| flat PPO \| 1 \| 64 \(2 x 1\) \|", text, re.M)
    assert re.search(r"^\| HL over franka/peg_ldse, skill matching \| 1 \| 256 \(1 x 8\) \|", text, re.M)
    assert re.search(r"^\| HL over franka/stack_helms \(cubes, discrete\) \| 1 \| 160 \(1 x 5\) \|", text, re.M)
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert len(pngs) == 2
    for png in pngs:
        image = matplotlib.image.imread(peg / "docs" / png)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    # the command written beside the peg table is the sweep: rerun, every cell is found done
    command = next(line for line in text.splitlines() if line.startswith("hrl-study run peg_transfer"))
    rerun = study(*shlex.split(command)[1:], cwd=peg)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert rerun.stdout.count("done already") == 2


def test_report_of_an_empty_folder_is_one_line(tmp_path):
    rep = study("report", str(tmp_path), "--out", str(tmp_path / "r.md"), cwd=tmp_path)
    assert rep.returncode == 2 and "no finished cells" in rep.stderr and "Traceback" not in rep.stderr
    unknown = study("run", "peg_transfer", "arm=nope", "seed=0", "setting=square_1mm", f"out={tmp_path}/s",
                    cwd=tmp_path)
    assert unknown.returncode != 0 and "arm=nope is not an arm of study peg_transfer" in unknown.stderr


def test_slurm_launcher_writes_its_job_script(tmp_path):
    """hydra/launcher=submitit_slurm on a machine without SLURM: submitit pickles each cell and
    writes the sbatch script, then sbatch (here a program that refuses: no cluster) stops it."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install hydra-submitit-launcher")
    bin_dir = tmp_path / "no_slurm"
    bin_dir.mkdir()
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).write_text(f"#!/bin/sh\necho '{tool}: no SLURM cluster on this machine' >&2\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    out = study("run", "peg_transfer", "arm=flat,ldse", "setting=square_1mm", "seed=0", "out=sweep",
                "hydra/launcher=submitit_slurm", "hydra.launcher.partition=cpu", "hydra.launcher.timeout_min=120",
                "hydra.launcher.cpus_per_task=2", cwd=tmp_path, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert out.returncode != 0 and "sbatch: no SLURM cluster" in out.stderr
    scripts = list((tmp_path / "sweep" / ".submitit").glob(".submission_file_*.sh"))
    assert len(scripts) == 1
    script = scripts[0].read_text()
    for line in ("#SBATCH --array=0-1", "#SBATCH --partition=cpu", "#SBATCH --time=120",
                 "#SBATCH --cpus-per-task=2", "#SBATCH --job-name=hrl-study_peg_transfer"):
        assert line in script
    assert "-m submitit.core._submit" in script
    jobs = [pickle.load(open(p, "rb")) for p in (tmp_path / "sweep" / ".submitit").glob("*.pkl")]
    assert sorted(j.args[0][0] for j in jobs) == ["arm=flat", "arm=ldse"]
    assert not list((tmp_path / "sweep").glob("*/*/*/runs"))          # nothing ran here


def run_config(result_path: Path) -> dict:
    import yaml
    return yaml.safe_load((result_path.parent / "config.yaml").read_text())


def actor_outputs(result_path: Path) -> int:
    """The number of actions the cell's trained rl-games actor emits (its checkpoint's mean layer)."""
    from isaacgymenvs_hrl.learning.checkpoints import load_checkpoint
    (pth,) = sorted((result_path.parent / "nn").glob("*.pth"))[:1]
    return int(load_checkpoint(pth)["model"]["a2c_network.mu.weight"].shape[0])


def test_multires_sweep_fixes_or_draws_the_head(multires_sweep):
    work, _ = multires_sweep
    check_results(work / "sweep", {(arm, "sparse", "s0"): 8 for arm in ("meta", "h32", "random")})
    found = results(work / "sweep")
    heads = {arm: run_config(found[(arm, "sparse", "s0")])["task"]["env"]["llc"] for arm in ("meta", "h32", "random")}
    for arm, llc in heads.items():
        assert (llc["checkpoint"], llc["mode"], llc["prior"]) == ("franka/stack_mrs", "multires", False)
    assert (heads["meta"]["head"], heads["h32"]["head"], heads["random"]["head"]) == ("", 3, "random")
    assert run_config(found[("meta", "sparse", "s0")])["task"]["env"]["rewardType"] == "sparse"
    # the meta-controller emits 4 + 1 head scores and the 8-d latent; a fixed or random head, the latent only
    assert {arm: actor_outputs(found[(arm, "sparse", "s0")]) for arm in heads} == {"meta": 13, "h32": 8, "random": 8}


def test_stack_methods_sweep_runs_every_arm(stack_sweep):
    work, _ = stack_sweep
    k = {"flat": 1, "bc_ft": 1, "bc_ft_warm": 1, "helms_cat": 5, "helms_mix": 5, "helms_anchored_z": 5, "ldse": 8, "npmp": 5}
    check_results(work / "sweep", {(arm, "staged", "s0"): v for arm, v in k.items()})
    algos = {}
    for (arm, _, _), path in results(work / "sweep").items():
        cfg = run_config(path)
        assert cfg["task"]["env"]["rewardType"] == "staged"
        assert cfg["bc_init"] == (str(work / "datasets" / "stack.hdf5") if arm.startswith("bc_ft") else "")
        assert cfg["bc_warmup"] == (10 if arm == "bc_ft_warm" else 0)
        llc = cfg["task"]["env"]["llc"]
        algos[arm] = (llc["checkpoint"].split("/")[-1], llc["mode"] if llc["checkpoint"] else "", llc["prior"],
                      cfg["train"]["params"]["algo"]["name"])
    assert algos == {"flat": ("", "", False, "a2c_continuous"), "bc_ft": ("", "", False, "a2c_continuous"),
                     "bc_ft_warm": ("", "", False, "a2c_continuous"),
                     "helms_cat": ("stack_helms", "discrete", True, "hrl_prior_discrete"),
                     "helms_mix": ("stack_helms", "mixture", False, "hrl_mixture"),
                     "helms_anchored_z": ("stack_helms", "continuous", True, "hrl_prior_continuous"),
                     "ldse": ("stack_ldse", "continuous", False, "a2c_continuous"),
                     "npmp": ("stack_npmp", "continuous", False, "a2c_continuous")}


def test_report_and_rerun_of_the_stacking_studies(multires_sweep, stack_sweep):
    import matplotlib.image

    mres, _ = multires_sweep
    stack, _ = stack_sweep
    rep = study("report", str(mres / "sweep"), str(stack / "sweep"), "--out", "docs/results.md", cwd=mres)
    assert rep.returncode == 0, rep.stderr[-2000:]
    text = (mres / "docs" / "results.md").read_text()
    assert "## multires" in text and "## stack_methods" in text
    for row in (r"meta-controller \(HL picks head and z\) \| 1 \| 256 \(1 x 8\)",
                r"single resolution h=32 \(head 3\) \| 1 \| 256 \(1 x 8\)",
                r"random head per decision \| 1 \| 256 \(1 x 8\)", r"flat PPO \| 1 \| 64 \(2 x 1\)",
                r"HeLMS-cat \(discrete, anchored to the skill prior\) \| 1 \| 160 \(1 x 5\)",
                r"HeLMS continuous, anchored to the latent prior \| 1 \| 160 \(1 x 5\)",
                r"BC fine-tuning \(flat PPO from a cloned actor\) \| 1 \| 64 \(2 x 1\)"):
        assert re.search(r"^\| " + row + r" \|", text, re.M), row
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert len(pngs) == 2
    for png in pngs:
        image = matplotlib.image.imread(mres / "docs" / png)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    # the commands written beside the tables rerun the sweeps: every cell is found done, nothing trains
    runs = sorted(mres.glob("sweep/*/*/*/runs/*")) + sorted(stack.glob("sweep/*/*/*/runs/*"))
    for name, work, cells in (("multires", mres, 3), ("stack_methods", stack, 8)):
        command = next(line for line in text.splitlines() if line.startswith(f"hrl-study run {name}"))
        rerun = study(*shlex.split(command)[1:], *JOBLIB, cwd=work)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert rerun.stdout.count("done already") == cells
    assert sorted(mres.glob("sweep/*/*/*/runs/*")) + sorted(stack.glob("sweep/*/*/*/runs/*")) == runs


def test_every_study_grid_names_its_own_arms_and_settings():
    """The default grid of each cfg/study file sweeps only arms and settings the file defines, and
    the two stacking studies sweep every arm they define (an arm left out of the grid is never run)."""
    import yaml

    from isaacgymenvs_hrl.cli.study import STUDY_DIR, experiments

    assert {"multires", "stack_methods", "peg_transfer", "object_transfer"} <= set(experiments())
    for name in experiments():
        cfg = yaml.safe_load((STUDY_DIR / f"{name}.yaml").read_text())
        grid = cfg["hydra"]["sweeper"]["params"]
        for axis, defined in (("arm", cfg["arms"]), ("setting", cfg["settings"])):
            assert set(str(grid[axis]).split(",")) <= set(defined), (name, axis)
        if name in ("multires", "stack_methods"):
            assert str(grid["arm"]).split(",") == list(cfg["arms"]), name
    mres = yaml.safe_load((STUDY_DIR / "multires.yaml").read_text())["arms"]
    assert [a["train"][-1] for a in mres.values() if a["train"][-1].startswith("task.env.llc.head=")] == \
        [f"task.env.llc.head={h}" for h in (0, 1, 2, 3, 4, "random")]
