"""IsaacGymEnvs' train configs, unchanged, through hrl-train (issue 17).

Every train file in ``../shared/compat/isaacgymenvs/cfg/train`` trains against a task of ours via
``hydra.searchpath`` (16 envs, max_iterations=1, the minibatch our error message asks for). The
algorithm families IsaacGymEnvs has beyond those files are built here from the shipped
HumanoidPPO.yaml the way its other files differ from it (asymmetric critic, SAC, LSTM with a fixed
max_epochs, AMP) and written to a temporary cfg folder, so they too run unchanged through the CLI
path. ``train.run`` runs in process behind the CLI's ``exit_on_user_error``.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from conftest import compose_train_config, train_in_process
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPAT_CFG = REPO.parent / "shared" / "compat" / "isaacgymenvs" / "cfg"
TRAIN_FILES = sorted((COMPAT_CFG / "train").glob("*.yaml")) if COMPAT_CFG.is_dir() else []
NUM_ENVS = 16

pytestmark = pytest.mark.skipif(not TRAIN_FILES, reason="needs ../shared/compat/isaacgymenvs/cfg")


def _compose(args):
    return compose_train_config(args)


def _run(args, capsys):
    return train_in_process(args, capsys)


def _task_for(stem: str) -> str:
    return "FrankaStack" if "franka" in stem.lower() else "HumanoidLocomotion"


def _args(cfg_dir: Path, stem: str, *extra):
    task = _task_for(stem)
    base = [f"hydra.searchpath=[file://{cfg_dir}]", f"task={task}", f"train={stem}", f"num_envs={NUM_ENVS}",
            "headless=True"]
    conf = _compose(base).train.params.config
    if "horizon_length" in conf:                # the divisor our minibatch error asks for
        batch = NUM_ENVS * int(conf.horizon_length)
        base.append(f"train.params.config.minibatch_size={batch}")
        if "central_value_config" in conf:
            base.append(f"train.params.config.central_value_config.minibatch_size={batch}")
    return base + list(extra)


def _checkpoints(cwd: Path):
    return sorted(glob.glob(str(cwd / "runs" / "*" / "nn" / "*.pth")), key=os.path.getmtime)


@pytest.mark.parametrize("path", TRAIN_FILES, ids=[p.stem for p in TRAIN_FILES])
def test_shipped_isaacgymenvs_train_config_trains(path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, _ = _run(_args(COMPAT_CFG, path.stem, "max_iterations=1"), capsys)
    assert status == 0, out[-3000:]
    assert "epoch: 1/1" in out and "summary:" in out
    assert _checkpoints(tmp_path), "no checkpoint written"
    saved = yaml.safe_load(next((tmp_path / "runs").glob("*/config.yaml")).read_text())
    assert saved["train"]["params"]["config"]["max_epochs"] == 1
    assert saved["pbt"] == {"enabled": False}            # IsaacGymEnvs' top-level pbt key exists


# ---- the other families of IsaacGymEnvs train files, derived from the shipped HumanoidPPO.yaml --------
def _variant(tmp_path: Path, name: str, edit) -> Path:
    text = (COMPAT_CFG / "train" / "HumanoidPPO.yaml").read_text()
    tree = yaml.safe_load(text)
    edit(tree["params"])
    cfg_dir = tmp_path / "cfg"
    (cfg_dir / "train").mkdir(parents=True, exist_ok=True)
    (cfg_dir / "train" / f"{name}.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    return cfg_dir


def _asymmetric(params):
    params["config"]["name"] = "${resolve_default:HumanoidAsymm,${....experiment}}"
    params["config"]["central_value_config"] = {
        "minibatch_size": 32768, "mini_epochs": 2, "learning_rate": 5e-4, "clip_value": True,
        "normalize_input": True, "truncate_grads": True,
        "network": {"name": "actor_critic", "central_value": True,
                    "mlp": {"units": [64, 32], "activation": "elu", "d2rl": False,
                            "initializer": {"name": "default"}, "regularizer": {"name": "None"}}}}


def _sac(params):
    params["algo"] = {"name": "sac"}
    params["model"] = {"name": "soft_actor_critic"}
    params["network"] = {"name": "soft_actor_critic", "separate": True, "space": {"continuous": None},
                         "mlp": {"units": [64, 64], "activation": "relu", "initializer": {"name": "default"}},
                         "log_std_bounds": [-5, 2]}
    params["load_checkpoint"], params["load_path"] = False, "nn/Humanoid.pth"
    params["config"] = {   # as IsaacGymEnvs' SAC files: a fixed max_epochs, no max_iterations, no player
        "name": "${resolve_default:HumanoidSAC,${....experiment}}", "env_name": "rlgpu", "normalize_input": True,
        "reward_shaper": {"scale_value": 1.0}, "max_epochs": 50000, "num_steps_per_episode": 8,
        "save_best_after": 100, "save_frequency": 1000, "gamma": 0.99, "init_alpha": 1.0, "alpha_lr": 0.005,
        "actor_lr": 0.0005, "critic_lr": 0.0005, "critic_tau": 0.005, "batch_size": 256,
        "learnable_temperature": True, "num_seed_steps": 5, "num_warmup_steps": 1, "replay_buffer_size": 4096,
        "num_actors": "${....task.env.numEnvs}"}


def _lstm_fixed_epochs(params):
    params["config"]["name"] = "${resolve_default:HumanoidLSTM,${....experiment}}"
    params["network"]["rnn"] = {"name": "lstm", "units": 32, "layers": 1, "before_mlp": False,
                                "concat_input": True, "layer_norm": True}
    params["config"]["max_epochs"] = 10000          # as ShadowHandPPOLSTM-style files: not max_iterations
    params["config"].pop("player", None)            # and no player section: test=True must still end


def test_asymmetric_critic_trains_on_the_tasks_privileged_states(tmp_path, monkeypatch, capsys):
    import isaacgymenvs_hrl
    task = isaacgymenvs_hrl.make(seed=0, task="HumanoidLocomotion", num_envs=2, sim_device="cpu", rl_device="cpu")
    assert task.num_states > 0, "HumanoidLocomotion provides no privileged states"
    obs_dict = task.reset()
    assert obs_dict["states"].shape == (2, task.num_states)
    monkeypatch.chdir(tmp_path)
    cfg_dir = _variant(tmp_path, "HumanoidPPOAsymm", _asymmetric)
    status, out, _ = _run(_args(cfg_dir, "HumanoidPPOAsymm", "max_iterations=2"), capsys)
    assert status == 0, out[-3000:]
    assert "Adding Central Value Network" in out
    state = torch.load(_checkpoints(tmp_path)[-1], map_location="cpu", weights_only=True)
    critic = state["assymetric_vf_nets"]
    first = next(v for k, v in critic.items() if k.endswith("actor_mlp.0.weight"))
    assert first.shape[1] == task.num_states          # the critic reads the states, not the observations
    assert state["model"]["a2c_network.actor_mlp.0.weight"].shape[1] == task.num_obs


def test_sac_config_is_bounded_by_max_iterations_and_replays(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg_dir = _variant(tmp_path, "HumanoidSAC", _sac)
    status, out, _ = _run(_args(cfg_dir, "HumanoidSAC", "max_iterations=2"), capsys)
    assert status == 0, out[-3000:]
    assert "max_epochs 50000 -> 2" in out and "epoch: 2/2" in out
    ckpts = _checkpoints(tmp_path)
    assert any("_ep_2" in c for c in ckpts), ckpts            # stopped at epoch 2
    ckpt = ckpts[-1]
    assert ckpt.endswith("HumanoidSAC.pth")                   # and the run's final network under its name
    status, out, _ = _run(_args(cfg_dir, "HumanoidSAC", "test=True", f"checkpoint={ckpt}"), capsys)
    assert status == 0, out[-3000:]
    assert f"playing {NUM_ENVS} games" in out and "av reward:" in out and "summary: test=True" in out


def test_lstm_config_with_fixed_max_epochs_and_no_player(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg_dir = _variant(tmp_path, "HumanoidLSTM", _lstm_fixed_epochs)
    status, out, _ = _run(_args(cfg_dir, "HumanoidLSTM", "max_iterations=1"), capsys)
    assert status == 0, out[-3000:]
    assert "max_epochs 10000 -> 1" in out and "epoch: 1/1" in out
    status, out, _ = _run(_args(cfg_dir, "HumanoidLSTM", "test=True", f"checkpoint={_checkpoints(tmp_path)[-1]}"),
                          capsys)
    assert status == 0, out[-3000:]
    assert f"playing {NUM_ENVS} games" in out and "av reward:" in out


def test_amp_config_names_what_is_missing(tmp_path, monkeypatch, capsys):
    def amp(params):
        params["algo"]["name"] = "amp_continuous"
        params["model"]["name"] = "continuous_amp"
        params["network"]["name"] = "amp"
    monkeypatch.chdir(tmp_path)
    cfg_dir = _variant(tmp_path, "HumanoidAMPPPO", amp)
    status, out, err = _run(_args(cfg_dir, "HumanoidAMPPPO", "max_iterations=1"), capsys)
    assert status == 2 and "Traceback" not in out
    line = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(line) == 1 and "amp_continuous" in line[0]
    assert "train with train.params.algo.name=a2c_continuous" in line[0]
    assert not (tmp_path / "runs").exists()


def test_plus_key_typos_warn_with_near_matches(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, _ = _run(["task=HumanoidLocomotion", "num_envs=16", "max_iterations=1",
                           "train.params.config.minibatch_size=256", "+train.params.config.learnin_rate=1e-3",
                           "+task.env.episodeLenght=50", "+train.params.config.max_frames=100000"], capsys)
    assert status == 0, out[-3000:]
    assert "+train.params.config.learnin_rate was added, but nothing reads 'learnin_rate'" in out
    assert "did you mean learning_rate?" in out
    assert "did you mean episodeLength?" in out
    assert "+train.params.config.max_frames was added" not in out          # rl-games reads it: no warning
