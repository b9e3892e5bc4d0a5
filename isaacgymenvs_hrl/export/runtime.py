"""Run an exported policy with its state: what ``hrl-deploy`` and the sim-to-sim report use.

    policy = ExportedPolicy("policy.onnx")        # reads policy.onnx.json beside it
    policy.reset(batch=1)
    action = policy.act(obs)                      # numpy (B, obs_size) -> (B, action_size)

ONNX files run on onnxruntime (CPU), TorchScript files on ``torch.jit.load``. The metadata's sha256
of the file is checked on load, and every observation is checked against its declared size.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .exporter import METADATA_FORMAT, metadata_path, sha256
from .run import ExportError


def read_metadata(policy_path: str | Path) -> dict:
    meta_path = metadata_path(policy_path)
    if not Path(policy_path).is_file():
        raise ExportError(f"policy={policy_path}: file not found; write one with hrl-export")
    if not meta_path.is_file():
        raise ExportError(f"{meta_path} not found: hrl-export writes it beside the policy file; the "
                          "policy's observation layout, rate and state come from it")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{meta_path} is not valid JSON ({exc})") from None
    if meta.get("format") != METADATA_FORMAT:
        raise ExportError(f"{meta_path}: expected format '{METADATA_FORMAT}', found {meta.get('format')!r}")
    return meta


class ObservationMismatch(ExportError):
    pass


class ExportedPolicy:
    def __init__(self, path: str | Path, check_hash: bool = True, threads: int = 1):
        self.path = Path(path)
        self.meta = read_metadata(self.path)
        if check_hash and sha256(self.path) != self.meta["file_sha256"]:
            raise ExportError(f"policy={self.path} does not match the sha256 in {metadata_path(self.path)}: "
                              "the file was changed after export; export it again")
        self.inputs = self.meta["inputs"]
        self.outputs = self.meta["outputs"]
        self.obs_size = int(self.inputs[0]["shape"][1])
        self.fmt = self.meta["file_format"]
        if self.fmt == "onnx":
            try:
                import onnxruntime as ort
            except ImportError:
                raise ExportError("running an ONNX policy needs onnxruntime: pip install "
                                  "'isaacgymenvs_hrl[export]' (or export format=torchscript)") from None
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
            self._sess = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        else:
            import torch
            self._torch = torch
            self._module = torch.jit.load(str(self.path), map_location="cpu").eval()
        self.state_names = [i["name"] for i in self.inputs if i["name"] in ("latent", "skill", "step")]
        self.state: dict[str, np.ndarray] = {}
        self.last_outputs: dict[str, np.ndarray] = {}
        self.reset(1)

    # ---- state ------------------------------------------------------------------------------
    def reset(self, batch: int = 1, rows=None) -> None:
        """Zero the hold state: of every row (``rows`` None, also sets the batch size) or of ``rows``."""
        if rows is None:
            self.batch = int(batch)
            self.state = {}
            for spec in self.inputs:
                if spec["name"] in self.state_names:
                    shape = [self.batch if s == "batch" else int(s) for s in spec["shape"]]
                    self.state[spec["name"]] = np.zeros(shape, dtype=spec["dtype"])
        else:
            for v in self.state.values():
                v[rows] = 0

    def check_observation(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim == 1:
            obs = obs[None]
        if obs.ndim != 2 or obs.shape[1] != self.obs_size:
            names = ", ".join(f"{s['name']} ({s['size']})" for s in self.meta["observation"]["slices"])
            raise ObservationMismatch(
                f"observation of shape {tuple(obs.shape)} refused: policy {self.path.name} expects "
                f"(batch, {self.obs_size}) = {names}; send the task's observation in that order")
        if obs.shape[0] != self.batch:
            raise ObservationMismatch(f"observation batch {obs.shape[0]} but the policy state holds "
                                      f"{self.batch} rows; call reset(batch={obs.shape[0]}) first")
        if not np.isfinite(obs).all():
            bad = np.argwhere(~np.isfinite(obs))[0]
            raise ObservationMismatch(f"observation entry {int(bad[1])} of row {int(bad[0])} is not finite "
                                      f"({obs[tuple(bad)]}); the robot's reading is broken")
        return obs

    # ---- running ----------------------------------------------------------------------------
    def run(self, feeds: dict) -> dict:
        """One raw call: named inputs -> named outputs (numpy)."""
        if self.fmt == "onnx":
            outs = self._sess.run(None, feeds)
        else:
            torch = self._torch
            with torch.no_grad():
                res = self._module(*[torch.from_numpy(np.ascontiguousarray(feeds[i["name"]]))
                                     for i in self.inputs])
            res = res if isinstance(res, tuple) else (res,)
            outs = [r.numpy() for r in res]
        return {o["name"]: v for o, v in zip(self.outputs, outs)}

    def act(self, obs, hl_action=None) -> np.ndarray:
        """Action for ``obs`` (B, obs_size); advances the hold state. ``hl_action`` for part=llc."""
        feeds = {"obs": self.check_observation(obs)}
        if any(i["name"] == "hl_action" for i in self.inputs):
            if hl_action is None:
                raise ExportError(f"policy {self.path.name} is an LLC-only export: give the high-level "
                                  "action (hl_action) with every observation")
            spec = next(i for i in self.inputs if i["name"] == "hl_action")
            feeds["hl_action"] = np.asarray(hl_action, dtype=spec["dtype"]).reshape(
                [self.batch if s == "batch" else int(s) for s in spec["shape"]])
        feeds.update(self.state)
        out = self.run(feeds)
        for name in self.state_names:
            self.state[name] = out[f"{name}_out"]
        self.last_outputs = out
        return out[self.outputs[0]["name"]]
