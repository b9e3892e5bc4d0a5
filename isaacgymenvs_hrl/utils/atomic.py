"""Atomic file outputs: write beside the target, check, fsync, rename; sweep what killed runs left.

Every writer names its temporary ``<target>.isaacgymenvs_hrl.tmp.<pid>``: a name no user file has,
so the sweep (``remove_stale_tmp``) can remove exactly those files whose process is gone, and
nothing else (never a folder, never a file of another pattern). Outputs that belong together (an
LLC and its report) are staged and renamed as one unit by ``commit_together``: a journal written
first lets the next run finish a commit that a kill interrupted.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path

TAG = "isaacgymenvs_hrl"
_TMP = re.compile(rf"^.+\.{TAG}\.tmp\.([1-9]\d{{0,9}})$")
_JOURNAL = re.compile(rf"^.+\.{TAG}\.commit\.([1-9]\d{{0,9}})$")
_MARKER = f".{TAG}.staging"          # inside a staging folder: only folders holding it are ever removed


def tmp_path(path: str | os.PathLike) -> Path:
    """The temporary name of ``path`` for this process."""
    path = Path(path)
    return path.with_name(f"{path.name}.{TAG}.tmp.{os.getpid()}")


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


def _dead(pattern: re.Pattern, name: str) -> bool:
    m = pattern.match(name)
    return m is not None and not pid_alive(int(m.group(1)))


def remove_stale_tmp(folder: str | os.PathLike) -> list[Path]:
    """Remove the regular files ``*.isaacgymenvs_hrl.tmp.<pid>`` in ``folder`` whose process no
    longer runs; folders, links and every other name are left alone."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        try:
            if _dead(_TMP, entry.name) and stat.S_ISREG(entry.lstat().st_mode):
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


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``path.write_bytes(data)``, atomically."""
    path = Path(path)
    tmp = tmp_path(path)
    try:
        tmp.write_bytes(data)
        commit(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``path.write_text(text)`` (UTF-8), atomically."""
    return write_bytes(path, text.encode("utf-8"))


# ---- staged outputs that commit together -------------------------------------------------------
def staging_dir(target: str | os.PathLike) -> Path:
    """A fresh staging folder beside ``target`` (files are written into it under their final names);
    stale ones of the same target left by killed runs are removed first."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)
    folder = tmp_path(target)
    if folder.is_dir() and (folder / _MARKER).is_file():
        shutil.rmtree(folder)
    folder.mkdir()
    (folder / _MARKER).write_text("")
    return folder


def remove_stale_staging(target: str | os.PathLike) -> None:
    """Remove the staging folders of ``target`` whose process is gone (only folders we made: they
    carry the marker file)."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    for entry in target.parent.glob(f"{target.name}.{TAG}.tmp.*"):
        if _dead(_TMP, entry.name) and entry.is_dir() and not entry.is_symlink() and (entry / _MARKER).is_file():
            shutil.rmtree(entry, ignore_errors=True)


@contextmanager
def staging(target: str | os.PathLike, unit: str | os.PathLike | None = None):
    """``staging_dir(target)`` for the length of a ``with`` block, then removed (whether the block
    committed it, failed or was interrupted), unless the commit of the unit it belongs to (the
    ``commit_together`` whose first target is ``unit``, default ``target``) was cut short: then its
    journal remains and the next run's ``finish_commits`` completes the commit from the staged files."""
    folder = staging_dir(target)
    try:
        yield folder
    finally:
        if not journal_path(unit or target).exists():
            shutil.rmtree(folder, ignore_errors=True)


