"""Offscreen frames of one env with MuJoCo's renderer (EGL or OSMesa when there is no display)."""
from __future__ import annotations

import mujoco
import numpy as np

_CACHE: dict = {}


def render_env(task, env_id: int = 0, width: int = 480, height: int = 360) -> np.ndarray:
    """RGB (H, W, 3) uint8 of ``env_id``'s current state, from the 'track' camera when the MJCF has one."""
    model = task.engine.model
    key = (id(model), width, height)
    if key not in _CACHE:
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        try:
            renderer = mujoco.Renderer(model, height, width)
        except Exception as exc:    # no GL at all
            raise RuntimeError(
                "MuJoCo's offscreen renderer could not start. Headless machines need EGL or OSMesa: "
                "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri and set MUJOCO_GL=egl "
                f"(or libosmesa6 and MUJOCO_GL=osmesa). Cause: {exc}") from exc
        _CACHE[key] = (renderer, mujoco.MjData(model))
    renderer, data = _CACHE[key]
    data.qpos[:] = task.engine.qpos[env_id].detach().cpu().numpy()
    data.qvel[:] = task.engine.qvel[env_id].detach().cpu().numpy()
    mujoco.mj_forward(model, data)
    camera = "track" if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "track") >= 0 else -1
    renderer.update_scene(data, camera=camera)
    task.draw_markers(renderer.scene, env_id)
    return renderer.render()


class FastRenderer:
    """MuJoCo offscreen frames without shadows, reflections and skybox: about 6x cheaper than
    ``render_env`` on a software (llvmpipe) GL, which is what headless CPUs have."""

    def __init__(self, task, width: int, height: int):
        import mujoco
        self.mujoco, self.task = mujoco, task
        model = task.engine.model
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        try:
            self.renderer = mujoco.Renderer(model, height, width)
        except Exception as exc:    # no GL at all
            raise RuntimeError(
                "MuJoCo's offscreen renderer could not start (headless machines need EGL or OSMesa: "
                "MUJOCO_GL=egl or MUJOCO_GL=osmesa); set report.videos=false to skip the videos. "
                f"Cause: {exc}") from exc
        self.data = mujoco.MjData(model)
        self.camera = "track" if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "track") >= 0 else -1

    def __call__(self, env_id: int) -> np.ndarray:
        mj, data = self.mujoco, self.data
        data.qpos[:] = self.task.engine.qpos[env_id].detach().cpu().numpy()
        data.qvel[:] = self.task.engine.qvel[env_id].detach().cpu().numpy()
        mj.mj_forward(self.task.engine.model, data)
        self.renderer.update_scene(data, camera=self.camera)
        for flag in (mj.mjtRndFlag.mjRND_SHADOW, mj.mjtRndFlag.mjRND_REFLECTION, mj.mjtRndFlag.mjRND_SKYBOX):
            self.renderer.scene.flags[flag] = 0
        self.task.draw_markers(self.renderer.scene, env_id)
        return self.renderer.render()

    def close(self) -> None:
        self.renderer.close()
