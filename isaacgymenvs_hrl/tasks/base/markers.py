"""Visual-only markers: what a task asks for (a target, a heading, a goal pose), drawn into rendered
frames and the viewer as extra ``mjvScene`` geoms. They are added after ``mjv_updateScene``, so they
never reach the model, the physics or the observations.
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

SPHERE, BOX, CYLINDER, ARROW = "sphere", "box", "cylinder", "arrow"
_GEOM = {SPHERE: mujoco.mjtGeom.mjGEOM_SPHERE, BOX: mujoco.mjtGeom.mjGEOM_BOX,
         CYLINDER: mujoco.mjtGeom.mjGEOM_CYLINDER, ARROW: mujoco.mjtGeom.mjGEOM_ARROW}


@dataclass(frozen=True)
class Marker:
    """One geom in world coordinates (m). Shapes: ``pos`` is the centre, ``size`` MuJoCo's geom size
    (sphere: radius; box: half extents; cylinder: radius, half height), upright. Arrows go from ``pos``
    to ``to`` and ``size[0]`` is the shaft width."""

    kind: str
    pos: tuple
    size: tuple
    rgba: tuple
    to: tuple | None = None


def draw_markers(scene: mujoco.MjvScene, markers) -> int:
    """Append ``markers`` to ``scene`` as decoration geoms (as many as it has room for); returns how
    many were added."""
    added = 0
    for m in markers:
        if scene.ngeom >= scene.maxgeom:
            break
        geom = scene.geoms[scene.ngeom]
        rgba = np.asarray(m.rgba, dtype=np.float32)
        size = np.zeros(3)
        size[:len(m.size)] = m.size
        pos = np.asarray(m.pos, dtype=np.float64)
        mujoco.mjv_initGeom(geom, _GEOM[m.kind], size, pos, np.eye(3).ravel(), rgba)
        if m.kind == ARROW:
            mujoco.mjv_connector(geom, _GEOM[ARROW], float(m.size[0]), pos, np.asarray(m.to, dtype=np.float64))
        geom.category = mujoco.mjtCatBit.mjCAT_DECOR
        scene.ngeom += 1
        added += 1
    return added
