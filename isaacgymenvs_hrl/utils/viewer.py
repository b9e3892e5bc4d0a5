"""MuJoCo's passive viewer on env 0, for ``headless=False`` where a display exists (IsaacGymEnvs'
default opens a viewer, so a user coming from it expects one).

The engines keep all envs as batched tensors, so the viewer gets its own ``MjData`` that mirrors env
0's state after every control step; the simulation itself never waits for the window.
"""
from __future__ import annotations


class PassiveViewer:
    """Wraps an env (a VecTask or a LatentSkillEnv); everything but ``step`` and ``close`` passes through."""

    def __init__(self, env, env_id: int = 0):
        import mujoco
        import mujoco.viewer

        self.env, self.env_id = env, int(env_id)
        self._task = getattr(env, "task", env)           # the VecTask under a LatentSkillEnv
        self._mujoco = mujoco
        self._model = self._task.engine.model
        self._data = mujoco.MjData(self._model)
        self._handle = mujoco.viewer.launch_passive(self._model, self._data)

    def __getattr__(self, name):
        return getattr(self.env, name)

    def step(self, actions):
        if self._task is not self.env:                    # follow the k control steps of a macro step
            out = self.env.step(actions, on_control_step=lambda *_: self._sync())
        else:
            out = self.env.step(actions)
            self._sync()
        return out

    def _sync(self) -> None:
        if not self._handle.is_running():                 # the user closed the window: keep training
            return
        engine = self._task.engine
        with self._handle.lock():
            self._data.qpos[:] = engine.qpos[self.env_id].detach().cpu().numpy()
            self._data.qvel[:] = engine.qvel[self.env_id].detach().cpu().numpy()
            self._mujoco.mj_forward(self._model, self._data)
            self._handle.user_scn.ngeom = 0               # the task's markers, redrawn every sync
            self._task.draw_markers(self._handle.user_scn, self.env_id)
        self._handle.sync()

    def close(self) -> None:
        self._handle.close()
        self.env.close()
