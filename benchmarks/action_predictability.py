"""How much of a dataset's actions each observation subset predicts on its own: the room a skill
latent has to carry information. If the low level's own inputs already predict the actions, the
ELBO has no reason to use z (posterior collapse is then the optimum, not a bug).

    python benchmarks/action_predictability.py datasets/stack.hdf5 --epochs 60

Fits one MLP (256-256, ELU) per input set by mean-squared error and prints the validation MSE next
to the action variance. ``prev action`` is the copycat reference: the action of the step before.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from isaacgymenvs_hrl.datasets import load_dataset
from isaacgymenvs_hrl.datasets.hdf5 import episode_ids


def fit(x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-3)
    perm = torch.randperm(len(x), generator=g)
    val, train = perm[: len(x) // 20], perm[len(x) // 20:]
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ELU(), torch.nn.Linear(256, 256),
                              torch.nn.ELU(), torch.nn.Linear(256, y.shape[1]))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(epochs):
        order = train[torch.randperm(len(train), generator=g)]
        for i in range(0, len(order), 1024):
            b = order[i:i + 1024]
            loss = ((net(x[b]).clamp(-1, 1) - y[b]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return float(((net(x[val]).clamp(-1, 1) - y[val]) ** 2).mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--velocity-columns", default="7:14",
                   help="columns of the proprio slice that are joint velocities (Franka: 7:14)")
    args = p.parse_args(argv)
    data, meta = load_dataset(args.dataset)
    obs, act = data["obs"], data["actions"].astype(np.float32)
    ep = episode_ids(data)
    prev = np.vstack([np.zeros_like(act[:1]), act[:-1]])
    prev[np.r_[True, ep[1:] != ep[:-1]]] = 0.0
    lo, hi = (int(v) for v in args.velocity_columns.split(":"))
    prop = obs["proprio"]
    no_vel = np.delete(prop, range(lo, hi), axis=1)
    sets = {"arm joint positions only": prop[:, :lo],
            "proprio without joint velocities": no_vel,
            "proprio (the low level's input)": prop}
    if "objects" in obs:
        sets["proprio without joint velocities + objects"] = np.hstack([no_vel, obs["objects"]])
        sets["proprio + objects"] = np.hstack([prop, obs["objects"]])
        sets["proprio + objects + prev action"] = np.hstack([prop, obs["objects"], prev])
    print(f"{args.dataset}: {len(act)} steps, layout {meta['obs_layout']}")
    print(f"| inputs | val MSE | share of action variance |\n|---|---|---|")
    var = float(act.var(0).mean())
    print(f"| none (action variance) | {var:.4f} | 1.00 |")
    print(f"| the previous action, as the prediction | {float(((act - prev) ** 2).mean()):.4f} | "
          f"{float(((act - prev) ** 2).mean()) / var:.2f} |")
    for name, x in sets.items():
        mse = fit(x, act, args.epochs)
        print(f"| {name} | {mse:.4f} | {mse / var:.2f} |", flush=True)


if __name__ == "__main__":
    main()