def staged_files(folder: str | os.PathLike) -> list[Path]:
    """What was written into a staging folder (its marker left out), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.name != _MARKER)


def _fsync_tree(path: Path) -> None:
    if path.is_dir():
        for p in path.rglob("*"):
            if p.is_file():
                fsync_file(p)
        fsync_dir(path)
    else:
        fsync_file(path)


def _apply(staged: Path, target: Path, old: Path) -> None:
    """One rename of a journal; safe to repeat after a kill at any point."""
    if staged.exists():
        if staged.is_dir():
            (staged / _MARKER).unlink(missing_ok=True)
            if target.is_dir() and not target.is_symlink():
                os.replace(target, old)        # a folder cannot be renamed over a non-empty one
        os.replace(staged, target)
        fsync_dir(target.parent)
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)


def journal_path(target: str | os.PathLike) -> Path:
    """This process's commit journal for a unit whose first target is ``target``."""
    target = Path(target).resolve()
    return target.with_name(f"{target.name}.{TAG}.commit.{os.getpid()}")


def commit_together(pairs) -> None:
    """Rename each staged file or folder onto its target as one unit. The journal (beside the first
    target) is written before the first rename; ``finish_commits`` completes it after a kill."""
    pairs = [(Path(s).resolve(), Path(t).resolve()) for s, t in pairs]
    for staged, _ in pairs:
        _fsync_tree(staged)
    journal = journal_path(pairs[0][1])
    steps = [[str(s), str(t), str(t.with_name(f"{t.name}.{TAG}.old.{os.getpid()}"))] for s, t in pairs]
    write_text(journal, json.dumps(steps))
    for s, t, old in steps:
        _apply(Path(s), Path(t), Path(old))
    journal.unlink()
    fsync_dir(journal.parent)


def finish_commits(folder: str | os.PathLike) -> list[Path]:
    """Complete the commits in ``folder`` that a killed run left half done; returns their targets."""
    folder = Path(folder)
    done = []
    if not folder.is_dir():
        return done
    for journal in list(folder.iterdir()):
        if not _dead(_JOURNAL, journal.name):
            continue
        try:
            steps = [tuple(map(Path, step)) for step in json.loads(journal.read_text())]
        except (OSError, ValueError, TypeError):
            continue
        for s, t, old in steps:          # only what a commit of ours staged: names of our pattern
            if (_TMP.match(s.name) or _TMP.match(s.parent.name)) and old.name.startswith(f"{t.name}.{TAG}.old."):
                _apply(s, t, old)
                done.append(t)
        journal.unlink()
    return done


def new_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` exclusively; if it exists (another run of the same name and second), the
    first free ``<path>_2``, ``<path>_3``, ... instead. Returns the folder created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        candidate = path if i == 1 else path.with_name(f"{path.name}_{i}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: 999 folders of this name exist")


# ---- where an output may go ---------------------------------------------------------------------
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
    if len(p.name) > 200:
        raise UserError(f"{key}={path}: the file name has {len(p.name)} characters, at most 200 are allowed")
    return p


def _same(a: Path, b: Path) -> bool:
    try:
        return (a.exists() and b.exists() and os.path.samefile(a, b)) or a.resolve() == b.resolve()
    except OSError:
        return False


def check_not_input(output: str | os.PathLike, inputs: dict, key: str = "output") -> None:
    """Refuse an output that is one of the command's inputs ({key: path}) or lies inside one."""
    from ..errors import UserError
    out = Path(output)
    for in_key, value in inputs.items():
        if value in (None, ""):
            continue
        src = Path(value)
        if _same(out, src) or (src.is_dir() and src.resolve() in out.resolve().parents):
            raise UserError(f"{key}={output} is the command's input {in_key}={value}: writing it would destroy "
                            f"the input; choose another {key}=")


def check_inside(path: str | os.PathLike, base: str | os.PathLike, key: str, value, error=None) -> Path:
    """``base / path``, refused (``error``, default UserError) when ``path`` is absolute or climbs
    out of ``base`` (through '..' or a link)."""
    from ..errors import UserError
    rel = Path(path)
    full = (Path(base) / rel).resolve()
    if rel.is_absolute() or ".." in rel.parts or not full.is_relative_to(Path(base).resolve()):
        raise (error or UserError)(f"{key}={value!r} leaves its folder {base}: give a plain relative name without "
                        "'..' or a leading '/'")
    return full
