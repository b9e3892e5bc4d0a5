"""Record MP4s of env 0 every ``freq`` steps for ``length`` steps, as IsaacGymEnvs' capture_video."""
from __future__ import annotations

import os
from pathlib import Path


class VideoRecorder:
    """Wraps a VecTask; everything but ``step`` passes through to it."""

    def __init__(self, task, folder: str, freq: int, length: int, fps: int | None = None):
        self.task, self.folder, self.freq, self.length = task, folder, int(freq), int(length)
        self.fps = fps or max(1, int(round(1.0 / task.dt)))
        self.steps = 0
        self.frames: list = []
        os.makedirs(folder, exist_ok=True)

    def __getattr__(self, name):
        return getattr(self.task, name)

    def step(self, actions):
        out = self.task.step(actions)
        if self.steps % self.freq == 0 or self.frames:
            self.frames.append(self.task.render())
            if len(self.frames) >= self.length:
                self._write()
        self.steps += 1
        return out

    def _write(self) -> None:
        import imageio.v2 as imageio
        path = os.path.join(self.folder, f"step-{self.steps - len(self.frames) + 1:09d}.mp4")
        tmp = path + ".tmp.mp4"
        imageio.mimwrite(tmp, self.frames, fps=self.fps, macro_block_size=8)
        os.replace(tmp, path)
        self.frames = []
        print(f"=> wrote video {path}")


def write_mp4(path: Path, frames: list, fps: int) -> Path:
    """Atomically written H.264 MP4 (temporary name, then rename)."""
    import imageio.v2 as imageio
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + f".tmp{os.getpid()}.mp4")
    imageio.mimwrite(tmp, frames, fps=fps, macro_block_size=8)
    os.replace(tmp, path)
    return path
