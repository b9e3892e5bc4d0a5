"""Atomic file outputs: write beside the target, check, fsync, rename; sweep what killed runs left.

Every writer in the project names its temporary file ``<target>.tmp.<pid>``, so a file of that form
whose process is gone is debris from a killed or failed save and can be removed.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

_TMP = re.compile(r"\.tmp\.(\d+)$")


def tmp_path(path: str | os.PathLike) -> Path:
    """The temporary name of ``path`` for this process."""
    path = Path(path)
    return path.with_name(f"{path.name}.tmp.{os.getpid()}")


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists on this machine (it may belong to another user)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def remove_stale_tmp(folder: str | os.PathLike) -> list[Path]:
    """Remove ``*.tmp.<pid>`` files and folders in ``folder`` whose process no longer runs."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = _TMP.search(entry.name)
        if m is None or pid_alive(int(m.group(1))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


def fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename durable (best effort: not every filesystem lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """fsync ``tmp``, rename it over ``path`` and fsync the folder."""
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


def check_writable(path: str | os.PathLike, key: str, example: str = "out.pt") -> Path:
    """Refuse, before any work is done, an output path that is a folder or cannot be written."""
    from ..errors import UserError
    p = Path(path)
    if str(path).endswith(os.sep) or p.is_dir():
        raise UserError(f"{key}={path} is a folder; give a file name, e.g. {key}={p / example}")
    parent = p.parent if str(p.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{key}={path}: {probe} is a file, so the folder {parent} cannot be created")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{key}={path}: the folder {probe} is not writable; choose another {key}=")
    if p.exists() and not os.access(p, os.W_OK) and not os.access(parent, os.W_OK):
        raise UserError(f"{key}={path} exists and cannot be replaced; choose another {key}=")
    return p
