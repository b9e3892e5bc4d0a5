"""hrl-import-dataset: Minari dataset directories and D4RL-style files -> this project's format.

The sources are written with h5py in Minari's and D4RL's on-disk layouts from a real short rollout
of HumanoidLocomotion (random actions, the real ``collect``), imported, read back with
``load_dataset`` and compared with the rollout; malformed sources must fail with clear errors."""
from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from isaacgymenvs_hrl.datasets import DatasetError, load_dataset
from isaacgymenvs_hrl.datasets.hdf5 import episode_ids
from isaacgymenvs_hrl.datasets.importers import detect_format, import_dataset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
LAYOUT = [["proprio", 52], ["task", 3]]


@pytest.fixture(scope="module")
def rollout():
    """Complete episodes of a real HumanoidLocomotion rollout (env-major, D4RL keys)."""
    import torch
    from isaacgymenvs_hrl.datasets.rollouts import collect
    from isaacgymenvs_hrl.tasks import HumanoidLocomotion
    torch.manual_seed(0)
    task = HumanoidLocomotion({"name": "HumanoidLocomotion", "env": {"numEnvs": 3, "episodeLength": 20},
                               "sim": {"dt": 0.02, "substeps": 4}}, "cpu", "cpu", -1, True)
    data = collect(task, None, num_episodes=3, progress=False)
    task.close()
    assert len(data["actions"]) >= 30 and (data["terminals"] | data["timeouts"]).sum() >= 3
    return data


def episodes(data):
    ep = episode_ids(data)
    return [np.nonzero(ep == e)[0] for e in range(ep.max() + 1)]


def write_minari(root, data, *, dict_obs=True, metadata="json", tamper=None):
    """A Minari dataset directory: <root>/data/main_data.hdf5 (+ data/metadata.json, or root attrs)."""
    (root / "data").mkdir(parents=True)
    eps = episodes(data)
    with h5py.File(root / "data" / "main_data.hdf5", "w") as f:
        for i, idx in enumerate(eps):
            g = f.create_group(f"episode_{i}")
            g.attrs["id"], g.attrs["total_steps"] = i, len(idx)
            obs = np.concatenate([data["observations"][idx], data["observations"][idx[-1:]]])   # T + 1 rows
            if dict_obs:
                g.create_dataset("observations/proprio", data=obs[:, :52])
                g.create_dataset("observations/task", data=obs[:, 52:])
            else:
                g.create_dataset("observations", data=obs)
            g.create_dataset("actions", data=data["actions"][idx])
            g.create_dataset("rewards", data=data["rewards"][idx].astype(np.float64))
            g.create_dataset("terminations", data=data["terminals"][idx])
            g.create_dataset("truncations", data=data["timeouts"][idx])
            g.create_dataset("infos/step", data=np.arange(len(idx) + 1))
            if tamper:
                tamper(i, g)
        meta = {"dataset_id": "humanoid/random-v0", "total_episodes": len(eps), "total_steps": len(data["actions"]),
                "data_format": "hdf5", "algorithm_name": "random", "minari_version": "0.5.1",
                "env_spec": json.dumps({"id": "HumanoidLocomotion-v0", "entry_point": "x:y"})}
        if metadata == "attrs":                   # Minari < 0.5 kept the metadata on the file
            f.attrs.update(meta)
    if metadata == "json":
        (root / "data" / "metadata.json").write_text(json.dumps(meta))
    return root


def write_d4rl(path, data, timeouts=True, infos=True):
    with h5py.File(path, "w") as f:
        for k in ("observations", "actions", "rewards", "terminals") + (("timeouts",) if timeouts else ()):
            f.create_dataset(k, data=data[k])
        if infos:
            f.create_dataset("infos/qpos", data=np.arange(len(data["actions"]) * 2.0).reshape(-1, 2))
            f.create_dataset("infos/goal/xy", data=np.zeros((len(data["actions"]), 2)))
        f.create_dataset("metadata/algorithm", data="random")
    return path


