"""``hrl-plot``: the learning curve of hrl-train runs, read from their TensorBoard event files.

Prints, per window of epochs, the mean of every ``Episode/*`` scalar (reward terms, success rates)
and the wall-clock minutes from the first record to the window's last one, so a run that was
resumed from another's checkpoint reads as one curve. ``--png`` also draws the chosen tags.

    hrl-plot                                          # the newest run under runs/
    hrl-plot runs/fs_demo_* --window 50 --tags success rew_place rew_release
    hrl-plot runs/fs_demo_* --png docs/img/frankastack_ppo.png
"""
from __future__ import annotations

import argparse

from ..errors import UserError, exit_on_user_error
from ..tools.plot import curve_table, newest_run, plot_png, read_scalars


@exit_on_user_error
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="hrl-plot", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("runs", nargs="*", help="hrl-train run folders (runs/<name>_<date>), in order; default: "
                                            "the newest under ./runs")
    ap.add_argument("--window", type=int, default=50, help="epochs per row")
    ap.add_argument("--tags", nargs="*", default=None, help="Episode/<tag> names to show (default: all Episode/* tags)")
    ap.add_argument("--png", default=None, help="also plot the tags to this file")
    args = ap.parse_args(argv)
    if args.window < 1:
        raise UserError(f"--window must be a positive integer, got {args.window}")
    runs = args.runs or [newest_run()]
    scalars = read_scalars(runs)
    tags = [f"Episode/{t}" for t in args.tags] if args.tags else \
        sorted(t for t in scalars if t.startswith("Episode/") and not t.endswith(("/time", "/frame")))
    missing = [t for t in tags if t not in scalars]
    if missing or not tags:
        have = sorted(t.split("/", 1)[1] for t in scalars if t.startswith("Episode/"))
        raise UserError(f"no scalars {missing or 'Episode/*'} in {', '.join(map(str, runs))}; --tags can be "
                        f"{', '.join(have) or '(none: the run logged no finished episode yet)'}")
    print(curve_table(scalars, tags, args.window))
    if args.png:
        plot_png(scalars, tags, args.window, args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
