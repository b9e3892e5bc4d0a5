"""``hrl-skills-prior``: a continuous LLC + its dataset -> a new LLC file that carries a fitted latent
prior p(z | x), which a prior-anchored continuous high level starts at (skills/latent_prior.py).

    hrl-skills-prior franka/stack_ldse --dataset datasets/stack.hdf5 --output llcs/stack_ldse.llc.pt
    hrl-skills-prior llcs/npmp.llc.pt --dataset d.hdf5 --output llcs/npmp_prior.llc.pt --obs proprio,objects

The input LLC is never written; its segment encoder (``<name>.encoder.pt``, LDSE) is read where it
lies beside it and copied beside the output.
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

import torch

from ..errors import UserError, exit_on_user_error


def main(argv=None) -> None:
    exit_on_user_error(fit)(argv)


def fit(argv=None) -> dict:
    """hrl-skills-prior's work (a bad input raises UserError); returns the fit record written into the new LLC."""
    ap = argparse.ArgumentParser(prog="hrl-skills-prior", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("llc", help="LLC checkpoint file or skill library name (continuous mode, no skill prior)")
    ap.add_argument("--dataset", required=True, help="the dataset the LLC was trained on (hrl-collect)")
    ap.add_argument("--output", required=True, help="the new LLC file (never the input)")
    ap.add_argument("--encoder", default=None, help="the LLC's segment encoder (default: <name>.encoder.pt beside it)")
    ap.add_argument("--source", default="auto", help="auto | encoder | policy (skills/latent_prior.py)")
    ap.add_argument("--obs", default="", help="comma-separated observation slices the prior reads (default: all)")
    ap.add_argument("--stride", type=int, default=0, help="steps between segment starts (0: the segment length)")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--hidden", default="256,256", help="hidden sizes of the prior's MLP")
    ap.add_argument("--invert-iters", type=int, default=150, help="source policy: Adam steps per segment latent")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--trust-code", action="store_true", help="accept an LLC whose policy is TorchScript (code)")
    args = ap.parse_args(argv)

    from ..datasets import load_dataset
    from ..hrl.library import resolve, sha256
    from ..hrl.llc_checkpoint import load_llc, with_latent_prior
    from ..hrl.segment_encoder import encoder_path
    from ..skills.latent_prior import LatentPriorConfig, fit_latent_prior
    from ..utils.atomic import check_not_input, check_writable, commit, tmp_path
    from ..utils.provenance import code_version

    try:
        hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
    except ValueError:
        hidden = []
    if not hidden or min(hidden) < 1:
        raise UserError(f"--hidden must be comma-separated positive sizes, e.g. 256,256, got {args.hidden!r}")
    if args.torch_threads < 1:
        raise UserError(f"--torch-threads must be >= 1, got {args.torch_threads}")
    torch.set_num_threads(args.torch_threads)
    source = resolve(args.llc, kind="llc")
    if not Path(source).is_file():
        raise UserError(f"LLC checkpoint not found: {args.llc}")
    if not Path(args.dataset).is_file():
        raise UserError(f"--dataset {args.dataset} is not a file (the provenance of the LLC names the command "
                        "that collects it)")
    encoder = Path(args.encoder) if args.encoder else encoder_path(source)
    if args.encoder and not encoder.is_file():
        raise UserError(f"--encoder {args.encoder} is not a file")
    encoder = encoder if encoder.is_file() else None
    output = check_writable(args.output, "--output", "llc.pt")
    if not output.name.endswith(".llc.pt"):
        raise UserError(f"--output {args.output}: name it <name>.llc.pt (its encoder goes beside it as <name>.encoder.pt)")
    inputs = {"llc": source, "dataset": args.dataset, "encoder": encoder}
    check_not_input(output, inputs, "--output")
    if encoder is not None:
        check_not_input(encoder_path(output), inputs, "--output's encoder")

    llc = load_llc(source, trust_code=args.trust_code)
    data, meta = load_dataset(args.dataset)
    cfg = LatentPriorConfig(obs=[s for s in args.obs.split(",") if s], source=args.source, stride=args.stride,
                            hidden=hidden, epochs=args.epochs, invert_iters=args.invert_iters, seed=args.seed)
    prior, obs, record = fit_latent_prior(llc, data, meta, cfg, encoder)
    record.update({"dataset": str(args.dataset), "dataset_sha256": sha256(args.dataset),
                   "encoder_sha256": sha256(encoder) if encoder else None, "commit": code_version(),
                   "command": shlex.join(["hrl-skills-prior", *(sys.argv[1:] if argv is None else argv)])})
    output.parent.mkdir(parents=True, exist_ok=True)
    if encoder is not None:                     # skill matching keeps working on the new file
        tmp = tmp_path(encoder_path(output))
        shutil.copyfile(encoder, tmp)
        commit(tmp, encoder_path(output))
    with_latent_prior(source, output, prior, obs, record, trust_code=args.trust_code)
    print(f"wrote {output}: latent prior on {','.join(n for n, _ in obs)} fitted to {record['segments']} "
          f"segment latents ({record['source']}); held-out NLL {record['val_nll']:.3f} nats "
          f"(N(0, I): {record['val_nll_standard_normal']:.3f}, state-free: {record['val_nll_state_free']:.3f})")
    return record


if __name__ == "__main__":
    main()
