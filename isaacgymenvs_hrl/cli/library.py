"""``hrl-library``: the shipped skill library: list, verify, show, add.

    hrl-library                        # one row per entry
    hrl-library verify                 # every file against its sha256
    hrl-library add franka/stack_bc llcs/stack.llc.pt --command "hrl-skills ..." --seed 0 --dataset d.hdf5
"""
from __future__ import annotations

import argparse
import json

from ..errors import exit_on_user_error
from ..hrl.library import LibraryError, load_manifest, table, verify
from ..hrl.library_add import add
from ..learning.runs import run_config_path


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
        run_config = run_config_path(args.file) if args.kind == "policy" else None
        entry = add(args.name, args.file, args.kind, args.command, args.seed, args.dataset, args.description,
                    metrics, trust_code=args.trust_code, run_config=run_config, **extra)
        print(f"added {args.name}: {entry['file']} ({entry['size']} bytes, sha256 {entry['sha256'][:12]})")


if __name__ == "__main__":
    main()
