"""The skill library: pretrained LLCs (and the teacher policies behind them) shipped in the package,
picked by name (``task.env.llc.checkpoint=humanoid/walk_bc``) and checked against their manifest.

``isaacgymenvs_hrl/pretrained/manifest.json`` holds one entry per file: what it is (robot family,
modes, latent size, default k, control dt, observation slices), its sha256 and size, and how it was
made (command, seed, commit, dataset hash, measured metrics). ``benchmarks/build_skill_library.sh``
rebuilds every file and entry from scratch; ``hrl-library`` lists and verifies them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..errors import UserError, exit_on_user_error
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


def describe_llc(path: Path, trust_code: bool = False) -> dict:
    """The manifest's description fields, read from an LLC checkpoint's own spec."""
    from .llc_checkpoint import load_llc
    spec = load_llc(path, trust_code=trust_code).spec
    return {"robot_family": spec["task_family"], "modes": list(spec["latent"]["modes"]),
            "latent_dim": int(spec["latent"]["dim"]), "default_steps": int(spec["default_steps"]),
            "control_dt": float(spec["control_dt"]), "control_type": spec["action"]["control_type"],
            "obs": {part: [list(x) for x in slices] for part, slices in spec["obs"].items()},
            "algorithm": spec.get("provenance", {}).get("algorithm"),
            "metrics": spec.get("provenance", {}).get("metrics", {})}


def add(name: str, file: str | os.PathLike, kind: str, command: str, seed: int, dataset: str | None = None,
        description: str = "", metrics: dict | None = None, manifest: Path = MANIFEST, trust_code: bool = False,
        **extra) -> dict:
    """Copy ``file`` into the library as ``name`` and record it (atomic manifest rewrite)."""
    import shutil

    from ..utils.atomic import commit, tmp_path
    from ..utils.provenance import code_version
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
    run_cfg = src.parent.parent / "config.yaml"       # an rl-games policy's network is described there
    if kind == "policy" and run_cfg.is_file():
        copy_in(run_cfg, dst.with_name(Path(name).name + ".yaml"))
    entry = {"kind": kind, "file": str(rel), "sha256": sha256(dst), "size": dst.stat().st_size,
             "description": description, "command": command, "seed": int(seed), "commit": code_version(),
             "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra}
    if dataset:
        entry["dataset"] = {"file": Path(dataset).name, "sha256": sha256(dataset)}
    if kind == "llc":
        entry.update(describe_llc(dst, trust_code))
        from ..skills.ldse import encoder_path
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


def table(entries: dict) -> str:
    cols = ("name", "kind", "family", "algorithm", "modes", "latent", "k", "dt", "size")
    rows = [(n, e["kind"], e.get("robot_family", e.get("task", "")), e.get("algorithm") or "",
             ",".join(e.get("modes", [])), str(e.get("latent_dim", "")), str(e.get("default_steps", "")),
             str(e.get("control_dt", "")), f"{e['size'] / 1024:.0f} KiB") for n, e in sorted(entries.items())]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths))
    return "\n".join([line(cols), line(["-" * w for w in widths]), *map(line, rows)])


@exit_on_user_error
def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="hrl-library", description="The shipped skill library: list, verify, add.")
    sub = p.add_subparsers(dest="cmd")
    sub.add_parser("list", help="one row per entry (default)")
    sub.add_parser("verify", help="check every file against its hash")
    show = sub.add_parser("show", help="one entry's whole record")
    show.add_argument("name")
    a = sub.add_parser("add", help="copy a file into the library and record how it was made")
    a.add_argument("name")
    a.add_argument("file")
    a.add_argument("--kind", choices=("llc", "policy"), default="llc")
    a.add_argument("--command", required=True, help="the command that produced the file")
    a.add_argument("--seed", type=int, required=True)
    a.add_argument("--dataset", help="the dataset it was trained on (its sha256 is recorded)")
    a.add_argument("--description", default="")
    a.add_argument("--metrics", default="{}", help="JSON object of measured metrics")
    a.add_argument("--task", default=None, help="policies: the task it acts in")
    a.add_argument("--trust-code", action="store_true", help="accept an LLC whose policy is TorchScript (code)")
    args = p.parse_args(argv)
    entries = load_manifest()
    if args.cmd in (None, "list"):
        print(table(entries) if entries else "the skill library is empty")
    elif args.cmd == "verify":
        for name in sorted(entries):
            verify(name)
            print(f"ok  {name}")
    elif args.cmd == "show":
        if args.name not in entries:
            raise LibraryError(f"'{args.name}' is not in the skill library; it has {', '.join(sorted(entries))}")
        print(json.dumps(entries[args.name], indent=1))
    else:
        extra = {"task": args.task} if args.task else {}
        try:
            metrics = json.loads(args.metrics)
        except ValueError:
            metrics = None
        if not isinstance(metrics, dict):
            raise LibraryError(f"--metrics must be a JSON object, e.g. '{{\"success\": 0.9}}', got {args.metrics!r}")
        entry = add(args.name, args.file, args.kind, args.command, args.seed, args.dataset, args.description,
                    metrics, trust_code=args.trust_code, **extra)
        print(f"added {args.name}: {entry['file']} ({entry['size']} bytes, sha256 {entry['sha256'][:12]})")


if __name__ == "__main__":
    main(sys.argv[1:])
