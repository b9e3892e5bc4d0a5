"""Adding a file to the skill library: copied in (fsynced, renamed into place), described from its
own spec, and recorded in the manifest with how it was made. ``library`` reads what this writes; it
sits above ``llc_checkpoint`` because describing an LLC means loading it."""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from ..utils.atomic import check_inside, commit, tmp_path
from ..utils.provenance import code_version
from .library import MANIFEST, MANIFEST_FORMAT, LibraryError, check_name, load_manifest, sha256
from .llc_checkpoint import load_llc
from .segment_encoder import encoder_path


def describe_llc(path: Path, trust_code: bool = False) -> dict:
    """The manifest's description fields, read from an LLC checkpoint's own spec."""
    spec = load_llc(path, trust_code=trust_code).spec
    return {"robot_family": spec["task_family"], "modes": list(spec["latent"]["modes"]),
            "latent_dim": int(spec["latent"]["dim"]), "default_steps": int(spec["default_steps"]),
            "control_dt": float(spec["control_dt"]), "control_type": spec["action"]["control_type"],
            "obs": {part: [list(x) for x in slices] for part, slices in spec["obs"].items()},
            "algorithm": spec.get("provenance", {}).get("algorithm"),
            "metrics": spec.get("provenance", {}).get("metrics", {})}


def add(name: str, file: str | os.PathLike, kind: str, command: str, seed: int, dataset: str | None = None,
        description: str = "", metrics: dict | None = None, manifest: Path = MANIFEST, trust_code: bool = False,
        run_config: str | os.PathLike | None = None, **extra) -> dict:
    """Copy ``file`` into the library as ``name`` and record it (atomic manifest rewrite). A policy's
    ``run_config`` (the config.yaml of the run it came from, which describes its network) is copied
    beside it as ``<name>.yaml``."""
    check_name(name)
    if kind not in ("llc", "policy"):
        raise LibraryError(f"kind={kind!r}: choose llc or policy")
    src = Path(file)
    if not src.is_file():
        raise LibraryError(f"cannot add '{name}': {src} is not a file")
    if dataset and not Path(dataset).is_file():
        raise LibraryError(f"cannot add '{name}': its dataset {dataset} is not a file")
    if kind == "llc":
        describe_llc(src, trust_code)          # a file that does not load is refused before anything is copied
    suffix = ".llc.pt" if kind == "llc" else ".pth"
    rel = Path(name + suffix)
    dst = check_inside(rel, manifest.parent, "name", name, LibraryError)
    dst.parent.mkdir(parents=True, exist_ok=True)

    def copy_in(source: Path, target: Path) -> None:     # fsynced, then renamed into place
        tmp = tmp_path(target)
        shutil.copyfile(source, tmp)
        commit(tmp, target)
    copy_in(src, dst)
    if kind == "policy" and run_config is not None and Path(run_config).is_file():
        copy_in(Path(run_config), dst.with_name(Path(name).name + ".yaml"))
    entry = {"kind": kind, "file": str(rel), "sha256": sha256(dst), "size": dst.stat().st_size,
             "description": description, "command": command, "seed": int(seed), "commit": code_version(),
             "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra}
    if dataset:
        entry["dataset"] = {"file": Path(dataset).name, "sha256": sha256(dataset)}
    if kind == "llc":
        entry.update(describe_llc(dst, trust_code))
        if encoder_path(src).is_file():
            enc = encoder_path(dst)
            copy_in(encoder_path(src), enc)
            entry["encoder"] = {"file": str(enc.relative_to(manifest.parent)), "sha256": sha256(enc),
                                "size": enc.stat().st_size}
    if metrics:
        entry["metrics"] = {**entry.get("metrics", {}), **metrics}
    entries = load_manifest(manifest)
    entries[name] = entry
    text = json.dumps({"format": MANIFEST_FORMAT, "entries": dict(sorted(entries.items()))}, indent=1)
    tmp = tmp_path(manifest)
    tmp.write_text(text + "\n")
    commit(tmp, manifest)
    return entry
