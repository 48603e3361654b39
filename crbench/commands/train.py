"""``crbench train``: train a learned baseline on a crbench dataset split (CPU)."""
from __future__ import annotations

import argparse

ARCHS = ("attention-unet", "unet-nogate", "deepcr-2-32")


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a learned baseline (needs the 'deep' extra: torch)",
                       description="Train a learned detector on the train split of a dataset, validating each "
                                   "epoch on its val split; keeps the best checkpoint and writes a training log "
                                   "(loss and validation AP per epoch) beside the weights.")
    p.add_argument("name", choices=ARCHS, help="architecture to train")
    p.add_argument("--dataset", required=True, help="recipe name or dataset folder")
    p.add_argument("--minutes", type=float, required=True, help="CPU time budget in minutes")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="output folder for weights and log (default ./weights)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from baselines.unet.train import cli_train
    except ImportError as exc:
        raise ImportError(f"crbench train needs torch: install it pinned first (pip install torch==2.13.0), "
                          f"then pip install -e '.[deep]' ({exc})") from exc
    if args.minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {args.minutes}")
    path = cli_train(args.name, args.dataset, args.minutes, args.seed, args.out)
    print(f"wrote {path}")
    return 0