def test_minari_directory_round_trip(rollout, tmp_path):
    src = write_minari(tmp_path / "humanoid-random-v0", rollout)
    assert detect_format(src) == "minari"
    out, meta = import_dataset(src, tmp_path / "m.hdf5", control_dt=0.02, control_type="joint_position",
                               task_family="humanoid")
    data, meta = load_dataset(out, require_slices=["proprio", "task"])
    assert meta["obs_layout"] == LAYOUT                     # the dict keys became named slices
    for k in ("observations", "actions", "terminals", "timeouts"):
        np.testing.assert_array_equal(data[k], rollout[k], err_msg=k)
    np.testing.assert_allclose(data["rewards"], rollout["rewards"], rtol=1e-6)
    np.testing.assert_array_equal(data["obs"]["task"], rollout["observations"][:, 52:])
    assert meta["source"]["format"] == "minari" and meta["source"]["env_id"] == "HumanoidLocomotion-v0"
    assert meta["source"]["dataset_id"] == "humanoid/random-v0" and meta["source"]["episodes"] == len(episodes(rollout))
    assert meta["control_dt"] == 0.02 and meta["control_type"] == "joint_position" and meta["commit"]
    # the imported file trains an LLC
    from isaacgymenvs_hrl.hrl import load_llc
    from isaacgymenvs_hrl.skills.bc import BCConfig, train_bc
    meta["path"] = str(out)
    train_bc(data, meta, BCConfig(epochs=1, hidden=[8], batch_size=32), str(tmp_path / "bc.llc.pt"),
             log=lambda *_: None)
    assert load_llc(tmp_path / "bc.llc.pt").spec["latent"]["dim"] == 3


def test_old_minari_metadata_and_flat_observations_with_a_task(rollout, tmp_path):
    """Metadata as root attributes (Minari < 0.5), one observation array, task= names the layout."""
    src = write_minari(tmp_path / "old", rollout, dict_obs=False, metadata="attrs")
    out, _ = import_dataset(src / "data" / "main_data.hdf5", tmp_path / "o.hdf5", task="HumanoidLocomotion")
    data, meta = load_dataset(out)
    assert meta["obs_layout"] == LAYOUT and meta["task"] == "HumanoidLocomotion"
    assert meta["control_dt"] == pytest.approx(0.02) and meta["control_type"] == "joint_position"
    assert meta["task_family"] == "humanoid" and meta["task_config"]["name"] == "HumanoidLocomotion"
    assert meta["source"]["algorithm_name"] == "random"
    np.testing.assert_array_equal(data["observations"], rollout["observations"])


def test_d4rl_file_round_trip(rollout, tmp_path):
    src = write_d4rl(tmp_path / "walk-random-v2.hdf5", rollout)
    assert detect_format(src) == "d4rl"
    out, _ = import_dataset(src, tmp_path / "d.hdf5", task="HumanoidLocomotion", include_infos=True)
    data, meta = load_dataset(out, require_slices=["proprio", "task"])
    for k in ("observations", "actions", "rewards", "terminals", "timeouts"):
        np.testing.assert_array_equal(data[k], rollout[k], err_msg=k)
    assert meta["source"]["format"] == "d4rl" and meta["source"]["metadata"] == {"algorithm": "random"}
    assert meta["source"]["infos"] == ["goal.xy", "qpos"]
    assert data["infos.qpos"].shape == (len(rollout["actions"]), 2)
    # no timeouts, no infos, explicit layout: the unfinished last episode ends by time-out
    cut = {k: v[:-3] for k, v in rollout.items()}
    src = write_d4rl(tmp_path / "cut.hdf5", cut, timeouts=False, infos=False)
    out, _ = import_dataset(src, tmp_path / "c.hdf5", obs_layout=[["body", 50], ["rest", 5]], control_dt=0.02,
                            control_type="joint_position")
    data, meta = load_dataset(out)
    assert meta["obs_layout"] == [["body", 50], ["rest", 5]] and sorted(data["obs"]) == ["body", "rest"]
    assert data["timeouts"][-1] and data["timeouts"].sum() == 1 and meta["source"]["last_step_marked_timeout"]
    np.testing.assert_array_equal(data["terminals"], cut["terminals"])


