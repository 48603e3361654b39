"""``crbench train``: train a learned baseline on a crbench dataset split (CPU).

Trainers are plugins: each entry point of the ``crbench.trainers`` group is one trainable name,
its value a function ``train(name, dataset, minutes, seed, out, *, steps, loss, progress,
**hyperparameters) -> Path`` (the built-in ones live in ``baselines.unet.train``, declared in
pyproject.toml). crbench itself never imports a baseline. ``dataset`` is one name or folder, or
a list of them when ``--dataset`` is repeated or given a comma list (a training mixture);
``--normalisation``, ``--noise-aug``, ``--truth-at-noise``, ``--star-aug`` and ``--cr-star-aug`` reach the
trainer as the hyper-parameters ``normalization``, ``noise_aug``, ``truth_at_noise``, ``star_aug`` and
``cr_star_aug`` only when given, as do ``--epoch-steps``, ``--val-crop``,
``--max-val-images`` (``epoch_steps``, ``val_crop``, ``max_val_images``) and ``--name``
(``weights_name``, the weight file stem).
"""
from __future__ import annotations

import argparse
from importlib.metadata import EntryPoint, entry_points

GROUP = "crbench.trainers"


def trainers() -> dict[str, EntryPoint]:
    """The trainable names and their (not yet loaded) entry points, by name."""
    return {ep.name: ep for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name)}


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a learned baseline (needs the 'deep' extra: torch)",
                       description="Train a learned detector on the train split of a dataset, validating each "
                                   "epoch on its val split; keeps the best checkpoint and writes a training log "
                                   "(loss and validation AP per epoch) beside the weights.")
    p.add_argument("name", choices=sorted(trainers()) or None,
                   help="detector or architecture to train (entry points of the 'crbench.trainers' group)")
    p.add_argument("--dataset", required=True, action="append",
                   help="recipe name or dataset folder; repeat it or give a comma list to train on a mixture "
                        "(each dataset drawn with equal probability per patch, validation on the union of the "
                        "val splits)")
    p.add_argument("--minutes", type=float, default=None,
                   help="CPU time budget in minutes, converted to optimiser steps (needed unless --steps is given)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="output folder for weights and log (default ./weights)")
    p.add_argument("--steps", type=int, default=None,
                   help="exact number of optimiser steps, overriding the calibrated --minutes budget "
                        "(the sidecar's recorded command uses it, so a rerun repeats the same steps)")
    p.add_argument("--loss", default=None, help="training loss (default and choices: the trainer's)")
    p.add_argument("--width", type=int, default=None, help="channels of the first level (default per architecture)")
    p.add_argument("--levels", type=int, default=None, help="resolution levels (default per architecture)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default 1)")
    p.add_argument("--normalisation", "--normalization", dest="normalization", default=None,
                   choices=("image-stats", "noise-model", "noise-vst"),
                   help="net input normalisation: image-stats (each image's median/MAD; default, the shipped "
                        "nets), noise-model (significance from the meta gain, read noise and sky) or noise-vst (its "
                        "variance-stabilised form, experimental)")
    p.add_argument("--noise-aug", action="store_true",
                   help="noise-regime augmentation: each patch gets a random read noise (2-100 e-), gain "
                        "(0.5-20 e-/ADU) and extra sky (1-1e4 e-)")
    p.add_argument("--star-aug", type=float, default=None, metavar="P",
                   help="star augmentation: probability per patch of adding undersampled stars (FWHM 1-3 px, "
                        "5-300 sigma) as hard negatives (default off)")
    p.add_argument("--truth-at-noise", action="store_true",
                   help="with --noise-aug: apply the common truth rule again at each patch's new noise")
    p.add_argument("--cr-star-aug", type=float, default=None, metavar="P",
                   help="stars under CRs: probability per patch with CR pixels of adding undersampled stars "
                        "(FWHM 1-3 px, 5-300 sigma) centred on them (default off)")
    p.add_argument("--epoch-steps", type=int, default=None, help="optimiser steps between validations (trainer default 100)")
    p.add_argument("--val-crop", type=int, default=None,
                   help="validate on each val image's top-left square of this side (trainer default 512; 0: whole)")
    p.add_argument("--max-val-images", type=int, default=None, help="val images per dataset (trainer default 16)")
    p.add_argument("--name", dest="weights_name", default=None,
                   help="weight file stem (default the detector name; the shipped mixture nets use e.g. "
                        "attention-unet-mixture)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def check_budget(args: argparse.Namespace) -> None:
    """Raise :class:`~crbench.errors.UsageError` unless ``--minutes`` or ``--steps`` sets a positive training budget."""
    from crbench.errors import UsageError

    if args.minutes is None and args.steps is None:
        raise UsageError("crbench train needs a budget: --minutes N (CPU minutes) or --steps K (optimiser steps)")
    if args.minutes is not None and args.minutes <= 0:
        raise UsageError(f"--minutes must be positive, got {args.minutes}")
    if args.steps is not None and args.steps <= 0:
        raise UsageError(f"--steps must be positive, got {args.steps}")


def run(args: argparse.Namespace) -> int:
    from crbench.errors import DependencyError, RegistryError, UsageError

    found = trainers()
    if args.name not in found:
        raise RegistryError(f"no trainer named {args.name!r} in entry-point group {GROUP!r}; "
                            f"known: {', '.join(found) or 'none (reinstall crbench: pip install -e .)'}")
    try:
        train = found[args.name].load()
    except ImportError as exc:
        raise DependencyError(f"crbench train needs torch: install it pinned first (pip install torch==2.13.0), "
                              f'then pip install -e ".[deep]" from the crbench source folder ({exc})') from exc
    check_budget(args)
    for flag, value in (("--width", args.width), ("--levels", args.levels)):
        if value is not None and value < 2:
            raise UsageError(f"{flag} must be >= 2, got {value}")
    for flag, value in (("--epoch-steps", args.epoch_steps), ("--max-val-images", args.max_val_images)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}")
    if args.val_crop is not None and args.val_crop < 0:
        raise UsageError(f"--val-crop must be >= 0 (0: whole images), got {args.val_crop}")
    hp = {k: getattr(args, k) for k in ("width", "levels", "threads", "epoch_steps", "val_crop", "max_val_images")
          if getattr(args, k) is not None}
    if args.normalization is not None:
        hp["normalization"] = args.normalization
    if args.noise_aug:
        hp["noise_aug"] = True
    if args.truth_at_noise:
        hp["truth_at_noise"] = True
    if args.star_aug is not None:
        if not 0.0 <= args.star_aug <= 1.0:
            raise UsageError(f"--star-aug must be a probability in [0, 1], got {args.star_aug}")
        hp["star_aug"] = args.star_aug
    if args.cr_star_aug is not None:
        if not 0.0 <= args.cr_star_aug <= 1.0:
            raise UsageError(f"--cr-star-aug must be a probability in [0, 1], got {args.cr_star_aug}")
        hp["cr_star_aug"] = args.cr_star_aug
    names = [part.strip() for item in args.dataset for part in str(item).split(",") if part.strip()]
    if not names:
        raise UsageError("--dataset needs a recipe name or dataset folder")
    dataset = names[0] if len(names) == 1 else names
    if args.weights_name is not None:
        hp["weights_name"] = args.weights_name
    path = train(args.name, dataset, args.minutes, args.seed, args.out, steps=args.steps,
                 loss=args.loss, progress=not args.no_progress, **hp)
    print(f"wrote {path}")
    return 0
