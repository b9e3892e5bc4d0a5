"""The shipped skill library: every manifest entry matches its file, every LLC steps its task in
each of its modes, names resolve from the CLI, and damaged / missing / mismatched files get one
clear message each."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from isaacgymenvs_hrl.hrl import LatentSkillEnv, LLCError, load_llc
from isaacgymenvs_hrl.hrl import library
from isaacgymenvs_hrl.utils.task_config import load_task_config

ENTRIES = library.load_manifest()
LLCS = sorted(n for n, e in ENTRIES.items() if e["kind"] == "llc")
TASK_OF_FAMILY = {"humanoid": "HumanoidLocation", "franka": "FrankaStack"}


def task_of(name: str, entry: dict) -> str:
    """The task an LLC was learned on: the peg skills read FrankaPegInHole's force-torque slice."""
    return "FrankaPegInHole" if name.startswith("franka/peg_") else TASK_OF_FAMILY[entry["robot_family"]]


def test_the_library_ships_humanoid_and_franka_skills():
    assert {"humanoid/walk_bc", "humanoid/walk_npmp", "humanoid/walk_ldse", "humanoid/teacher"} <= set(ENTRIES)
    assert {f"franka/stack_{a}" for a in ("bc", "helms", "ldse", "mrs", "npmp")} <= set(ENTRIES)
    total = sum(e["size"] + e.get("encoder", {}).get("size", 0) for e in ENTRIES.values())
    assert total < 20 * 2 ** 20, total
    for name, e in ENTRIES.items():
        for key in ("sha256", "size", "command", "seed", "commit", "description"):
            assert e.get(key) not in (None, ""), (name, key)
        if e["kind"] == "llc":
            assert e["dataset"]["sha256"] and e["metrics"], name
        if e.get("algorithm") == "ldse":      # skill matching by name needs the segment encoder
            assert e["encoder"]["sha256"] and e["encoder"]["file"].endswith(".encoder.pt"), name


@pytest.mark.parametrize("name", sorted(n for n, e in ENTRIES.items() if "encoder" in e))
def test_a_shipped_ldse_encoder_matches_skills_by_name(name):
    """``task.env.llc.match_init`` finds the encoder next to the library file; it labels windows."""
    from isaacgymenvs_hrl.hrl.segment_encoder import SkillMatcher, encoder_path
    llc = load_llc(name)
    matcher = SkillMatcher.load(encoder_path(llc.path))
    obs_dim = sum(int(n) for _, n in llc.spec["obs"]["policy"])
    z = matcher(torch.zeros(1, 8, obs_dim), torch.zeros(1, 8, int(llc.spec["action"]["dim"])))
    assert z.shape == (1, llc.latent_dim) and torch.isfinite(z).all()


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_every_entry_matches_its_file(name):
    path = library.verify(name)
    assert library.sha256(path) == ENTRIES[name]["sha256"] and path.stat().st_size == ENTRIES[name]["size"]


@pytest.mark.parametrize("name", LLCS)
def test_every_llc_steps_its_task_in_each_mode(name):
    llc = load_llc(name)                                        # by name, verified
    entry = ENTRIES[name]
    assert llc.spec["task_family"] == entry["robot_family"] and list(llc.modes) == entry["modes"]
    cfg = load_task_config(task_of(name, entry))
    cfg["env"]["numEnvs"] = 2
    from isaacgymenvs_hrl.tasks import isaacgym_task_map
    task = isaacgym_task_map[cfg["name"]](cfg, "cpu", "cpu", -1, True, auto_reset=False)
    for mode in llc.modes:
        env = LatentSkillEnv(task, llc, mode=mode)
        env.reset()
        hl = torch.zeros(2, dtype=torch.long) if mode == "discrete" else torch.zeros(2, env.num_actions)
        obs, rew, done, extras = env.step(hl)
        assert torch.isfinite(obs["obs"]).all() and torch.isfinite(rew).all(), (name, mode)
        assert (extras["executed_substeps"] > 0).all()
    task.close()


def _copy_library(tmp_path):
    folder = tmp_path / "pretrained"
    shutil.copytree(library.LIBRARY_DIR, folder)
    return folder / "manifest.json"


