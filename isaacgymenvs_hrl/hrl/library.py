"""The skill library: pretrained LLCs (and the teacher policies behind them) shipped in the package,
picked by name (``task.env.llc.checkpoint=humanoid/walk_bc``) and checked against their manifest.

``isaacgymenvs_hrl/pretrained/manifest.json`` holds one entry per file: what it is (robot family,
modes, latent size, default k, control dt, observation slices), its sha256 and size, and how it was
made (command, seed, commit, dataset hash, measured metrics). ``benchmarks/build_skill_library.sh``
rebuilds every file and entry from scratch; ``hrl-library`` lists and verifies them. This module
reads the library; ``library_add`` writes entries into it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from ..errors import UserError
from ..utils.atomic import check_inside

LIBRARY_DIR = Path(__file__).resolve().parent.parent / "pretrained"
MANIFEST = LIBRARY_DIR / "manifest.json"
MANIFEST_FORMAT = "isaacgymenvs_hrl.skill_library"


class LibraryError(UserError, ValueError):
    pass


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_manifest(manifest: Path = MANIFEST) -> dict:
    """{name: entry}; an absent manifest is an empty library."""
    if not manifest.is_file():
        return {}
    try:
        blob = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        raise LibraryError(f"the skill library manifest {manifest} cannot be read ({type(exc).__name__}); "
                           "reinstall the package or rebuild it with benchmarks/build_skill_library.sh") from None
    if not isinstance(blob, dict) or blob.get("format") != MANIFEST_FORMAT or not isinstance(blob.get("entries"), dict):
        raise LibraryError(f"{manifest} is not a skill library manifest (format '{MANIFEST_FORMAT}')")
    for name, entry in blob["entries"].items():
        check_name(name)
        if not isinstance(entry, dict) or entry.get("kind") not in ("llc", "policy"):
            raise LibraryError(f"manifest entry '{name}': 'kind' must be llc or policy; rebuild the manifest")
        for where, record in ((name, entry), *(((f"{name}.encoder", entry.get("encoder")),)
                                               if isinstance(entry, dict) and "encoder" in entry else ())):
            _check_record(record, where, manifest)
    return blob["entries"]


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")


def check_name(name: str) -> str:
    """A library name is a relative path of plain parts (``humanoid/walk_bc``): nothing absolute,
    no '..', so its file stays inside the library."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name.split("/") or len(name) > 120:
        raise LibraryError(f"library name {name!r}: use letters, digits, '_', '-', '.' in parts joined by '/', "
                           "e.g. humanoid/walk_bc (no '..', no leading '/', at most 120 characters)")
    return name


def _check_record(record, where: str, manifest: Path) -> None:
    """A manifest record names a file inside the library, with an integer size and a sha256."""
    if not isinstance(record, dict):
        raise LibraryError(f"manifest entry '{where}' is not an object; rebuild the manifest")
    file, size, digest = record.get("file"), record.get("size"), record.get("sha256")
    if not isinstance(file, str):
        raise LibraryError(f"manifest entry '{where}': 'file' must be a path inside the library, got {file!r}")
    check_inside(file, manifest.parent, f"manifest entry '{where}' file", file, LibraryError)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise LibraryError(f"manifest entry '{where}': 'size' must be an integer number of bytes, got {size!r}")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise LibraryError(f"manifest entry '{where}': 'sha256' must be 64 hex digits, got {digest!r}")


def verify(name: str, manifest: Path = MANIFEST) -> Path:
    """The file of library entry ``name``, after checking that it exists and matches its hash."""
    entries = load_manifest(manifest)
    if name not in entries:
        raise LibraryError(f"'{name}' is not in the skill library; it has {', '.join(sorted(entries)) or 'nothing'} "
                           "(hrl-library lists them), or give a file path")
    entry = entries[name]
    path = manifest.parent / entry["file"]
    # an LDSE LLC ships its segment encoder beside it (skill matching reads <name>.encoder.pt)
    for record in (entry, *([entry["encoder"]] if "encoder" in entry else [])):
        file = manifest.parent / record["file"]
        if not file.is_file():
            raise LibraryError(f"skill library file {file} of '{name}' is missing; reinstall the package or rebuild "
                               "it with benchmarks/build_skill_library.sh")
        size = file.stat().st_size
        if size != record["size"] or sha256(file) != record["sha256"]:
            raise LibraryError(f"skill library file {file} of '{name}' is damaged (sha256 or size differs from "
                               f"the manifest: {size} bytes, expected {record['size']}); reinstall the package or "
                               "rebuild it with benchmarks/build_skill_library.sh")
    return path


def resolve(name_or_path: str | os.PathLike, kind: str | None = None) -> Path:
    """A library name becomes its verified file; anything else is a path, returned unchanged.
    ``kind`` ("llc" or "policy") refuses a library entry of the other kind."""
    text = str(name_or_path)
    entries = load_manifest()
    if text in entries:
        if kind is not None and entries[text].get("kind") != kind:
            raise LibraryError(f"skill library entry '{text}' is a {entries[text].get('kind')}, not a {kind}")
        return verify(text)
    path = Path(text)
    if not path.exists() and "/" in text and not path.suffix and entries:
        raise LibraryError(f"'{text}' is neither a file nor a skill library name; the library has "
                           f"{', '.join(sorted(entries))} (hrl-library lists them)")
    return path


def table(entries: dict) -> str:
    cols = ("name", "kind", "family", "algorithm", "modes", "latent", "k", "dt", "size")
    rows = [(n, e["kind"], e.get("robot_family", e.get("task", "")), e.get("algorithm") or "",
             ",".join(e.get("modes", [])), str(e.get("latent_dim", "")), str(e.get("default_steps", "")),
             str(e.get("control_dt", "")), f"{e['size'] / 1024:.0f} KiB") for n, e in sorted(entries.items())]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths))
    return "\n".join([line(cols), line(["-" * w for w in widths]), *map(line, rows)])