def test_cli_imports_and_reports_errors(rollout, tmp_path):
    src = write_minari(tmp_path / "ds", rollout)
    run = lambda *args: subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.import_dataset", *args],
                                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    res = run(f"source={src}", f"output={tmp_path / 'cli.hdf5'}", "control_dt=0.02", "control_type=joint_position")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "wrote" in res.stdout and "proprio" in res.stdout
    assert load_dataset(tmp_path / "cli.hdf5")[1]["obs_layout"] == LAYOUT
    res = run(f"source={src}", f"output={tmp_path / 'x.hdf5'}")          # no rate: imported, with a note
    assert res.returncode == 0 and "hrl-skills needs them" in res.stdout
    (tmp_path / "empty").mkdir()
    res = run(f"source={tmp_path / 'empty'}", f"output={tmp_path / 'y.hdf5'}")
    assert res.returncode == 2 and "data/main_data.hdf5" in res.stderr and "Traceback" not in res.stderr
    res = run(f"source={src}", "outptu=z.hdf5")
    assert res.returncode == 2 and "unknown argument" in res.stderr


def test_malformed_sources_are_clear_errors(rollout, tmp_path):
    (tmp_path / "nodata").mkdir()
    with pytest.raises(DatasetError, match="not a Minari dataset: it has no data/main_data.hdf5"):
        import_dataset(tmp_path / "nodata", tmp_path / "o.hdf5")
    with pytest.raises(DatasetError, match="not found"):
        import_dataset(tmp_path / "missing.hdf5", tmp_path / "o.hdf5")

    def short_rewards(i, g):
        if i == 1:
            del g["rewards"]
            g.create_dataset("rewards", data=np.zeros(3))
    with pytest.raises(DatasetError, match=r"episode 1: 'rewards' has shape \(3,\)"):
        import_dataset(write_minari(tmp_path / "a", rollout, tamper=short_rewards), tmp_path / "o.hdf5")

    def no_final_obs(i, g):
        if i == 0:
            x = g["observations/task"][:-1]
            del g["observations/task"]
            g.create_dataset("observations/task", data=x)
    with pytest.raises(DatasetError, match="episode 0: observation 'task' has .* rows, expected"):
        import_dataset(write_minari(tmp_path / "b", rollout, tamper=no_final_obs), tmp_path / "o.hdf5")

    def early_end(i, g):
        if i == 2:
            t = g["terminations"][()]
            t[1] = True
            del g["terminations"]
            g.create_dataset("terminations", data=t)
    with pytest.raises(DatasetError, match="may only end at its last step"):
        import_dataset(write_minari(tmp_path / "c", rollout, tamper=early_end), tmp_path / "o.hdf5")

    bad = {k: v for k, v in rollout.items()}
    bad["actions"] = bad["actions"][:-1]
    with pytest.raises(DatasetError, match="'actions' has .* rows"):
        import_dataset(write_d4rl(tmp_path / "bad.hdf5", bad), tmp_path / "o.hdf5")
    src = write_d4rl(tmp_path / "ok.hdf5", rollout)
    with pytest.raises(DatasetError, match="adds up to 10"):
        import_dataset(src, tmp_path / "o.hdf5", obs_layout=[["a", 10]])
    with pytest.raises(DatasetError, match="task=FrankaStack has"):
        import_dataset(src, tmp_path / "o.hdf5", task="FrankaStack")
    with h5py.File(tmp_path / "other.hdf5", "w") as f:
        f.create_dataset("states", data=np.zeros(3))
    with pytest.raises(DatasetError, match="neither a D4RL-style file"):
        import_dataset(tmp_path / "other.hdf5", tmp_path / "o.hdf5")
    assert not (tmp_path / "o.hdf5").exists()