def test_damaged_missing_and_unknown_files_are_named(tmp_path):
    manifest = _copy_library(tmp_path)
    name = LLCS[0]
    path = manifest.parent / ENTRIES[name]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(library.LibraryError, match=f"{path}.*of '{name}' is damaged"):
        library.verify(name, manifest)
    path.unlink()
    with pytest.raises(library.LibraryError, match=f"of '{name}' is missing"):
        library.verify(name, manifest)
    with pytest.raises(library.LibraryError, match="not in the skill library; it has"):
        library.verify("humanoid/nope", manifest)
    with_encoder = next(n for n, e in ENTRIES.items() if "encoder" in e)
    enc = manifest.parent / ENTRIES[with_encoder]["encoder"]["file"]
    enc.write_bytes(enc.read_bytes()[:-10])
    with pytest.raises(library.LibraryError, match=f"{enc}.*of '{with_encoder}' is damaged"):
        library.verify(with_encoder, manifest)
    manifest.write_text("{not json")
    with pytest.raises(library.LibraryError, match="manifest .* cannot be read"):
        library.load_manifest(manifest)
    with pytest.raises(library.LibraryError, match="neither a file nor a skill library name"):
        load_llc("humanoid/walk_typo")
    with pytest.raises(library.LibraryError, match="is a policy, not a llc"):
        load_llc("humanoid/teacher")


def test_a_library_llc_of_the_wrong_robot_is_refused_by_name():
    from isaacgymenvs_hrl.hrl import validate_llc_for_task
    cfg = load_task_config("HumanoidLocation")
    cfg["env"]["numEnvs"] = 1
    from isaacgymenvs_hrl.tasks import HumanoidLocation
    task = HumanoidLocation(cfg, "cpu", "cpu", -1, True, auto_reset=False)
    with pytest.raises(LLCError, match="task_family: task HumanoidLocation expects an LLC for 'humanoid'"):
        validate_llc_for_task(load_llc("franka/stack_ldse"), task, "continuous")


def test_listing_command_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.library", "list"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for name in ENTRIES:
        assert name in out.stdout
    shown = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.library", "show", LLCS[0]],
                           capture_output=True, text=True, timeout=300)
    assert json.loads(shown.stdout)["sha256"] == ENTRIES[LLCS[0]]["sha256"]


UNANCHORED = ["task.env.llc.prior=False"]
FRANKA_HRL = [("franka/stack_ldse", ["task.env.llc.mode=continuous", *UNANCHORED, "train=FrankaStackPPO"]),
              ("franka/stack_npmp", ["task.env.llc.mode=continuous", *UNANCHORED, "train=FrankaStackPPO"]),
              ("franka/stack_mrs", ["task.env.llc.mode=multires", *UNANCHORED, "train=FrankaStackPPO"]),
              ("franka/stack_helms", []),                                  # the default: anchored to the prior
              ("franka/stack_helms", [*UNANCHORED, "train=HRLDiscretePPO"]),
              ("franka/stack_helms", ["task.env.llc.mode=mixture", *UNANCHORED, "train=HRLMixturePPO"])]


@pytest.mark.parametrize("name,extra", FRANKA_HRL, ids=[f"{n}:{e[0] if e else 'anchored'}" for n, e in FRANKA_HRL])
def test_franka_stack_hrl_trains_over_each_shipped_llc(tmp_path, name, extra):
    """hrl-train task=FrankaStackHRL with the LLC swapped by name trains and checkpoints (one epoch).
    franka/stack_bc has no latent (a flat baseline policy), so there is no high level to train."""
    import os
    args = [sys.executable, "-m", "isaacgymenvs_hrl.train", "task=FrankaStackHRL", f"task.env.llc.checkpoint={name}",
            *extra, "num_envs=4", "max_iterations=1", "train.params.config.horizon_length=8",
            "train.params.config.minibatch_size=32", "headless=True"]
    res = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stdout[-1500:] + res.stderr[-1500:]
    assert list(tmp_path.glob("runs/*/nn/*.pth")), res.stdout[-1500:]


def test_franka_stack_hrl_starts_from_the_shipped_skill_prior(tmp_path):
    """match_init over franka/stack_helms: the discrete high level is fitted to the skill prior on
    expert data, its actor stays frozen for match_warmup epochs, then PPO trains all of it."""
    import os
    env = dict(os.environ, OMP_NUM_THREADS="1")
    collect = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.collect", "task=FrankaStack", "policy=expert",
                              "num_envs=4", "num_episodes=4", "seed=1", "output=data.hdf5"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert collect.returncode == 0, collect.stderr[-1500:]
    args = [sys.executable, "-m", "isaacgymenvs_hrl.train", "task=FrankaStackHRL", "task.env.llc.checkpoint=franka/stack_helms",
            "task.env.llc.mode=discrete", *UNANCHORED, "train=HRLDiscretePPO", "task.env.llc.match_init=data.hdf5",
            "task.env.llc.match_epochs=5", "task.env.llc.match_warmup=2", "num_envs=4", "max_iterations=3",
            "train.params.config.horizon_length=8", "train.params.config.minibatch_size=32", "headless=True"]
    res = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    assert "skill prior: high-level actor fitted to" in out and "actor frozen for 2 epochs" in out, out[-2000:]
    assert "epoch 2: actor unfrozen" in out, out[-2000:]
