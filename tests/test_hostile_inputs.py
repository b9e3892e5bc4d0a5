"""Hostile inputs, second round (issue 38): one case per class.

- lost data: the stale-temporary sweep, outputs that are inputs, run folders of the same second,
  kill -9 of hrl-skills / hrl-collect / hrl-train at several points;
- writes outside the folder: run names, library names, manifest paths;
- code from a file: TorchScript LLCs need an explicit trust setting;
- a hang: hrl-deploy at an absurd rate;
- silent nonsense and tracebacks: LLC spec fields, hrl-skills settings, datasets, the other CLIs'
  numbers, the task API (closed task, meta actions, unknown slices, bad env ids, inf actions).

Everything is real: files written by the project's writers (or edited from them with h5py / torch),
MuJoCo tasks, the CLIs in subprocesses or, where a new interpreter per case would cost too much,
their entry functions in process behind the same ``exit_on_user_error``. A kill is a real SIGKILL:
at a time, or just before the n-th rename of the process (``os.replace`` wrapped in the child).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import humanoid_walk_data, train_in_process

from isaacgymenvs_hrl.utils.atomic import TAG

ENV = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
BASE = ["num_envs=16", "max_iterations=1", "train.params.config.minibatch_size=256", "headless=True"]
SKILLS = ["algo=bc", "skills.epochs=1", "skills.hidden=[16]", "skills.batch_size=64", "report.videos=false",
          "report.exploration=false", "report.diagnostics=false", "torch_threads=1"]


def _tree(folder: Path, skip_ours: bool = False) -> dict:
    """{relative path: sha256} of every file under ``folder`` (folders as None); ``skip_ours`` leaves
    out the project's temporaries, staging folders and journals."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in sorted(folder.rglob("*")) if not (skip_ours and f".{TAG}." in str(p.relative_to(folder)))}


def _cli(module, args, cwd, timeout=300):
    res = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                         timeout=timeout, env=ENV)
    return res.returncode, res.stdout + res.stderr, res.stderr


