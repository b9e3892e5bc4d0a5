"""Report videos: rollouts of a trained LLC in its task with the skill held fixed, one MP4 each.

Tiny LLCs are trained on a real short HumanoidLocomotion rollout (random actions, the real
``collect``); the videos are rendered offscreen with MuJoCo (EGL/OSMesa) and read back with imageio.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from isaacgymenvs_hrl.datasets import load_dataset, write_dataset
from isaacgymenvs_hrl.hrl import load_llc
from isaacgymenvs_hrl.skills.rollout_videos import kmeans, record_skill_videos, skill_conditions

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
QUIET = {"log": lambda *_: None, "progress": False}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """hrl-collect's output for a short random rollout, written in-process (same metadata)."""
    from isaacgymenvs_hrl.datasets.rollouts import collect
    from isaacgymenvs_hrl.tasks import HumanoidLocomotion
    cfg = {"name": "HumanoidLocomotion", "env": {"numEnvs": 3, "episodeLength": 30},
           "sim": {"dt": 0.02, "substeps": 4}}
    torch.manual_seed(0)
    task = HumanoidLocomotion(cfg, "cpu", "cpu", -1, True)
    data = collect(task, None, num_episodes=3, progress=False)
    meta = {**task.spec.dataset_meta(), "task_config": cfg}
    task.close()
    path = write_dataset(tmp_path_factory.mktemp("videos") / "walk.hdf5", data, meta)
    data, meta = load_dataset(path)
    meta["path"] = str(path)
    return data, meta


def read_frames(path) -> np.ndarray:
    import imageio.v3 as iio
    return iio.imread(path)


def test_discrete_skills_each_get_a_video(dataset, tmp_path):
    from isaacgymenvs_hrl.skills.helms import HeLMSConfig, train_helms
    data, meta = dataset
    out = tmp_path / "helms.llc.pt"
    result = train_helms(data, meta, HeLMSConfig(mid_obs=["proprio", "task"], num_skills=3, latent_dim=3, hidden=[16],
                                                 mid_hidden=[16], seq_len=10, seq_stride=5, epochs=1, batch_size=8),
                         str(out), **QUIET)
    videos = record_skill_videos(out, meta["task"], tmp_path / "report" / "videos", task_config=meta["task_config"],
                                 latents=result["report"]["latents"], steps=6, num_envs=2, width=64, height=48,
                                 log=lambda *_: None)
    assert [v["file"] for v in videos] == ["videos/skill_0.mp4", "videos/skill_1.mp4", "videos/skill_2.mp4"]
    for v in videos:
        frames = read_frames(tmp_path / "report" / v["file"])
        assert frames.shape == (7, 48, 128, 3) and v["frames"] == 7      # reset + 6 steps; 2 envs side by side
        assert frames.std() > 1.0                                          # not a blank image
    assert not list((tmp_path / "report" / "videos").glob("*tmp*"))


def test_latent_clusters_of_a_continuous_llc(dataset, tmp_path):
    from isaacgymenvs_hrl.skills.ldse import LDSEConfig, train_ldse
    data, meta = dataset
    out = tmp_path / "ldse.llc.pt"
    result = train_ldse(data, meta, LDSEConfig(horizon=5, latent_dim=2, hidden=[16], lstm_hidden=8, epochs=1,
                                               batch_size=32), str(out), **QUIET)
    videos = record_skill_videos(out, meta["task"], tmp_path / "videos", latents=result["report"]["latents"],
                                 steps=4, num_envs=1, width=64, height=48, max_videos=2, log=lambda *_: None)
    assert len(videos) == 2 and all("latent cluster" in v["title"] for v in videos)
    for v in videos:
        assert read_frames(tmp_path / v["file"]).shape == (5, 48, 64, 3)


def test_skill_conditions_per_mode(dataset, tmp_path):
    """What is held fixed for each LLC mode, without rendering."""
    from isaacgymenvs_hrl.skills.mrs import MRSConfig, train_mrs
    data, meta = dataset
    result = train_mrs(data, meta, MRSConfig(horizons=[4, 8], latent_dim=2, hidden=[8], lstm_hidden=4, epochs=1,
                                             batch_size=16, stride=3), str(tmp_path / "mrs.llc.pt"), **QUIET)
    llc = load_llc(tmp_path / "mrs.llc.pt")
    rep = result["report"]
    conds = skill_conditions(llc, rep["latents"], rep["labels"], max_videos=3)
    assert len(conds) == 3 and all(c["mode"] == "multires" and c["hl"].shape == (3 + 2,) for c in conds)
    assert all(c["hl"][:3].argmax() in (0, 1) for c in conds)              # a resolution head, never uncond.
    heads = skill_conditions(llc, None, max_videos=5)                       # no latents: every head, z = 0
    assert [c["name"] for c in heads] == ["head_0", "head_1", "head_2"]
    # k-means finds well separated clusters, largest first
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.05, (60, 2)) + [3, 0], rng.normal(0, 0.05, (30, 2)) - [3, 0]])
    centers, shares, assign, rows = kmeans(x, 2)
    assert np.allclose(centers, [[3, 0], [-3, 0]], atol=0.05) and shares.tolist() == pytest.approx([2 / 3, 1 / 3])
    assert (assign == (x[rows, 0] < 0)).all()


def test_cli_report_has_the_videos(dataset, tmp_path):
    _, meta = dataset
    out = tmp_path / "npmp.llc.pt"
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.skills_cli", "algo=npmp", f"dataset={meta['path']}",
                          f"output={out}", "skills.epochs=1", "skills.hidden=[16]", "skills.latent_dim=2",
                          "skills.seq_len=8", "report.video_steps=5", "report.video_envs=1", "report.max_videos=2",
                          "report.video_width=64", "report.video_height=48"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    report = tmp_path / "npmp.llc_report"
    index = (report / "index.md").read_text()
    assert "Rollouts with the skill held fixed" in index and "videos/cluster_1.mp4" in index
    for name in ("cluster_0.mp4", "cluster_1.mp4"):
        assert read_frames(report / "videos" / name).shape[0] == 6
