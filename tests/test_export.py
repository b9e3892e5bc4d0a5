"""``hrl-export``: parity of the exported file with the torch policy, on recorded observations.

The reference is what training runs: rl-games' network (deterministic player action) and, for
hierarchical runs, the real ``LatentSkillEnv`` stepping the real HumanoidLocation task with the
frozen LLC. Every action the LLC sends to the task is recorded with the observation it saw; the
exported ONNX file (onnxruntime) is then stepped through the same observations with its explicit
hold state and must give the same actions within 1e-5, for a flat policy and for each LLC mode.

Hierarchical runs are written the way hrl-train writes them (``runs/<run>/config.yaml`` from the
Hydra config, ``nn/<name>.pth`` holding rl-games' model state) from a real rl-games network with
random weights and non-trivial input statistics; one flat run is trained by hrl-train itself.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from test_hrl import llc_spec, write_llc

pytest.importorskip("onnxruntime")

from isaacgymenvs_hrl.export import (ExportedPolicy, ExportError, ObservationMismatch, export_policy,  # noqa: E402
                                     load_run, policy_from_run)
from isaacgymenvs_hrl.export.run import build_network, build_task, wrap_hierarchical  # noqa: E402

TOL = 1e-5
N_ENVS = 4
MACRO_STEPS = 3
ENV = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


# ---- runs on disk -----------------------------------------------------------------------------------
def compose_config(overrides) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from isaacgymenvs_hrl.paths import CFG_DIR
    from isaacgymenvs_hrl.utils.config import register_resolvers

    register_resolvers()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.1"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return yaml.safe_load(OmegaConf.to_yaml(cfg, resolve=True))


def write_run(root: Path, name: str, overrides, seed: int = 0) -> Path:
    """runs/<name>/config.yaml + nn/<name>.pth as hrl-train leaves them; returns the .pth path."""
    cfg = compose_config(["task=HumanoidLocation", f"num_envs={N_ENVS}", f"experiment={name}", *overrides])
    run_dir = root / "runs" / name
    (run_dir / "nn").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    task = build_task(cfg)
    env, *_ = wrap_hierarchical(task, cfg)
    params = cfg["train"]["params"]
    discrete = params["model"]["name"] == "discrete_a2c"
    n_act = int(env.action_space.n) if discrete else int(env.action_space.shape[0])
    torch.manual_seed(seed)
    from rl_games.algos_torch.model_builder import ModelBuilder
    net = ModelBuilder().load(params).build({"actions_num": n_act, "input_shape": (env.num_obs,),
                                             "num_seqs": 1, "value_size": 1, "normalize_value": True,
                                             "normalize_input": True})
    state = net.state_dict()
    # statistics a trained run would have: the normalizer must change the result
    state["running_mean_std.running_mean"] = torch.randn(env.num_obs) * 0.5
    state["running_mean_std.running_var"] = torch.rand(env.num_obs) * 2 + 0.05
    state["running_mean_std.count"] = torch.tensor(1000.0, dtype=torch.float64)
    for k in list(state):
        if k.startswith("a2c_network.mu.") or k.startswith("a2c_network.logits."):
            state[k] = state[k] * 20        # spread the outputs: some clamp at +-1, argmax varies
    path = run_dir / "nn" / f"{name}.pth"
    torch.save({"model": state, "epoch": 1, "frame": 0, "last_mean_rewards": -1.0}, path)
    task.close()
    return path


@pytest.fixture(scope="module")
def llc_file(tmp_path_factory):
    return write_llc(tmp_path_factory.mktemp("llc") / "skills.llc.pt", llc_spec(latent_dim=4, k=3), seed=0)


MODE_OVERRIDES = {
    "continuous": [],
    "discrete": ["train=HRLDiscretePPO", "task.env.llc.mode=discrete"],
    "mixture": ["train=HRLMixturePPO", "task.env.llc.mode=mixture"],
    "multires": ["task.env.llc.mode=multires"],
}


@pytest.fixture(scope="module")
def hrl_runs(tmp_path_factory, llc_file):
    root = tmp_path_factory.mktemp("hrl_runs")
    return root, {mode: write_run(root, f"hl_{mode}", MODE_OVERRIDES[mode] + [f"task.env.llc.checkpoint={llc_file}"],
                                  seed=i)
                  for i, mode in enumerate(MODE_OVERRIDES)}


# ---- recording the torch policy ---------------------------------------------------------------------
def record_hierarchical(checkpoint, macro_steps: int = MACRO_STEPS, seed: int = 0):
    """Run rl-games' high level over the real LatentSkillEnv; record every control step's
    (observation, action) as the task received them, and the high-level actions."""
    run = load_run(checkpoint)
    torch.manual_seed(seed)
    task = build_task(run.config, num_envs=N_ENVS)
    env, *_ = wrap_hierarchical(task, run.config, run.llc)
    act = policy_from_run(run)
    log, hls = [], []
    step = task.step

    def recording_step(actions):
        log.append((task.obs_processed.clone(), actions.clone()))
        return step(actions)
    task.step = recording_step
    obs = env.reset()["obs"]
    for _ in range(macro_steps):
        hl = act(obs)
        hls.append(hl.clone())
        obs = env.step(hl)[0]["obs"]
    task.close()
    run.task.close()
    return run, log, hls


def replay(policy: ExportedPolicy, log, hls=None, k: int = 1):
    """Max |exported - recorded| over the recorded control steps (LLC-only: recorded hl actions in)."""
    policy.reset(N_ENVS)
    worst = 0.0
    for i, (obs, action) in enumerate(log):
        hl = None if hls is None else hls[i // k].numpy()
        got = policy.act(obs.numpy(), hl)
        worst = max(worst, float(np.abs(got - action.numpy()).max()))
    return worst


# ---- parity -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(MODE_OVERRIDES))
def test_full_hierarchical_export_matches_latent_skill_env(hrl_runs, tmp_path, mode):
    _, runs = hrl_runs
    run, log, hls = record_hierarchical(runs[mode])
    assert len(log) == MACRO_STEPS * run.steps == 15
    out, meta_path = export_policy(run, tmp_path / f"{mode}.onnx", fmt="onnx", part="full")
    policy = ExportedPolicy(out)
    diff = replay(policy, log)
    print(f"parity {mode}: max |onnx - torch| = {diff:.2e}")
    assert diff <= TOL, (mode, diff)

    # the actions vary (no constant network hides a bug) and the hold state behaves as documented
    actions = torch.stack([a for _, a in log])
    assert actions.std(0).mean() > 1e-3
    policy.reset(N_ENVS)
    steps, latents, skills = [], [], []
    for obs, _ in log[: run.steps + 1]:
        policy.act(obs.numpy())
        steps.append(policy.state["step"].copy())
        latents.append(policy.state["latent"].copy())
        skills.append(policy.state["skill"].copy())
    assert [int(s[0]) for s in steps] == [1, 2, 3, 4, 0, 1]
    for i in range(1, run.steps):
        if mode == "discrete":         # the skill is held, its latent follows the state
            np.testing.assert_array_equal(skills[i], skills[0])
            assert not np.array_equal(latents[i], latents[0])
        else:
            np.testing.assert_array_equal(latents[i], latents[0])     # held for k steps
    # the exported high-level output equals rl-games' at every decision
    hl0 = policy.last_outputs["hl_action"]
    policy.reset(N_ENVS)
    policy.act(log[0][0].numpy())
    np.testing.assert_allclose(policy.last_outputs["hl_action"], hls[0].numpy(), atol=TOL)
    assert hl0.shape[0] == N_ENVS

    meta = json.loads(meta_path.read_text())
    assert meta["hierarchy"]["mode"] == mode and meta["hierarchy"]["k"] == 5
    assert [s["name"] for s in meta["observation"]["slices"]] == ["proprio", "task"]
    assert meta["observation"]["size"] == 55 and meta["control"]["rate_hz"] == pytest.approx(50.0)
    assert [i["name"] for i in meta["inputs"]] == ["obs", "latent", "skill", "step"]
    assert meta["checkpoints"]["llc"]["sha256"] and meta["checkpoints"]["policy"]["sha256"]


@pytest.mark.parametrize("mode", ["discrete", "multires"])
def test_llc_only_and_hl_only_exports_match(hrl_runs, tmp_path, mode):
    _, runs = hrl_runs
    run, log, hls = record_hierarchical(runs[mode])
    llc_path, _ = export_policy(run, tmp_path / "llc.onnx", part="llc")
    assert replay(ExportedPolicy(llc_path), log, hls, k=run.steps) <= TOL
    hl_path, hl_meta = export_policy(run, tmp_path / "hl.onnx", part="hl")
    hl_policy = ExportedPolicy(hl_path)
    from isaacgymenvs_hrl.export.run import policy_from_run as ref
    act = ref(run)
    obs = torch.stack([o for o, _ in log[:: run.steps]]).view(-1, 55)
    hl_policy.reset(len(obs))
    got = hl_policy.act(obs.numpy())
    np.testing.assert_allclose(got, act(obs).numpy(), atol=TOL)


def test_torchscript_export_matches(hrl_runs, tmp_path):
    _, runs = hrl_runs
    run, log, _ = record_hierarchical(runs["mixture"])
    out, _ = export_policy(run, tmp_path / "mixture.pt", fmt="torchscript", part="full")
    assert replay(ExportedPolicy(out), log) <= TOL


def test_llc_converted_with_wrap_module_exports_with_parity(tmp_path):
    """An LLC trained elsewhere and stored as TorchScript (``wrap_module``) inside the hierarchy."""
    from torch import nn

    from isaacgymenvs_hrl.hrl import wrap_module

    class External(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(52 + 4, 32), nn.Tanh(), nn.Linear(32, 21))

        def forward(self, obs, z):
            return self.net(torch.cat([obs, z], -1))

    torch.manual_seed(3)
    llc = wrap_module(tmp_path / "external.llc.pt", External(), torch.zeros(2, 52), torch.zeros(2, 4),
                      task_family="humanoid", obs=[["proprio", 52]],
                      action={"dim": 21, "control_type": "joint_position"},
                      latent={"dim": 4, "normalization": "sphere", "modes": ["continuous"]},
                      default_steps=5, control_dt=0.02)
    run, log, _ = record_hierarchical(write_run(tmp_path, "external", [f"task.env.llc.checkpoint={llc}",
                                                                      "++task.env.llc.trust_code=True"]))
    out, _ = export_policy(run, tmp_path / "external.onnx")
    assert replay(ExportedPolicy(out), log) <= TOL


# ---- a flat run trained by hrl-train, exported by hrl-export -------------------------------------------
@pytest.fixture(scope="module")
def flat_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("flat")
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.train", "task=HumanoidLocomotion",
                          "num_envs=16", "max_iterations=1", "train.params.config.horizon_length=8",
                          "train.params.config.minibatch_size=128", "experiment=flat"],
                         cwd=d, capture_output=True, text=True, timeout=300, env=ENV)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return d, Path(sorted(glob.glob(str(d / "runs" / "flat_*" / "nn" / "*.pth")))[-1])


def test_hrl_export_cli_flat_policy_parity(flat_run):
    d, ckpt = flat_run
    out = d / "exported" / "flat.onnx"
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.export", f"checkpoint={ckpt}",
                          "format=onnx", f"output={out}"], cwd=d, capture_output=True, text=True,
                         timeout=300, env=ENV)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "max |exported - torch|" in res.stdout

    run = load_run(ckpt)
    act = policy_from_run(run)
    torch.manual_seed(0)
    task = build_task(run.config, num_envs=N_ENVS)
    obs = task.reset()["obs"]
    policy = ExportedPolicy(out)
    policy.reset(N_ENVS)
    worst = 0.0
    for _ in range(10):
        ref = act(obs)
        got = policy.act(obs.numpy())
        worst = max(worst, float(np.abs(got - ref.numpy()).max()))
        obs = task.step(ref)[0]["obs"]
    print(f"parity flat: max |onnx - torch| = {worst:.2e}")
    assert worst <= TOL
    meta = json.loads((d / "exported" / "flat.onnx.json").read_text())
    assert "hierarchy" not in meta and meta["action"]["size"] == 21
    assert meta["action"]["control_type"] == "joint_position"
    task.close()


def test_bad_inputs_are_clear_errors(flat_run, tmp_path):
    d, ckpt = flat_run
    run = load_run(ckpt)
    with pytest.raises(ExportError, match="part=llc.*flat policy"):
        export_policy(run, tmp_path / "x.onnx", part="llc")
    out, meta_path = export_policy(run, tmp_path / "p.onnx")
    policy = ExportedPolicy(out)
    with pytest.raises(ObservationMismatch, match=r"expects \(batch, 55\) = proprio \(52\), task \(3\)"):
        policy.act(np.zeros((1, 54), dtype=np.float32))
    with pytest.raises(ObservationMismatch, match="not finite"):
        policy.act(np.full((1, 55), np.nan, dtype=np.float32))
    out.write_bytes(out.read_bytes() + b"\0")
    with pytest.raises(ExportError, match="sha256"):
        ExportedPolicy(out)
    lone = tmp_path / "lone.pth"
    lone.write_bytes(ckpt.read_bytes())
    with pytest.raises(ExportError, match="config.yaml"):
        load_run(lone)
    # the CLI: one line, exit status 2, no traceback
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.export", f"checkpoint={ckpt}", "part=llc"],
                         cwd=d, capture_output=True, text=True, timeout=300, env=ENV)
    assert res.returncode == 2 and "part=llc" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_runs_whose_decisions_need_state_outside_the_graph_are_refused(tmp_path):
    """A prior-anchored high level (it reads the prior's choice given the previous skill) and a fixed
    multires head are not in the exported graph yet: one line, no file written."""
    for name, extra in (("anchored", ["task=FrankaStackHRL", "task.env.llc.mode=continuous",
                                      "train=HRLPriorContinuousPPO"]),
                        ("head", ["task=FrankaStackHRL", "task.env.llc.checkpoint=franka/stack_mrs",
                                  "task.env.llc.mode=multires", "task.env.llc.prior=False", "task.env.llc.head=1",
                                  "train=FrankaStackPPO"])):
        res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.train", *extra, "num_envs=4", "seed=0",
                              "max_iterations=1", "train.params.config.horizon_length=8",
                              "train.params.config.minibatch_size=32", "task.env.episodeLength=40", "headless=True",
                              f"experiment={name}"], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=ENV)
        assert res.returncode == 0, (res.stdout + res.stderr)[-2000:]
        (ckpt,) = tmp_path.glob(f"runs/{name}_*/nn/{name}.pth")
        res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.export", f"checkpoint={ckpt}"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300, env=ENV)
        expected = "task.env.llc.prior=True" if name == "anchored" else "task.env.llc.head=1"
        assert res.returncode == 2 and expected in res.stderr and "Traceback" not in res.stderr, res.stderr[-1500:]
        assert not list(tmp_path.glob("**/*.onnx"))
