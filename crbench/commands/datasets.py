"""``crbench datasets list|build|info|verify|download``."""
from __future__ import annotations

import argparse


def _shape(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape must look like 256x256, got {text!r}") from None
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"--shape must be at least 16x16, got {text!r}")
    return (h, w)


def add_parser(sub) -> None:
    p = sub.add_parser("datasets", help="list, build, inspect and download datasets",
                       description="Dataset recipes: list them, build one, show its card, download its sources.")
    dsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    lp = dsub.add_parser("list", help="list dataset recipes")
    lp.set_defaults(func=run_list)

    bp = dsub.add_parser("build", help="build a dataset from its recipe")
    bp.add_argument("name", help="recipe name (see 'crbench datasets list')")
    bp.add_argument("--out", help="output folder (default: $CRBENCH_DATA_DIR/datasets/NAME or the OS cache)")
    bp.add_argument("--n-images", type=int, help="number of images (simulated recipes)")
    bp.add_argument("--shape", type=_shape, help="image shape HxW, e.g. 512x512 (simulated recipes)")
    bp.add_argument("--exposures", type=int, help="aligned exposures per field (simulated recipes)")
    bp.add_argument("--exposure-time", type=float, help="exposure time in seconds (simulated recipes)")
    bp.add_argument("--seed", type=int, help="random seed")
    bp.add_argument("--confusers", choices=["v2", "v3"], default=None,
                    help="ACS recipes: confuser version (default v3, the standard ACS builds: sharp PSF core and "
                         "residual CTE trails; v2 rebuilds the previous standard as a custom build)")
    bp.add_argument("--size", choices=["standard", "small"], default=None,
                    help="simulated recipes: 'standard' (default; the pinned standard sizes the leaderboard uses) or "
                         "'small' (quick builds for tests and demos, never on the leaderboard)")
    bp.add_argument("--source", metavar="PATH",
                    help="converter recipes: the folder or archive you downloaded from the published record")
    bp.add_argument("--trust-pickle", action="store_true",
                    help="converter recipes: allow a pickled source (unpickling can run code; only for files "
                         "you trust)")
    bp.add_argument("--no-progress", action="store_true", help="no progress bar")
    bp.add_argument("--overwrite", action="store_true", help="replace an existing dataset in the output folder")
    bp.set_defaults(func=run_build)

    ip = dsub.add_parser("info", help="images and CRs per split, label quality, caveats, licence, provenance, "
                                      "class-imbalance statistics")
    ip.add_argument("name", help="recipe name or dataset folder")
    ip.add_argument("--plot", metavar="DIR", help="also write the statistics histograms (PDF and PNG) into DIR")
    ip.add_argument("--full", action="store_true", help="list every provenance file, not only the summary")
    ip.set_defaults(func=run_info)

    vp = dsub.add_parser("verify", help="recompute a dataset's content hash and compare it with its card")
    vp.add_argument("name", help="recipe name or dataset folder")
    vp.set_defaults(func=run_verify)

    ep = dsub.add_parser("export", help="write a built dataset as one reproducible archive with its sha256",
                         description="Write NAME as DIR/NAME.tar.gz (identical bytes on every machine for the same "
                                     "content), DIR/NAME.tar.gz.sha256 and DIR/NAME.registry.json, the line to add "
                                     "under 'sets' in crbench/registry/standard.json to publish it.")
    ep.add_argument("name", help="recipe name or dataset folder")
    ep.add_argument("--out", required=True, help="folder to write the archive into")
    ep.set_defaults(func=run_export)

    dp = dsub.add_parser("download", help="download (or copy from $CRBENCH_MIRROR) a standard dataset's archive or "
                                          "a real dataset's source files")
    dp.add_argument("name", help="download name (see 'crbench datasets list')")
    dp.add_argument("--no-progress", action="store_true", help="no progress bar")
    dp.set_defaults(func=run_download)


def run_list(args: argparse.Namespace) -> int:
    from crbench.recipes import available_recipes, default_dataset_path

    for name, r in available_recipes().items():
        built = "built" if (default_dataset_path(name) / "dataset.json").exists() else "     "
        print(f"{name:24s} {r.kind:10s} {built}  {r.description}")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from crbench.errors import UsageError
    from crbench.recipes import build_dataset, get_recipe

    for flag, value in (("--n-images", args.n_images), ("--exposures", args.exposures)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: expected a positive integer")
    if args.exposure_time is not None and not (0 < args.exposure_time < float("inf")):
        raise UsageError(f"--exposure-time {args.exposure_time}: expected a positive number of seconds")
    opts = {"n_images": args.n_images, "shape": args.shape, "exposures": args.exposures,
            "exposure_time": args.exposure_time, "seed": args.seed, "size": args.size}
    if args.confusers is not None:
        opts["confusers"] = args.confusers
    if args.source is not None or args.trust_pickle:
        kind = get_recipe(args.name).kind
        if kind != "converted":
            raise UsageError(f"--source/--trust-pickle: recipe {args.name!r} is {kind}, not a converter of a "
                             "downloaded set; only converter recipes take them (see 'crbench datasets list')")
        opts.update(source=args.source, trusted=True if args.trust_pickle else None)
    ds = build_dataset(args.name, args.out, progress=not args.no_progress, overwrite=args.overwrite, **opts)
    stats = ds.card.get("statistics", {})
    frac = stats.get("cr_pixel_fraction", {}).get("mean")
    print(f"built {ds.name} ({len(ds)} samples) at {ds.root}")
    if frac is not None:
        print(f"CR pixel fraction (mean over images): {frac:.4%}; content hash {ds.content_hash[:16]}")
    if ds.card.get("size"):
        from crbench.standard import check_standard

        print(check_standard(ds).message)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from crbench.recipes import resolve_dataset

    ds = resolve_dataset(args.name, build_missing=False)
    from crbench.dataset_info import describe

    print(describe(ds, full=args.full))
    if args.plot:
        from crbench.plots import plot_class_imbalance

        for p in plot_class_imbalance(ds, args.plot):
            print(f"wrote {p}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from crbench.recipes import resolve_dataset
    from crbench.standard import export_dataset

    ds = resolve_dataset(args.name, build_missing=False)
    entry = export_dataset(ds, args.out)
    arch = entry["archive"]
    print(f"wrote {args.out}/{arch['file']} ({arch['size'] / 1e6:.1f} MB, sha256 {arch['sha256']}), "
          f"{arch['file']}.sha256 and {ds.name}.registry.json")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from crbench.dataset import CARD_NAME, Dataset, verify_dataset
    from crbench.recipes import default_dataset_path

    p = Path(args.name)
    root = p if (p / CARD_NAME).exists() else default_dataset_path(args.name)
    ds = Dataset.open(root if (root / CARD_NAME).exists() else p, check_files=False)
    digest = verify_dataset(ds, refresh=True)
    print(f"{ds.name} at {ds.root}: {len(ds)} samples, content hash {digest[:16]} matches the card")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from crbench.download import download
    from crbench.standard import download_standard, pinned

    if pinned(args.name) is not None:
        ds = download_standard(args.name, progress=not args.no_progress)
        print(f"{args.name}: standard dataset verified at {ds.root} (content hash {ds.content_hash[:16]})")
        return 0

    path = download(args.name, progress=not args.no_progress)
    print(f"{args.name}: files in {path}")
    return 0
