"""Hostile and careless inputs (issue 16): each gives one clear ``error:`` line and exit status 2,
no traceback, runs no code from a file, and loses no file.

The hrl-train cases run ``train.run`` in process on a Hydra-composed config behind the CLI's own
``exit_on_user_error`` (the same code path as ``hrl-train``, without a new interpreter per case);
a few cases and the other CLIs (hrl-collect, hrl-skills, hrl-import-dataset) run as subprocesses.
Every checkpoint is real: a tiny rl-games training writes it, the bad ones are made from it.
"""
from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import humanoid_walk_data, train_in_process
import torch

REPO = Path(__file__).resolve().parents[1]
BASE = ["num_envs=16", "max_iterations=1", "train.params.config.minibatch_size=256", "headless=True"]


def _snapshot(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def _train_in_process(args, capsys):
    return train_in_process(args, capsys)


class _Payload:
    """Unpickling this would create the marker file: the code-execution probe."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A real checkpoint from a 1-iteration run, and the bad files made from it."""
    d = tmp_path_factory.mktemp("hardening")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        from hydra import compose, initialize_config_dir

        import isaacgymenvs_hrl.train as train
        from isaacgymenvs_hrl.paths import CFG_DIR
        with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.1"):
            cfg = compose(config_name="config", overrides=BASE + ["experiment=good"])
        train.run(cfg, overrides=[])
    finally:
        os.chdir(cwd)
    good = Path(sorted(glob.glob(str(d / "runs" / "good_*" / "nn" / "*.pth")))[-1])
    state = torch.load(good, map_location="cpu", weights_only=True)
    (d / "empty.pth").write_bytes(b"")
    (d / "random.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    raw = good.read_bytes()
    (d / "truncated.pth").write_bytes(raw[: len(raw) // 2])
    evil = dict(state, model=dict(state["model"], payload=_Payload(d / "MARKER")))
    torch.save(evil, d / "payload.pth")
    nan = dict(state, model=dict(state["model"]))
    nan["model"]["a2c_network.mu.bias"] = torch.full_like(nan["model"]["a2c_network.mu.bias"], float("nan"))
    torch.save(nan, d / "nan.pth")
    torch.save([1, 2, 3], d / "list.pth")
    return {"dir": d, "good": good}


# (id, extra hrl-train args given the files, expected substrings of the one error line)
TRAIN_CASES = [
    ("controlFrequencyInv=0", lambda f: ["task.env.controlFrequencyInv=0"],
     ["task.env.controlFrequencyInv must be a positive integer, got 0"]),
    ("rl_device=tpu", lambda f: ["rl_device=tpu:3"], ["rl_device=tpu:3", "rl_device=cpu"]),
    ("sim_device=cuda", lambda f: ["sim_device=cuda:0"], ["sim_device=cuda:0", "use sim_device=cpu"]),
    ("seed=abc", lambda f: ["seed=abc"], ["seed must be an integer", "'abc'"]),
    ("clipActions=abc", lambda f: ["task.env.clipActions=abc"], ["task.env.clipActions must be a number", "'abc'"]),
    ("llc.steps=abc", lambda f: ["task.env.llc.steps=abc"], ["task.env.llc.steps must be an integer", "'abc'"]),
    ("~numEnvs", lambda f: ["~task.env.numEnvs"], ["task.env.numEnvs is missing"]),
    ("max_iterations=-1", lambda f: ["max_iterations=-1"], ["max_iterations must be a positive integer, got -1"]),
    ("max_iterations=abc", lambda f: ["max_iterations=abc"], ["max_iterations must be a positive integer", "'abc'"]),
    ("episodeLength=0", lambda f: ["task.env.episodeLength=0"], ["task.env.episodeLength must be a positive integer"]),
    ("~task.sim", lambda f: ["~task.sim"], ["task.sim is missing", "sim.substeps"]),
    ("~task.sim.substeps", lambda f: ["~task.sim.substeps"], ["task.sim.substeps is missing"]),
    ("demoResets.fraction=1.5", lambda f: ["task=FrankaStack", "task.env.demoResets.fraction=1.5"],
     ["task.env.demoResets.fraction must be a number >= 0 and <= 1, got 1.5"]),
    ("learning_rate=abc", lambda f: ["train.params.config.learning_rate=abc"],
     ["train.params.config.learning_rate must be a number > 0", "'abc'"]),
    ("gamma=2", lambda f: ["train.params.config.gamma=2"], ["train.params.config.gamma must be a number >= 0 and <= 1"]),
    ("minibatch_size=0", lambda f: ["train.params.config.minibatch_size=0"],
     ["train.params.config.minibatch_size must be a positive integer, got 0"]),
    ("games_num=0", lambda f: ["train.params.config.player.games_num=0"], ["player.games_num must be a positive integer"]),
    ("num_threads=-1", lambda f: ["num_threads=-1"], ["num_threads must be an integer >= 0"]),
    ("test=abc", lambda f: ["test=abc"], ["test must be True or False"]),
    ("sigma=abc", lambda f: ["sigma=abc"], ["sigma must be a number"]),
    ("capture_video_len=0", lambda f: ["capture_video_len=0"], ["capture_video_len must be a positive integer"]),
    ("pbt.enabled", lambda f: ["pbt.enabled=True"], ["population-based training is not implemented"]),
    ("rnn-seq_length=5", lambda f: ["+train.params.network.rnn={name:lstm,units:16,layers:1}",
                                    "train.params.config.seq_length=5"],
     ["needs num_envs * horizon_length (512) to be a multiple of train.params.config.seq_length (5)",
      "++train.params.config.seq_length=4"]),
    ("amp", lambda f: ["train.params.algo.name=amp_continuous"], ["amp_continuous", "AMP", "a2c_continuous"]),
    ("custom-network", lambda f: ["train.params.network.name=complex_net"],
     ["train.params.network.name=complex_net", "use train.params.network.name=actor_critic"]),
    ("empty-ckpt", lambda f: [f"checkpoint={f['dir'] / 'empty.pth'}"], ["empty.pth is empty (0 bytes)"]),
    ("random-ckpt", lambda f: [f"checkpoint={f['dir'] / 'random.pth'}"], ["random.pth is truncated or not a torch checkpoint"]),
    ("truncated-ckpt", lambda f: [f"checkpoint={f['dir'] / 'truncated.pth'}"], ["truncated.pth is truncated"]),
    ("truncated-ckpt-test", lambda f: ["test=True", f"checkpoint={f['dir'] / 'truncated.pth'}"], ["truncated.pth is truncated"]),
    ("payload-ckpt", lambda f: [f"checkpoint={f['dir'] / 'payload.pth'}"], ["payload.pth holds Python objects", "refused"]),
    ("payload-ckpt-test", lambda f: ["test=True", f"checkpoint={f['dir'] / 'payload.pth'}"], ["holds Python objects"]),
    ("nan-ckpt", lambda f: [f"checkpoint={f['dir'] / 'nan.pth'}"], ["a2c_network.mu.bias holds NaN"]),
    ("list-ckpt", lambda f: ["test=True", f"checkpoint={f['dir'] / 'list.pth'}"], ["holds a list, not an rl-games checkpoint"]),
    ("other-task-ckpt", lambda f: ["task=FrankaStack", "train.params.config.minibatch_size=128", f"checkpoint={f['good']}"],
     ["layer model.running_mean_std.running_mean is (55,) in the checkpoint but (86,) here",
      "55 observations in the checkpoint, 86 in this task"]),
    ("other-task-ckpt-test", lambda f: ["task=FrankaStack", "test=True", f"checkpoint={f['good']}"],
     ["(55,) in the checkpoint but (86,) here"]),
    ("other-network-ckpt-test", lambda f: ["test=True", "train.params.network.mlp.units=[32]", f"checkpoint={f['good']}"],
     ["layer model.a2c_network.actor_mlp.0.weight is (256, 55) in the checkpoint but (32, 55) here"]),
]


@pytest.mark.parametrize("case_id, args, expected", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_bad_input_is_one_clear_line(files, tmp_path, monkeypatch, capsys, case_id, args, expected):
    if "cuda" in case_id and torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED", ""))
    before = _snapshot(files["dir"])
    status, out, err = _train_in_process(BASE + args(files), capsys)
    assert status == 2, out[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    for needle in expected:
        assert needle in errors[0], (needle, errors[0])
    assert "Traceback" not in out
    assert not (files["dir"] / "MARKER").exists(), "a checkpoint ran code"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "a failed run left a folder"
    after = _snapshot(files["dir"])
    lost = [str(p) for p, h in before.items() if p.name.split(".tmp.")[0] == p.name and after.get(p) != h]
    assert not lost, f"files changed or lost: {lost}"


def test_resume_sweeps_stale_tmp_files_and_keeps_checkpoints(files, tmp_path, monkeypatch, capsys):
    """Resuming cleans the dead process's ``*.isaacgymenvs_hrl.tmp.<pid>`` beside the checkpoint and trains on."""
    monkeypatch.chdir(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])      # a process that no longer exists
    dead.wait()
    from isaacgymenvs_hrl.utils.atomic import TAG
    stale = [files["good"].parent / f"{files['good'].name}.{TAG}.tmp.{dead.pid}"]
    stale[0].write_bytes(b"half a checkpoint, left by a killed save")
    status, out, _ = _train_in_process(BASE + ["max_iterations=2", "experiment=resume", f"checkpoint={files['good']}"],
                                       capsys)
    assert status == 0, out[-3000:]
    assert not any(p.exists() for p in stale)
    assert "summary:" in out and "NaN actions" in out
    assert files["good"].is_file()
    assert not (files["dir"] / "MARKER").exists()


def test_checkpoints_we_write_load_weights_only_and_are_finite(files):
    from isaacgymenvs_hrl.learning.checkpoints import CheckpointError, all_finite, atomic_torch_save, load_checkpoint
    state = load_checkpoint(files["good"])
    assert all_finite(state) and {"model", "optimizer", "epoch", "frame"} <= set(state)
    target = files["dir"] / "copy.pth"
    atomic_torch_save(state, target)
    before = target.read_bytes()
    bad = dict(state, model=dict(state["model"]))
    bad["model"]["a2c_network.mu.bias"] = bad["model"]["a2c_network.mu.bias"] * float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        atomic_torch_save(bad, target)
    assert target.read_bytes() == before, "a NaN network replaced a good checkpoint"
    assert not list(files["dir"].glob("copy.pth.*tmp*"))


def test_most_actions_nan_stops_with_a_clear_error():
    """The observer reads the real task's counters: all-NaN actions for an epoch stop the run."""
    import isaacgymenvs_hrl
    from isaacgymenvs_hrl.learning.observer import HealthObserver, TrainingDivergedError
    task = isaacgymenvs_hrl.make(seed=0, task="HumanoidLocomotion", num_envs=4, sim_device="cpu", rl_device="cpu")
    lines = []
    obs = HealthObserver(log=lines.append, num_envs=task.num_envs)
    task.reset()
    for _ in range(3):                                           # a healthy epoch
        _, _, done, extras = task.step(torch.zeros(4, task.num_actions))
        obs.process_infos(extras, done.nonzero())
    obs.check_epoch(1)
    assert not lines
    actions = torch.zeros(4, task.num_actions)
    actions[:3] = float("nan")                                   # 3 of 4 envs: NaN
    for _ in range(3):
        _, _, done, extras = task.step(actions)
        obs.process_infos(extras, done.nonzero())
    with pytest.raises(TrainingDivergedError, match="75% of the actions were NaN"):
        obs.check_epoch(2)
    assert "9 NaN actions" in lines[0]
    assert "9 NaN actions" in obs.summary()


def test_llc_with_nan_normalizer_never_trains_silently(tmp_path, monkeypatch, capsys):
    """Issue 16: such an LLC trained "successfully" with every action NaN. Now either the LLC is
    refused when loaded or the first epoch stops the run; no run folder is left either way."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_hrl import PROPRIO, llc_spec, write_llc
    good = write_llc(tmp_path / "good.llc.pt", llc_spec(modes=("continuous",)),
                     obs_mean=torch.zeros(PROPRIO), obs_std=torch.ones(PROPRIO))
    blob = torch.load(good, weights_only=True)             # save_llc refuses NaN: edit the file instead
    blob["weights"]["obs_mean"] = torch.full((PROPRIO,), float("nan"))
    llc = tmp_path / "nan.llc.pt"
    torch.save(blob, llc)
    monkeypatch.chdir(tmp_path)
    status, out, err = _train_in_process(["task=HumanoidLocation", f"task.env.llc.checkpoint={llc}", "num_envs=16",
                                          "max_iterations=3", "train.params.config.horizon_length=8",
                                          "train.params.config.minibatch_size=128"], capsys)
    assert status == 2 and "Traceback" not in out, out[-3000:]
    line = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(line) == 1 and ("100% of the actions were NaN" in line[0] or "obs_mean" in line[0]), line
    assert not list(tmp_path.glob("runs/*"))


# ---- the other CLIs, as subprocesses ----------------------------------------------------------------
def _cli(module, args, cwd, timeout=300):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", module] + list(args), cwd=cwd, capture_output=True, text=True,
                         timeout=timeout, env=env)
    return res.returncode, res.stdout + res.stderr, res.stderr


def _assert_clear(code, out, err, expected):
    assert code == 2, out[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err[-3000:]
    for needle in expected:
        assert needle in errors[0], (needle, errors[0])
    assert "Traceback" not in out, out[-3000:]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """A small valid dataset with HumanoidLocomotion's metadata, one with NaN in /obs/task only, one empty."""
    from isaacgymenvs_hrl.datasets import write_dataset
    d = tmp_path_factory.mktemp("datasets")
    data, meta = humanoid_walk_data()
    good = write_dataset(d / "good.hdf5", data, meta)
    # finite, but far outside the tasks' action box [-1, 1]
    huge = write_dataset(d / "huge.hdf5", dict(data, actions=data["actions"] * np.float32(1e38)), meta)
    nan = write_dataset(d / "nan_slice.hdf5", data, meta)
    with h5py.File(nan, "r+") as f:                     # only the named slice is bad, as in issue 16
        f["obs/task"][0, 0] = np.nan
    with h5py.File(d / "empty.hdf5", "w") as f:
        for key in ("observations", "actions", "rewards", "terminals", "timeouts"):
            f.create_dataset(key, data=np.zeros((0,) + data[key].shape[1:], data[key].dtype))
        f.attrs["metadata"] = __import__("json").dumps({"obs_layout": meta["obs_layout"]})
    return {"dir": d, "good": good, "nan": nan, "empty": d / "empty.hdf5", "huge": huge}


SKILLS = ["algo=bc", "skills.epochs=1", "skills.hidden=[16]", "skills.batch_size=64", "report.videos=false",
          "report.exploration=false", "torch_threads=1"]


@pytest.fixture(scope="module")
def good_llc(datasets):
    out = datasets["dir"] / "llcs" / "walk.llc.pt"
    code, text, _ = _cli("isaacgymenvs_hrl.skills_cli", SKILLS + [f"dataset={datasets['good']}", f"output={out}"],
                         datasets["dir"])
    assert code == 0, text[-3000:]
    return out


SKILL_CASES = [
    ("no-dataset", lambda d, o: [f"output={o}"], ["dataset= is required"]),
    ("zero-rows", lambda d, o: [f"dataset={d['empty']}", f"output={o}"], ["has 0 rows"]),
    ("epochs=0", lambda d, o: [f"dataset={d['good']}", f"output={o}", "skills.epochs=0"],
     ["skills.epochs must be a positive integer, got 0"]),
    ("lr=abc", lambda d, o: [f"dataset={d['good']}", f"output={o}", "skills.lr=abc"], ["skills.lr must be a number"]),
    ("nan-obs-slice", lambda d, o: [f"dataset={d['nan']}", f"output={o}"], ["NaN or infinite values in /obs/task"]),
    ("lr=1e38", lambda d, o: [f"dataset={d['good']}", f"output={o}", "skills.lr=1e38"],
     ["skills.lr must be a number > 0 and <= 1, got 1e+38"]),
    ("actions-1e38", lambda d, o: [f"dataset={d['huge']}", f"output={o}", "skills.epochs=2"],
     ["/actions reach 9.99", "the tasks' actions lie in [-1, 1]", "was kept"]),
    ("output-is-a-folder", lambda d, o: [f"dataset={d['good']}", f"output={o.parent}/"], ["is a folder"]),
]


@pytest.mark.parametrize("case_id, args, expected", SKILL_CASES, ids=[c[0] for c in SKILL_CASES])
def test_skills_bad_input_keeps_the_existing_llc(datasets, good_llc, case_id, args, expected):
    before = _snapshot(good_llc.parent)
    code, out, err = _cli("isaacgymenvs_hrl.skills_cli", SKILLS + args(datasets, good_llc), datasets["dir"])
    _assert_clear(code, out, err, expected)
    assert _snapshot(good_llc.parent) == before, "the existing LLC was replaced or a file was left"


def test_collect_refuses_a_folder_output_and_a_payload_policy(files, tmp_path):
    code, out, err = _cli("isaacgymenvs_hrl.collect", ["num_envs=2", "num_episodes=1", f"output={tmp_path}/"], tmp_path)
    _assert_clear(code, out, err, [f"output={tmp_path}/ is a folder"])
    payload = files["good"].parent / "payload.pth"               # beside the run's config.yaml
    payload.write_bytes((files["dir"] / "payload.pth").read_bytes())
    try:
        code, out, err = _cli("isaacgymenvs_hrl.collect", ["num_envs=2", "num_episodes=1", f"policy={payload}",
                                                           f"output={tmp_path / 'x.hdf5'}"], tmp_path)
    finally:
        payload.unlink()
    _assert_clear(code, out, err, ["policy=", "holds Python objects", "refused"])
    assert not (files["dir"] / "MARKER").exists(), "the policy checkpoint ran code"
    assert not (tmp_path / "x.hdf5").exists()


@pytest.mark.parametrize("arg, expected", [("num_episodes=abc", "num_episodes must be a positive integer, got 'abc'"),
                                           ("num_envs=0", "num_envs must be a positive integer, got 0"),
                                           ("noise=-1", "noise must be a number >= 0, got -1")])
def test_collect_refuses_bad_numbers(tmp_path, arg, expected):
    code, out, err = _cli("isaacgymenvs_hrl.collect", [arg, f"output={tmp_path / 'x.hdf5'}"], tmp_path)
    _assert_clear(code, out, err, [expected])
    assert not (tmp_path / "x.hdf5").exists()


def test_import_dataset_unknown_task(tmp_path):
    code, out, err = _cli("isaacgymenvs_hrl.cli.import_dataset", ["source=x.hdf5", "output=y.hdf5", "task=Bogus"],
                          tmp_path)
    _assert_clear(code, out, err, ["task=Bogus is not a task of this project", "HumanoidLocomotion"])


def test_train_cli_prints_one_line_for_a_payload(files, tmp_path):
    """The real hrl-train entry point, end to end, on the most dangerous input."""
    code, out, err = _cli("isaacgymenvs_hrl.train", ["test=True", f"checkpoint={files['dir'] / 'payload.pth'}"], tmp_path)
    _assert_clear(code, out, err, ["holds Python objects"])
    assert not (files["dir"] / "MARKER").exists()
    assert not (tmp_path / "runs").exists()


def test_make_follows_isaacgymenvs_lookup_and_rules():
    import isaacgymenvs_hrl
    from isaacgymenvs_hrl.errors import UserError
    env = isaacgymenvs_hrl.make(seed=0, task="HumanoidRun", num_envs=2, sim_device="cpu", rl_device="cpu")
    assert type(env).__name__ == "Humanoid"               # the class named by task/HumanoidRun.yaml's name
    for kwargs, needle in ((dict(sim_device="cuda:0"), "no CUDA device"), (dict(rl_device="tpu:3"), "rl_device=tpu:3"),
                           (dict(seed="abc"), "seed must be an integer"), (dict(num_envs=0), "num_envs must be a positive integer"),
                           (dict(task="Bogus"), "unknown task 'Bogus'")):
        args = dict(seed=0, task="HumanoidLocomotion", num_envs=2, sim_device="cpu", rl_device="cpu") | kwargs
        if kwargs.get("sim_device", "").startswith("cuda") and torch.cuda.is_available():
            continue
        with pytest.raises(UserError, match=needle):
            isaacgymenvs_hrl.make(**args)


def test_spaces_satisfy_gymnasium_and_legacy_gym():
    import gymnasium

    from isaacgymenvs_hrl.utils.spaces import Box, Discrete
    box, disc = Box(-1.0, 1.0, (3,)), Discrete(4)
    assert isinstance(box, gymnasium.spaces.Box) and isinstance(disc, gymnasium.spaces.Discrete)
    assert box.shape == (3,) and box.dtype == np.float32 and box.contains(np.zeros(3, np.float32))
    gym = pytest.importorskip("gym")
    assert isinstance(box, gym.spaces.Box) and isinstance(disc, gym.spaces.Discrete)


def test_episode_statistics_are_a_mean_over_episodes():
    """IsaacGymEnvs' observer appends the task's last extras["episode"] at every step; ours keeps it
    only where episodes ended, once per ended episode, so Episode/* is a mean over episodes."""
    import isaacgymenvs_hrl
    from isaacgymenvs_hrl.learning.observer import HealthObserver
    task = isaacgymenvs_hrl.make(seed=0, task="HumanoidLocomotion", num_envs=8, sim_device="cpu", rl_device="cpu")
    obs = HealthObserver(log=lambda *_: None, num_envs=task.num_envs)
    obs.algo, obs.ep_infos, obs.direct_info = None, [], {}      # what after_init sets, without an agent
    task.reset()
    gen = torch.Generator().manual_seed(0)
    ended, steps_with_ends = 0, 0
    for _ in range(150):                                         # random torques: falls at different times
        _, _, done, extras = task.step(torch.rand(8, task.num_actions, generator=gen) * 2 - 1)
        idx = done.nonzero()
        obs.process_infos(extras, idx)
        ended += len(idx)
        steps_with_ends += bool(len(idx))
    assert ended > 8 and steps_with_ends > 1
    assert len(obs.ep_infos) == steps_with_ends
    assert sum(len(e["episode_length"]) for e in obs.ep_infos) == ended