def _one_line(code, out, err, *needles) -> str:
    assert code == 2, out[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err[-3000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in out, out[-3000:]
    return lines[0]


def _in_process(entry, capsys, *args):
    """``exit_on_user_error(entry)(*args)``: (status, stdout + stderr, stderr)."""
    from isaacgymenvs_hrl.errors import exit_on_user_error
    capsys.readouterr()
    status = 0
    try:
        exit_on_user_error(entry)(*args)
    except SystemExit as exc:
        status = exc.code
    out = capsys.readouterr()
    return status, out.out + out.err, out.err


def _compose(config_name: str, overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from isaacgymenvs_hrl.paths import CFG_DIR
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.1"):
        return compose(config_name=config_name, overrides=list(overrides))


def _skills(args, capsys):
    """hrl-skills' own path in process: compose skills_config, then ``_train``."""
    import isaacgymenvs_hrl.skills_cli as cli
    from isaacgymenvs_hrl.skills.common import distributed
    algo = [a for a in args if a.startswith("algo=")]
    cfg = _compose("skills_config", [a for a in SKILLS if not (algo and a.startswith("algo="))] + list(args))
    return _in_process(cli._train, capsys, cfg, distributed("cpu"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- fixtures: a real run, a real dataset, a real LLC ------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 1-iteration flat run whose name and second were already taken by 90 folders holding a user
    file (the run must get its own folder), its ONNX export, a dataset and a BC LLC with its report."""
    import isaacgymenvs_hrl.train as train
    from isaacgymenvs_hrl.datasets import write_dataset
    from isaacgymenvs_hrl.export.exporter import export_policy
    from isaacgymenvs_hrl.export.run import load_run
    d = tmp_path_factory.mktemp("hostile")
    now = datetime.now()
    taken = [d / "runs" / f"same_{now + timedelta(seconds=s):%Y-%m-%d_%H-%M-%S}" for s in range(90)]
    for folder in taken:
        folder.mkdir(parents=True)
        (folder / "user.txt").write_text("another run's file")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        train.run(_compose("config", BASE + ["experiment=same"]), overrides=[])
    finally:
        os.chdir(cwd)
    ckpt = sorted(d.glob("runs/same_*/nn/*.pth"))[-1]
    # its TensorBoard file is complete when train.run returns (the tests below compare the folder
    # before and after a command; a background flush two minutes later would look like a write)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    (events,) = ckpt.parent.parent.glob("summaries/events.out.tfevents*")
    assert [e.value for e in EventAccumulator(str(events)).Reload().Scalars("info/epochs")] == [1.0]
    run = load_run(ckpt)
    onnx, _ = export_policy(run, d / "policy.onnx", fmt="onnx", part="full")
    run.task.close()

    data, meta = humanoid_walk_data()
    dataset = write_dataset(d / "walk.hdf5", data, meta)
    llc = d / "llcs" / "walk.llc.pt"
    code, out, _ = _cli("isaacgymenvs_hrl.skills_cli", SKILLS + [f"dataset={dataset}", f"output={llc}"], d)
    assert code == 0, out[-3000:]
    return {"dir": d, "ckpt": ckpt, "taken": taken, "onnx": onnx, "dataset": dataset, "data": data, "meta": meta,
            "llc": llc}


def _dataset_variant(world, name: str, edit) -> Path:
    """A copy of the fixture's dataset, edited in place with h5py (as a careless tool would)."""
    path = world["dir"] / "variants" / name
    path.parent.mkdir(exist_ok=True)
    shutil.copy(world["dataset"], path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def _replace(f, key, values):
    del f[key]
    f.create_dataset(key, data=values)


# ---- lost data -----------------------------------------------------------------------------------------
def test_the_sweep_removes_only_our_dead_temporary_files(tmp_path):
    from isaacgymenvs_hrl.utils.atomic import remove_stale_tmp, tmp_path as tmp_name
    dead = _dead_pid()
    ours = tmp_path / f"model.pth.{TAG}.tmp.{dead}"
    ours.write_bytes(b"half a checkpoint")
    live = tmp_name(tmp_path / "model.pth")                          # this process: still writing
    live.write_bytes(b"in progress")
    users = [tmp_path / f"notes.txt.tmp.{dead}", tmp_path / f"data.tmp.{dead}", tmp_path / "x.tmp.1"]
    for p in users:
        p.write_text("user data")
    folder = tmp_path / f"results.{TAG}.tmp.{dead}"                 # even our pattern: a folder stays
    folder.mkdir()
    (folder / "keep.txt").write_text("user data")
    before = _tree(tmp_path)
    assert remove_stale_tmp(tmp_path) == [ours]
    after = _tree(tmp_path)
    assert after == {k: v for k, v in before.items() if k != ours.name}


def test_replay_with_test_true_keeps_user_files_that_look_temporary(world, tmp_path, capsys, monkeypatch):
    """Issue 38's example: a user's ``*.tmp.<N>`` file and folder beside the replayed checkpoint."""
    dead = _dead_pid()
    nn_dir = world["ckpt"].parent
    user_file, user_dir = nn_dir / f"mine.tmp.{dead}", nn_dir / f"mine_dir.tmp.{dead}"
    user_file.write_text("user data")
    user_dir.mkdir()
    (user_dir / "a.txt").write_text("user data")
    stale = nn_dir / f"{world['ckpt'].name}.{TAG}.tmp.{dead}"
    stale.write_bytes(b"half a checkpoint")
    monkeypatch.chdir(tmp_path)
    try:
        status, out, _ = train_in_process(BASE + ["test=True", f"checkpoint={world['ckpt']}",
                                                  "train.params.config.player.games_num=1"], capsys)
        assert status == 0, out[-3000:]
        assert user_file.read_text() == "user data" and (user_dir / "a.txt").read_text() == "user data"
        assert not stale.exists()
    finally:
        user_file.unlink()
        shutil.rmtree(user_dir)


def test_two_runs_of_one_name_and_second_get_their_own_folders(world):
    runs = sorted({p.parent.parent for p in world["dir"].glob("runs/same_*/nn/*.pth")})
    assert len(runs) == 1 and runs[0].name.endswith("_2") and runs[0].name[:-2] in {t.name for t in world["taken"]}
    for folder in world["taken"]:
        assert [p.name for p in folder.iterdir()] == ["user.txt"]
        assert (folder / "user.txt").read_text() == "another run's file"
    from isaacgymenvs_hrl.utils.atomic import new_dir
    first, second = new_dir(world["dir"] / "claims" / "x"), new_dir(world["dir"] / "claims" / "x")
    assert first != second and first.is_dir() and second.is_dir()


def test_skills_refuses_to_write_over_its_dataset(world):
    before = _tree(world["dir"] / "llcs") | {"dataset": hashlib.sha256(world["dataset"].read_bytes()).hexdigest()}
    ds = world["dataset"]
    for out_args, needle in (([f"output={ds}"], f"output={ds} is the command's input dataset={ds}"),
                             ([f"output={world['dir'] / 'x.llc.pt'}", f"report_dir={ds}"], "report_dir=")):
        code, out, err = _cli("isaacgymenvs_hrl.skills_cli", SKILLS + [f"dataset={ds}", *out_args], world["dir"])
        _one_line(code, out, err, needle, "choose another")
    after = _tree(world["dir"] / "llcs") | {"dataset": hashlib.sha256(ds.read_bytes()).hexdigest()}
    assert after == before and not (world["dir"] / "x.llc.pt").exists()


def test_import_refuses_to_write_over_its_source(world, tmp_path):
    src = tmp_path / "src.hdf5"
    shutil.copy(world["dataset"], src)
    before = src.read_bytes()
    code, out, err = _cli("isaacgymenvs_hrl.cli.import_dataset", [f"source={src}", f"output={tmp_path}/./src.hdf5"],
                          tmp_path)
    _one_line(code, out, err, "is the command's input source=")
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["src.hdf5"]


# ---- kill -9 at several points ---------------------------------------------------------------------------
# Runs a CLI module with os.replace wrapped: SIGKILL just before the n-th rename onto a name that
# starts with the given prefix ('' = any), so the kill lands at a known step of a commit.
KILLER = r"""
import os, runpy, signal, sys
prefix, nth = os.environ["KILL_BEFORE_RENAME"].rsplit(":", 1)
count, real = [0], os.replace
def replace(src, dst, *args, **kwargs):
    if os.path.basename(os.fspath(dst)).startswith(prefix):
        count[0] += 1
        if count[0] == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)
os.replace = replace
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def _killed(module, args, cwd, *, before_rename=None, after_s=None, timeout=300):
    """Run ``module`` and kill it (-9) before a rename or after ``after_s`` seconds; returns its exit code."""
    env = dict(ENV, KILL_BEFORE_RENAME=before_rename or ":0")
    proc = subprocess.Popen([sys.executable, "-c", KILLER, module, *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if after_s is not None:
        try:
            proc.wait(after_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _llc_state(folder: Path) -> str:
    """'previous', 'new' or a description of what is wrong, for llcs/walk.llc.pt and its report."""
    from isaacgymenvs_hrl.hrl import load_llc
    llc, report = folder / "walk.llc.pt", folder / "walk.llc_report"
    if _tree(folder, skip_ours=True) == PREVIOUS[folder]:
        return "previous"
    metrics = json.loads((report / "metrics.json").read_text())
    if load_llc(llc).spec["provenance"]["metrics"] != metrics:
        return "LLC and report differ"
    if not (report / "losses.png").is_file() or "checkpoint:" not in (report / "index.md").read_text():
        return "incomplete report"
    return "new"


PREVIOUS: dict = {}


def test_kill_9_of_hrl_skills_leaves_the_previous_or_the_new_llc_and_report(world, tmp_path):
    from isaacgymenvs_hrl.utils.atomic import finish_commits
    folder = tmp_path / "llcs"
    folder.mkdir()
    shutil.copy(world["llc"], folder / "walk.llc.pt")
    shutil.copytree(world["llc"].parent / "walk.llc_report", folder / "walk.llc_report")
    PREVIOUS[folder] = _tree(folder)
    args = SKILLS + ["skills.epochs=2", f"dataset={world['dataset']}", f"output={folder / 'walk.llc.pt'}"]
    # renames onto walk.llc*: 1 the LLC into its staging folder, 2 the commit journal, 3 the LLC into
    # place, 4 the old report aside, 5 the new report into place; a kill before 1 (training), before
    # 4 (between the LLC and the report: issue 38's example) and before 5, then one at a time. Each
    # try has its own seed, so a new LLC differs from the one before.
    seen = []
    points = [{"before_rename": f"walk.llc:{n}"} for n in (1, 4, 5)] + [{"after_s": 6.0}]
    for seed, point in enumerate(points, start=1):
        code, out = _killed("isaacgymenvs_hrl.skills_cli", args + [f"seed={seed}"], tmp_path, **point)
        if code == 0:
            seen.append("finished")
        else:
            assert code == -signal.SIGKILL, out[-3000:]
            finish_commits(folder)                  # what the next hrl-skills run does first
            seen.append(_llc_state(folder))
            assert seen[-1] in ("previous", "new"), (point, seen[-1], _tree(folder))
        PREVIOUS[folder] = _tree(folder, skip_ours=True)
    assert seen[:3] == ["previous", "new", "new"], seen
    # the next run sweeps what the kills left and writes a complete set
    code, out, _ = _cli("isaacgymenvs_hrl.skills_cli", args + ["seed=99"], tmp_path)
    assert code == 0, out[-3000:]
    PREVIOUS[folder] = {}
    assert _llc_state(folder) == "new"
    assert sorted(p.name for p in folder.iterdir()) == ["walk.llc.pt", "walk.llc_report"]


def test_kill_9_of_hrl_collect_leaves_the_previous_or_a_new_dataset(world, tmp_path):
    from isaacgymenvs_hrl.datasets import load_dataset
    out_file = tmp_path / "d.hdf5"
    shutil.copy(world["dataset"], out_file)
    args = ["task=HumanoidLocomotion", "num_envs=2", "num_episodes=2", "task.env.episodeLength=20",
            f"output={out_file}", "torch_threads=1"]
    previous = out_file.read_bytes()
    for point in ({"before_rename": "d.hdf5:1"}, {"after_s": 5.0}):
        code, out = _killed("isaacgymenvs_hrl.collect", args, tmp_path, **point)
        assert code in (0, -signal.SIGKILL), out[-3000:]
        if out_file.read_bytes() != previous:
            data, meta = load_dataset(out_file)                        # a complete new dataset
            assert meta["task"] == "HumanoidLocomotion" and 2 <= len(data["actions"]) <= 40
            previous = out_file.read_bytes()
        leftovers = [p.name for p in tmp_path.iterdir() if p.name != "d.hdf5"]
        assert all(f".{TAG}.tmp." in name for name in leftovers), leftovers
    code, out, _ = _cli("isaacgymenvs_hrl.collect", args, tmp_path)
    assert code == 0, out[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["d.hdf5"]


def test_kill_9_of_hrl_train_leaves_only_complete_files(tmp_path):
    import yaml

    from isaacgymenvs_hrl.learning.checkpoints import load_checkpoint
    args = BASE + ["max_iterations=2", "train.params.config.save_frequency=1", "experiment=k"]
    # the first rename is config.yaml's, the second the first checkpoint's
    for point in ({"before_rename": ":1"}, {"before_rename": ":2"}, {"after_s": 9.0}):
        code, out = _killed("isaacgymenvs_hrl.train", args, tmp_path, **point)
        assert code in (0, -signal.SIGKILL), out[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) >= 2                       # one folder per run that got that far (each its own)
    for run in runs:
        for p in run.rglob("*"):
            if not p.is_file() or f".{TAG}.tmp." in p.name or "summaries" in p.parts:
                continue
            if p.name == "config.yaml":
                assert yaml.safe_load(p.read_text())["task"]["name"] == "HumanoidLocomotion", p
            else:
                assert p.suffix == ".pth", p
                assert "model" in load_checkpoint(p), p


def test_a_commit_killed_half_way_is_completed_by_the_next_run(tmp_path):
    """commit_together's journal: a kill between the renames of an LLC and its report."""
    from isaacgymenvs_hrl.utils.atomic import finish_commits
    (tmp_path / "a.pt").write_text("old llc")
    (tmp_path / "a_report").mkdir()
    (tmp_path / "a_report" / "m.json").write_text("old report")
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from pathlib import Path
from isaacgymenvs_hrl.utils import atomic
d = Path({str(tmp_path)!r})
llc_stage, rep = atomic.staging_dir(d / "a.pt"), atomic.staging_dir(d / "a_report")
(llc_stage / "a.pt").write_text("new llc")
(rep / "m.json").write_text("new report")
real, count = os.replace, [0]
def replace(src, dst):
    count[0] += 1
    if count[0] == 3:            # 1 journal, 2 the LLC, 3 the old report aside: killed here
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
os.replace = replace
atomic.commit_together([(llc_stage / "a.pt", d / "a.pt"), (rep, d / "a_report")])
"""
    assert subprocess.run([sys.executable, "-c", script], timeout=300).returncode == -signal.SIGKILL
    assert (tmp_path / "a.pt").read_text() == "new llc"
    assert [p.name for p in finish_commits(tmp_path)] == ["a.pt", "a_report"]
    assert (tmp_path / "a_report" / "m.json").read_text() == "new report"
    assert sorted(p.name for p in tmp_path.iterdir() if TAG not in p.name) == ["a.pt", "a_report"]
    assert not list(tmp_path.glob(f"*.{TAG}.commit.*")) and not list(tmp_path.glob(f"*.{TAG}.old.*"))


# ---- writes outside the folder ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, needle", [("../../x", "experiment='../../x' must be a plain folder name"),
                                          ("e" * 300, "at most 120 characters (it has 300)")])
def test_train_run_names_stay_in_the_runs_folder(tmp_path, monkeypatch, capsys, name, needle):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    status, out, err = train_in_process(BASE + [f"experiment={name}"], capsys)
    _one_line(status, out, err, needle)
    assert _tree(tmp_path) == {"a": None, "a/b": None}


def _small_library(tmp_path, world) -> Path:
    from isaacgymenvs_hrl.hrl import library_add
    manifest = tmp_path / "lib" / "manifest.json"
    manifest.parent.mkdir()
    library_add.add("humanoid/walk", world["llc"], "llc", "hrl-skills ...", 0, manifest=manifest)
    return manifest


def test_library_names_and_manifest_paths_stay_in_the_library(world, tmp_path):
    from isaacgymenvs_hrl.hrl import library, library_add
    manifest = _small_library(tmp_path, world)
    before = _tree(tmp_path)
    for name in ("../../escaped", "/abs/escaped", "humanoid/../../escaped"):
        with pytest.raises(library.LibraryError, match="library name .*no '..', no leading '/'"):
            library_add.add(name, world["llc"], "llc", "x", 0, manifest=manifest)
    assert _tree(tmp_path) == before
    code, out, err = _cli("isaacgymenvs_hrl.cli.library", ["add", "../../escaped", world["llc"], "--command", "x",
                                                           "--seed", "0"], tmp_path)
    _one_line(code, out, err, "library name '../../escaped'")
    assert not list(library.LIBRARY_DIR.parent.parent.glob("escaped*"))
    blob = json.loads(manifest.read_text())
    entry = blob["entries"]["humanoid/walk"]
    outside = tmp_path / "outside.llc.pt"
    shutil.copy(world["llc"], outside)
    for file in (str(outside), "../outside.llc.pt"):            # served and verified before: now refused
        blob["entries"]["humanoid/walk"] = dict(entry, file=file)
        manifest.write_text(json.dumps(blob))
        with pytest.raises(library.LibraryError, match="file.* leaves its folder"):
            library.verify("humanoid/walk", manifest)
    for size, needle in ((None, "'size' must be an integer number of bytes, got None"), ("123", "got '123'")):
        blob["entries"]["humanoid/walk"] = {k: v for k, v in dict(entry, size=size).items() if v is not None}
        manifest.write_text(json.dumps(blob))
        with pytest.raises(library.LibraryError, match=needle):
            library.verify("humanoid/walk", manifest)


# ---- code from a file ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scripted_llc(world):
    from torch import nn

    from isaacgymenvs_hrl.hrl import wrap_module

    class Policy(nn.Module):
        def forward(self, obs, z):
            return torch.tanh(obs[:, :21] + z.sum(-1, keepdim=True))
    return wrap_module(world["dir"] / "scripted.llc.pt", Policy(), torch.zeros(2, 52), torch.zeros(2, 3),
                       task_family="humanoid", obs=[["proprio", 52]],
                       action={"dim": 21, "control_type": world["meta"]["control_type"]},
                       latent={"dim": 3, "modes": ["continuous"], "normalization": "none"},
                       default_steps=5, control_dt=world["meta"]["control_dt"])


def test_torchscript_llcs_load_only_when_trusted(scripted_llc, tmp_path, monkeypatch, capsys):
    from isaacgymenvs_hrl.hrl import LLCError, load_llc
    with pytest.raises(LLCError, match="holds a TorchScript policy.*task.env.llc.trust_code=True"):
        load_llc(scripted_llc)
    llc = load_llc(scripted_llc, trust_code=True)
    assert llc(torch.zeros(1, 52), torch.zeros(1, 3)).shape == (1, 21)
    import isaacgymenvs_hrl                         # the config key opts in, as on the command line
    env = isaacgymenvs_hrl.make(0, "HumanoidLocation", 2, "cpu", "cpu", overrides=[
        f"task.env.llc.checkpoint={scripted_llc}", "task.env.llc.trust_code=True"])
    env.reset()
    env.step(torch.zeros(2, 3))
    env.close()
    monkeypatch.chdir(tmp_path)
    status, out, err = train_in_process(["task=HumanoidLocation", f"task.env.llc.checkpoint={scripted_llc}", *BASE],
                                        capsys)
    _one_line(status, out, err, "holds a TorchScript policy", "task.env.llc.trust_code=True")
    assert not (tmp_path / "runs").exists()


# ---- a hang and the other CLIs' numbers ------------------------------------------------------------------
@pytest.mark.parametrize("args, needles", [
    (["rate_hz=1e-9"], ["rate_hz must be a number >= 1 and <= 10000, got 1e-09"]),
    (["duration_s=-1"], ["duration_s must be a number > 0, got -1"]),
    (["report={dir}"], ["report={dir} is a folder"]),
    (["report={policy}"], ["is the command's input policy="]),
])
def test_deploy_refuses_settings_that_hang_or_lose_files(world, tmp_path, args, needles):
    fill = {"dir": str(tmp_path), "policy": str(world["onnx"])}
    before = _tree(world["dir"]) if "policy" in args[0] else None
    code, out, err = _cli("isaacgymenvs_hrl.cli.deploy", [f"policy={world['onnx']}", "duration_s=1",
                                                          *(a.format(**fill) for a in args)], tmp_path, timeout=300)
    _one_line(code, out, err, *(n.format(**fill) for n in needles))
    assert list(tmp_path.iterdir()) == [] and (before is None or _tree(world["dir"]) == before)


def test_export_refuses_a_negative_verification_and_its_own_checkpoint(world, tmp_path):
    before = _tree(world["ckpt"].parent.parent)
    code, out, err = _cli("isaacgymenvs_hrl.cli.export", [f"checkpoint={world['ckpt']}", "verify_samples=-3",
                                                          f"output={tmp_path / 'p.onnx'}"], tmp_path)
    _one_line(code, out, err, "verify_samples must be an integer >= 0, got -3")
    code, out, err = _cli("isaacgymenvs_hrl.cli.export", [f"checkpoint={world['ckpt']}",
                                                          f"output={world['ckpt']}"], tmp_path)
    _one_line(code, out, err, "is the command's input checkpoint=")
    assert _tree(world["ckpt"].parent.parent) == before and list(tmp_path.iterdir()) == []


def test_import_refuses_a_negative_control_period(world, tmp_path, capsys):
    from isaacgymenvs_hrl.cli.import_dataset import main
    status, out, err = _in_process(main, capsys, [f"source={world['dataset']}", f"output={tmp_path / 'o.hdf5'}",
                                                  "control_dt=-1"])
    _one_line(status, out, err, "control_dt must be a number > 0, got -1")
    assert list(tmp_path.iterdir()) == []


# ---- silent nonsense: LLC specs, hrl-skills settings, datasets -------------------------------------------
@pytest.mark.parametrize("edit, needle", [
    (lambda s: s.update(default_steps=0), "default_steps: expected an integer >= 1, found 0"),
    (lambda s: s.update(default_steps=-3), "default_steps: expected an integer >= 1, found -3"),
    (lambda s: s["latent"]["meaning"].update(half_range=[0.0, 1.0, 1.0]), "latent.meaning.half_range: expected 3 positive"),
    (lambda s: s["action"].update(squash="sigmoid"), "action.squash: expected one of ['clip', 'tanh'], found 'sigmoid'"),
    (lambda s: s.update(control_dt="0.02"), "control_dt: expected a number > 0, found '0.02'"),
])
def test_llc_spec_fields_are_checked_when_read(world, tmp_path, edit, needle):
    from isaacgymenvs_hrl.hrl import LLCError, load_llc
    blob = torch.load(world["llc"], weights_only=True)
    edit(blob["spec"])
    path = tmp_path / "edited.llc.pt"
    torch.save(blob, path)
    with pytest.raises(LLCError) as info:
        load_llc(path)
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("args, needle", [
    (["skills.hidden=[0]"], "skills.hidden[0] must be a positive integer, got 0"),
    (["algo=ldse", "skills.latent_dim=0"], "skills.latent_dim must be a positive integer, got 0"),
    (["skills.default_steps=0"], "skills.default_steps must be a positive integer, got 0"),
    (["skills.val_fraction=1.0"], "skills.val_fraction must be a number >= 0 and < 1, got 1.0"),
])
def test_skills_settings_are_checked(world, tmp_path, capsys, args, needle):
    out_file = tmp_path / "s.llc.pt"
    status, out, err = _skills([f"dataset={world['dataset']}", f"output={out_file}", *args], capsys)
    _one_line(status, out, err, needle)
    assert list(tmp_path.iterdir()) == []


def _disagree(f):
    x = f["obs/proprio"][()]
    _replace(f, "obs/proprio", x + 1.0)


def _one_step(f):
    for key in ("observations", "actions", "rewards", "terminals", "timeouts", "obs/proprio", "obs/task"):
        _replace(f, key, f[key][()][:1])
    f["timeouts"][0] = True


DATASET_CASES = [
    ("int-actions", lambda f: _replace(f, "actions", (np.arange(f["actions"].size) % 17).reshape(f["actions"].shape)),
     "/actions reach 16, the tasks' actions lie in [-1, 1]"),
    ("no-episode-end", lambda f: _replace(f, "timeouts", np.zeros(len(f["timeouts"]), bool)),
     "no step ends an episode"),
    ("slices-disagree", _disagree, "/obs/proprio differs from its columns 0:52 of /observations"),
    ("one-step", _one_step, "has 1 step; at least 2 are needed"),
    ("byte-rewards", lambda f: _replace(f, "rewards", np.array([b"1.5"] * len(f["rewards"]))),
     "/rewards holds |S3 values, numbers are needed"),
]


@pytest.mark.parametrize("name, edit, needle", DATASET_CASES, ids=[c[0] for c in DATASET_CASES])
def test_datasets_are_checked_when_read(world, tmp_path, capsys, name, edit, needle):
    path = _dataset_variant(world, f"{name}.hdf5", edit)
    status, out, err = _skills([f"dataset={path}", f"output={tmp_path / 's.llc.pt'}"], capsys)
    _one_line(status, out, err, needle)
    assert list(tmp_path.iterdir()) == []


def test_one_dataset_case_through_the_real_cli(world, tmp_path):
    path = _dataset_variant(world, "cli-no-end.hdf5", DATASET_CASES[1][1])
    code, out, err = _cli("isaacgymenvs_hrl.skills_cli", SKILLS + [f"dataset={path}", f"output={tmp_path / 's.llc.pt'}"],
                          tmp_path)
    _one_line(code, out, err, "no step ends an episode")
    assert list(tmp_path.iterdir()) == []


# ---- the task API ----------------------------------------------------------------------------------------
@pytest.fixture
def task():
    import isaacgymenvs_hrl
    t = isaacgymenvs_hrl.make(seed=0, task="HumanoidLocomotion", num_envs=3, sim_device="cpu", rl_device="cpu")
    t.reset()
    yield t
    t.close()


@pytest.mark.parametrize("ids, needle", [(-1, "got [-1]"), ([3], "got [3]"), ([1.5], "must be integers"),
                                         (torch.tensor([0.0]), "must be integers")])
def test_bad_env_ids_reset_nothing(task, ids, needle):
    from isaacgymenvs_hrl.errors import UserError
    for _ in range(3):
        task.step(torch.zeros(3, task.num_actions))
    progress = task.progress_buf.clone()
    for call in (task.reset_idx, task.reset):
        with pytest.raises(UserError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            call(ids)
    assert torch.equal(task.progress_buf, progress), "an env was reset"


def test_task_api_misuse_is_one_clear_error(task):
    from isaacgymenvs_hrl.errors import UserError
    with pytest.raises(UserError, match=r"unknown observation slice\(s\) \['unknown'\]; HumanoidLocomotion has"):
        task.obs_slice(task.obs_buf, "unknown")
    assert torch.equal(task.obs_slice(task.obs_buf, "task"), task.obs_buf[:, task.obs_slices["task"]])
    with pytest.raises(UserError, match="meta device"):
        task.step(torch.zeros(3, task.num_actions, device="meta"))
    task.close()
    with pytest.raises(UserError, match="was closed"):
        task.step(torch.zeros(3, task.num_actions))
    with pytest.raises(UserError, match="was closed"):
        task.reset()


def test_inf_actions_are_counted_like_nan_actions(task):
    before = int(task.nan_action_count)
    actions = torch.zeros(3, task.num_actions)
    actions[0, 0], actions[1, 2], actions[2, 1] = float("inf"), float("-inf"), float("nan")
    _, _, done, extras = task.step(actions)
    assert int(extras["nan_actions"]) - before == 3
    assert done.tolist() == [1, 1, 1]
