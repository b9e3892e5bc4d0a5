"""Where a file came from: code version and a time stamp, stored inside the files the project writes."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def code_version() -> str:
    """git commit of the installed checkout (``+dirty`` with uncommitted changes to anything but the
    skill library, which a library build writes into), or 'unknown'."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)isaacgymenvs_hrl/pretrained"], cwd=_REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (commit + ("+dirty" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(**fields) -> dict:
    return {"commit": code_version(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv), **fields}
