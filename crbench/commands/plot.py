"""``crbench plot RESULTS... --out DIR``: paper-ready figures from result files."""
from __future__ import annotations

import argparse
import re
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plot", help="paper-ready figures (PDF + PNG) from result files",
        description="ROC (log FPR) and PR curves overlaying detectors with 95% bands, per-morphology recall "
                    "bars, the class-imbalance histograms, a cutout gallery (detectors rerun on a few samples; "
                    "needs the dataset) and the sim-to-real gap plot (for datasets whose card names the real "
                    "dataset they are the 'twin_of', or given with --gap). One set per dataset.")
    p.add_argument("results", nargs="+", metavar="RESULTS", help="results.json files or folders holding one")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--width", choices=["single", "double"], default=None,
                   help="column width of every figure (default: single for curves, double for galleries)")
    p.add_argument("--gap", nargs=2, metavar=("REAL", "SIM"),
                   help="also plot the sim-to-real gap from results on real data and on its simulated twin")
    p.add_argument("--metric", default="tpr_at_fpr_5e-4", help="summary metric of the gap plot")
    p.add_argument("--morph-metric", default="recall_half",
                   help="per-morphology metric of the recall bars (default recall_half)")
    p.add_argument("--no-gallery", action="store_true", help="skip the cutout gallery (it reruns detectors)")
    p.add_argument("--gallery-samples", type=int, default=2, help="samples rerun for the gallery (default 2)")
    p.add_argument("--fpr", type=float, default=5e-4, help="operating point of the gallery masks (pixel FPR)")
    p.set_defaults(func=run)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def _dataset_for(runs):
    """The built dataset of a group of runs (provenance path, else the recipe's default folder)."""
    from crbench.dataset import Dataset
    from crbench.recipes import resolve_dataset

    prov = runs[0]["provenance"]["dataset"]
    path = prov.get("path")
    if path and (Path(path) / "dataset.json").exists():
        ds = Dataset.open(path)
    else:
        ds = resolve_dataset(prov["name"], build_missing=False)
    if ds.content_hash != prov.get("content_hash"):
        raise ValueError(f"dataset {ds.name!r} at {ds.root} has content hash {ds.content_hash[:12]}..., "
                         f"the results used {str(prov.get('content_hash'))[:12]}...")
    return ds


def _detectors_for(runs):
    from crbench.detectors.registry import get_detector
    from crbench.errors import DetectorError

    dets, skipped = [], {}
    for run in runs:
        d = run["provenance"]["detector"]
        spec = d.get("class") or d["name"]
        try:
            try:
                det = get_detector(spec, **(d.get("params") or {}))
            except DetectorError as exc:
                if not isinstance(exc.__cause__, TypeError):
                    raise
                # params() may record more than __init__ takes (e.g. a weights checksum): accept the
                # default construction when it reproduces the recorded parameters exactly
                det = get_detector(spec)
                if d.get("params_hash") and det.params_hash() != d["params_hash"]:
                    raise ValueError("its default parameters differ from those in the results") from None
            det.name = run["detector"]
            dets.append(det)
        except Exception as exc:  # noqa: BLE001 - report and go on: the gallery is optional
            skipped[run["detector"]] = f"{type(exc).__name__}: {exc}"
    return dets, skipped


def gallery_scores(detectors, samples) -> dict:
    """Each detector's score map of each sample (:func:`crbench.harness.run_detector`), by detector name."""
    from crbench.harness import run_detector

    return {d.name: [run_detector(d, s)[0] for s in samples] for d in detectors}


def run(args: argparse.Namespace) -> int:
    from crbench import plots
    from crbench.commands.evaluate import check_out_dir
    from crbench.results import Results

    check_out_dir(args.out, "the figures")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    merged = Results()
    for path in args.results:
        merged.extend(Results.load(path))
    curve_w = args.width or "single"
    wide_w = args.width or "double"
    written: list[Path] = []
    groups = plots.runs_by_dataset(merged)
    twins: dict[str, str] = {}  # simulated dataset -> the real dataset it is the twin of
    for name, res in groups.items():
        sfx = "" if len(groups) == 1 else f"_{_slug(name)}"
        written += plots.plot_roc(res, out / f"roc{sfx}", width=curve_w, fpr_range=None)
        written += plots.plot_pr(res, out / f"pr{sfx}", width=curve_w)
        try:
            written += plots.plot_morphology_recall(res, out / f"morphology_recall{sfx}", metric=args.morph_metric,
                                                    width=curve_w)
        except ValueError as exc:
            print(f"skipping per-morphology recall for {name}: {exc}")
        try:
            ds = _dataset_for(res.runs)
        except Exception as exc:  # noqa: BLE001
            print(f"skipping class-imbalance histograms and gallery for {name}: dataset not available ({exc})")
            continue
        if ds.card.get("twin_of") in groups:
            twins[name] = ds.card["twin_of"]
        written += plots.plot_class_imbalance(ds, out, width=wide_w)
        if args.no_gallery:
            continue
        dets, skipped = _detectors_for(res.runs)
        for det_name, why in skipped.items():
            print(f"gallery: skipping detector {det_name}: {why}")
        if dets:
            split = res.runs[0]["split"]
            samples = plots.gallery_samples(ds, split, args.gallery_samples,
                                            load_companions=any(r != "image" for d in dets for r in d.requires))
            written += plots.plot_cutout_gallery(samples, gallery_scores(dets, samples), out / f"gallery{sfx}",
                                                 dataset_name=ds.name, split=split, results=res, fpr=args.fpr,
                                                 width=wide_w)
    for sim_name, real_name in twins.items():  # pairs found in the dataset cards ('twin_of')
        try:
            written += plots.plot_sim_to_real_gap(groups[real_name], groups[sim_name],
                                                  out / f"sim_to_real_gap_{_slug(real_name)}", metric=args.metric,
                                                  width=curve_w)
        except ValueError as exc:
            print(f"skipping sim-to-real gap {real_name} vs {sim_name}: {exc}")
    if args.gap:
        real, sim = Results.load(args.gap[0]), Results.load(args.gap[1])
        written += plots.plot_sim_to_real_gap(real, sim, out / "sim_to_real_gap", metric=args.metric,
                                              width=curve_w)
    for p in written:
        print(f"wrote {p}")
    return 0
