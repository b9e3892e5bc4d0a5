"""Skill diagnostics (isaacgymenvs_hrl/skills/diagnostics.py): z usage tells an LLC that uses its
latent from one that ignores it, the LDSE posterior comes from its encoder file, and the rollouts
name and separate skills in real FrankaStack envs. Datasets are written with the project's own
writer and LLCs trained by its own trainers (or wrapped with its wrap_module)."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from isaacgymenvs_hrl.datasets import load_dataset, write_dataset
from isaacgymenvs_hrl.errors import UserError
from isaacgymenvs_hrl.hrl import load_llc, wrap_module
from isaacgymenvs_hrl.skills.bc import BCConfig, train_bc
from isaacgymenvs_hrl.skills.diagnostics import markdown, report_section
from isaacgymenvs_hrl.skills.end_states import grasp_coverage, mutual_information, name_end_state, skill_rollouts
from isaacgymenvs_hrl.skills.z_usage import z_usage
from isaacgymenvs_hrl.skills.helms import HeLMSConfig, train_helms
from isaacgymenvs_hrl.hrl.segment_encoder import encoder_path
from isaacgymenvs_hrl.skills.ldse import LDSEConfig, train_ldse
from isaacgymenvs_hrl.tasks.franka_stack import FrankaStack

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
QUIET = lambda *_: None


@pytest.fixture(scope="module")
def commanded(tmp_path_factory):
    """Episodes whose actions depend on the state and a per-episode command (slice 'task'); the
    slice 'noise' is unrelated to the actions."""
    rng = np.random.default_rng(0)
    w_s, w_c = rng.normal(0, 0.7, (3, 4)), rng.normal(0, 1.5, (3, 2))
    obs, act, terminals = [], [], []
    for _ in range(60):
        c = rng.uniform(-1, 1, 2)
        s = rng.normal(0, 1, 4)
        for t in range(50):
            obs.append(np.concatenate([s, c, rng.normal(0, 1, 2)]))
            act.append(np.tanh(w_s @ s + w_c @ c))
            s = 0.9 * s + 0.1 * rng.normal(0, 1, 4)
            terminals.append(t == 49)
    data = {"observations": np.asarray(obs, np.float32), "actions": np.asarray(act, np.float32),
            "rewards": np.zeros(len(act), np.float32), "terminals": np.asarray(terminals),
            "timeouts": np.zeros(len(act), bool)}
    meta = {"obs_layout": [["proprio", 4], ["task", 2], ["noise", 2]], "control_dt": 0.02,
            "control_type": "torque", "task_family": "synthetic", "num_actions": 3, "commit": "test"}
    path = tmp_path_factory.mktemp("data") / "commanded.hdf5"
    write_dataset(path, data, meta)
    data, meta = load_dataset(path)
    meta["path"] = str(path)
    return data, meta


def _bc(data, meta, cond, path):
    train_bc(data, meta, BCConfig(condition_on=cond, hidden=[64, 64], epochs=15, batch_size=256), str(path), log=QUIET)
    return load_llc(path)


def test_z_usage_separates_a_used_latent_from_an_ignored_one(commanded, tmp_path):
    data, meta = commanded
    used = z_usage(_bc(data, meta, ["task"], tmp_path / "used.llc.pt"), data, max_windows=400, fit_iters=100)
    ignored = z_usage(_bc(data, meta, ["noise"], tmp_path / "ignored.llc.pt"), data, max_windows=400, fit_iters=100)
    assert used["posterior"].startswith("exact") and used["shuffled_of"] == "true"
    # measured: ratio 220 when the latent is the command, 1.00 when it is noise
    assert used["ratio"] > 4.0 and ignored["ratio"] < 1.3
    assert used["mse_true"] < 0.5 * used["mse_zero"] and used["mse_fitted"] < used["mse_zero"]
    assert used["active_dims"] == 2 and "kl_per_dim" not in used         # BC's latent is deterministic
    md = markdown({"z_usage": used})
    assert "ratio shuffled/true" in md and f"{used['ratio']:.3f}" in md


def test_ldse_posterior_from_its_encoder_file_and_without_it(commanded, tmp_path):
    data, meta = commanded
    out = tmp_path / "ldse.llc.pt"
    train_ldse(data, meta, LDSEConfig(policy_obs=["proprio", "task"], horizon=5, latent_dim=3, hidden=[32],
                                      lstm_hidden=16, epochs=2, batch_size=128, default_steps=5),
               str(out), log=QUIET, progress=False)
    z = z_usage(load_llc(out), data, max_windows=200, fit_iters=20)
    assert z["posterior"].startswith("exact: LDSE encoder") and len(z["kl_per_dim"]) == 3
    assert all(v >= 0 for v in z["kl_per_dim"]) and z["kl_total"] == pytest.approx(sum(z["kl_per_dim"]), abs=1e-3)
    lone = tmp_path / "alone" / "ldse.llc.pt"                   # the LLC without its encoder next to it
    lone.parent.mkdir()
    shutil.copy(out, lone)
    encoder_path(out).rename(tmp_path / "moved.encoder.pt")
    z2 = z_usage(load_llc(lone), data, max_windows=200, fit_iters=20)
    assert z2["posterior"].startswith("none") and z2["shuffled_of"] == "fitted" and "mse_true" not in z2
    z3 = z_usage(load_llc(lone), data, max_windows=200, fit_iters=20, encoder=tmp_path / "moved.encoder.pt")
    assert z3["mse_true"] == pytest.approx(z["mse_true"])
    with pytest.raises(UserError, match="encoder file not found"):
        z_usage(load_llc(lone), data, encoder=tmp_path / "nope.encoder.pt")


def test_helms_skill_posterior_and_discrete_columns(commanded, tmp_path):
    data, meta = commanded
    out = tmp_path / "helms.llc.pt"
    train_helms(data, meta, HeLMSConfig(mid_obs=["proprio", "task"], num_skills=3, latent_dim=2, hidden=[32],
                                        mid_hidden=[32], seq_len=10, seq_stride=10, epochs=2, batch_size=16),
                str(out), log=QUIET, progress=False)
    z = z_usage(load_llc(out), data, max_windows=200, fit_iters=20)
    assert z["posterior"].startswith("optimistic") and len(z["kl_per_dim"]) == 2
    # the best skill per window can only beat a random one, which can only beat the worst
    assert z["mse_fitted_skill"] <= z["mse_prior_skill"] <= z["mse_worst_skill"]
    assert sum(z["skill_usage_fitted"]) == pytest.approx(1.0, abs=1e-3) and len(z["skill_usage_fitted"]) == 3
    assert z["shuffled_of"] == "true" and z["ratio"] > 0


def test_report_section_and_clear_errors(commanded, tmp_path):
    data, meta = commanded
    llc = _bc(data, meta, ["task"], tmp_path / "bc.llc.pt")
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text(json.dumps({"val_mse": 0.5}))
    md = report_section(tmp_path / "bc.llc.pt", meta["path"], meta, report, max_windows=300)
    merged = json.loads((report / "metrics.json").read_text())
    assert merged["val_mse"] == 0.5 and merged["diagnostics"]["z_ratio"] > 4.0     # the trainer's metrics kept
    assert json.loads((report / "diagnostics.json").read_text())["z_usage"]["algorithm"] == "bc"
    assert "## Skill diagnostics" in md
    thin = {**data, "obs": {"proprio": data["obs"]["proprio"]}}
    with pytest.raises(UserError, match="lacks observation slices"):
        z_usage(llc, thin)
    with pytest.raises(UserError, match="need a task that names its objects"):
        skill_rollouts(object(), llc)


def test_mutual_information_and_naming_rules():
    y = np.repeat(np.arange(4), 10)
    assert mutual_information(y, y) == pytest.approx(2.0)                  # log2 K when the end state tells y
    assert mutual_information(y, np.zeros(40)) == pytest.approx(0.0)
    assert mutual_information(y, np.tile(np.arange(5), 8)) == pytest.approx(0.0)   # independent
    move = np.array([0.0, 0.0, 0.0])
    RGB = FrankaStack.object_names
    assert name_end_state(RGB, 0, True, [False] * 3, 0, 0.0, -1, move, True) == "lift red"
    assert name_end_state(RGB, 2, False, [False] * 3, 2, 0.0, -1, move, True) == "grasp blue"
    assert name_end_state(RGB, -1, False, [False, True, False], 0, 0.2, 1, move, False) == "place green"
    assert name_end_state(RGB, -1, False, [False] * 3, 1, 0.03, -1, move, True) == "reach green, closed"
    assert name_end_state(RGB, -1, False, [False] * 3, 1, 0.3, 2, move, False) == "push blue"
    assert name_end_state(RGB, -1, False, [False] * 3, 1, 0.3, -1, np.array([0.0, -0.2, 0.05]), False) == "move -y right"
    assert name_end_state(RGB, -1, False, [False] * 3, 1, 0.3, -1, np.array([0.01, 0.0, 0.0]), False) == "stay"


class _Sideways(nn.Module):
    """A one-latent Franka LLC: the TCP moves along x at z's speed, the gripper stays open."""

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros(obs.shape[0], 3)
        return torch.cat([z[:, :1], zero, torch.ones(obs.shape[0], 1)], -1)


