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


# ---- what the task asks, drawn into the frames ---------------------------------------------------
def _project(model, data, camera, point, width, height):
    """Pixel (column, row) of a world point in a frame of ``width`` x ``height`` from a model camera
    (MuJoCo cameras look along their frame's -z, with y up)."""
    cam = model.camera(camera).id
    p = data.cam_xmat[cam].reshape(3, 3).T @ (np.asarray(point) - data.cam_xpos[cam])
    focal = (height / 2) / np.tan(np.radians(model.cam_fovy[cam]) / 2)
    return width / 2 + focal * p[0] / -p[2], height / 2 - focal * p[1] / -p[2]


def _place_location_target(task):
    task.targets[0] = task.engine.qpos[0, 0:2] + torch.tensor([1.2, 1.5])      # in the track camera's view


@pytest.mark.parametrize("name, setup, anchor", [
    ("HumanoidLocation", _place_location_target, lambda t, m: (*m[0].pos[:2], 0.5)),   # the pole's middle
    ("HumanoidHeading", lambda t: None, lambda t, m: tuple((np.add(m[0].pos, m[0].to)) / 2)),   # walk arrow
    ("FrankaStack", lambda t: None, lambda t, m: m[0].pos),                            # the goal box
])
def test_frames_show_what_the_task_asks(name, setup, anchor):
    """The task's markers appear in a real MuJoCo frame where the target projects, and nowhere else;
    physics and observations are untouched."""
    import mujoco
    from isaacgymenvs_hrl.tasks import isaacgym_task_map
    from isaacgymenvs_hrl.utils.task_config import load_task_config
    task = isaacgym_task_map[name](load_task_config(name, ["task.env.numEnvs=1"]), "cpu", "cpu", -1, True)
    task.reset()
    task.step(task.zero_actions())
    setup(task)
    task.compute_observations()
    obs, qpos, ngeom = task.obs_buf.clone(), task.engine.qpos.clone(), task.engine.model.ngeom
    width, height = 160, 120
    try:
        renderer = mujoco.Renderer(task.engine.model, height, width)
    except Exception as exc:    # no GL on this machine
        pytest.skip(f"no offscreen GL: {exc}")
    data = mujoco.MjData(task.engine.model)
    data.qpos[:] = task.engine.qpos[0].numpy()
    mujoco.mj_forward(task.engine.model, data)
    renderer.update_scene(data, camera="track")
    plain = renderer.render().astype(int)
    markers = task.visual_markers(0)
    assert task.draw_markers(renderer.scene, 0) == len(markers) > 0
    marked = renderer.render().astype(int)
    col, row = _project(task.engine.model, data, "track", anchor(task, markers), width, height)
    renderer.close()

    changed = np.abs(marked - plain).sum(-1) > 30                     # (H, W)
    rows, cols = np.nonzero(changed)
    assert len(rows) > 20, "the markers are not in the frame"
    assert rows.min() - 3 <= row <= rows.max() + 3 and cols.min() - 3 <= col <= cols.max() + 3
    assert (rows.max() - rows.min()) * (cols.max() - cols.min()) < 0.5 * width * height   # local, not the scene
    # the renderer behind task.render() draws them too; none of it reached the model, the state or the obs
    from isaacgymenvs_hrl.utils.render import render_env
    frame = render_env(task, 0, width, height).astype(int)
    assert np.abs(frame - marked)[changed].mean() < np.abs(frame - plain)[changed].mean() / 4
    assert task.engine.model.ngeom == ngeom and torch.equal(task.engine.qpos, qpos)
    task.compute_observations()
    assert torch.equal(task.obs_buf, obs)
    task.close()