def test_rollouts_name_and_separate_held_latents_in_franka_stack(tmp_path):
    cfg = {"name": "FrankaStack", "physics_engine": "mujoco", "env": {"numEnvs": 3, "episodeLength": 40,
                                                                     "terminateOnSuccess": False},
           "sim": {"dt": 0.05, "substeps": 10, "mujoco": {"num_threads": 2, "sleep": True}}}
    torch.manual_seed(0)
    task = FrankaStack(cfg, "cpu", "cpu", -1, True, auto_reset=False)
    path = wrap_module(tmp_path / "sideways.llc.pt", _Sideways(), torch.zeros(2, 22), torch.zeros(2, 1),
                       task_family="franka", obs=[["proprio", 22]],
                       action={"dim": 5, "control_type": "ee_delta", "scale": 1.0, "squash": "clip"},
                       latent={"dim": 1, "normalization": "none", "scale": 1.0, "modes": ["continuous"]},
                       default_steps=5, control_dt=task.dt)
    llc = load_llc(path, trust_code=True)
    ro = skill_rollouts(task, llc, steps=20, num_latents=4, seed=0)
    hl = torch.rand(4, 1, generator=torch.Generator().manual_seed(1)) * 2 - 1           # the conditions drawn
    for i, r in enumerate(ro["per_condition"].values()):
        if abs(float(hl[i])) > 0.3:                                                      # 20 steps x 3 cm x |z|
            assert r["name"].startswith("move +x fwd" if hl[i] > 0 else "move -x back"), (float(hl[i]), r)
        assert r["grasp_fraction"] == 0.0 and r["opening"] > 0.03                         # open hand, no grasp
    assert ro["mi_bits_names"] >= ro["mi_bits_names_permuted"]
    assert ro["mi_bits_max"] == pytest.approx(math.log2(4)) and 0.0 <= ro["mi_bits_kmeans"] <= 2.0 + 1e-9
    gc = grasp_coverage(task, None, steps=10) | grasp_coverage(task, llc, steps=10)
    assert set(gc) == {"random flat actions", "random high level (continuous)"}
    assert all(v["grasp_fraction"] == 0.0 for v in gc.values())
    md = markdown({"z_usage": {"posterior": "x", "k": 5, "windows": 1, "action_var": 0.1, "latent_dim": 1},
                   "rollouts": ro, "grasp_coverage": gc})
    assert "latent 0" in md and "random flat actions" in md
    # the end-state columns carry the names the task gives its objects
    assert ro["objects"] == ["red", "green", "blue"] and "| d red | d green | d blue | h red |" in md
    task.close()
