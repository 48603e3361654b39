"""CPU training of the crbench nets, with a reproducible budget.

Budget and determinism
----------------------
A budget in minutes cannot be reproduced by wall time: a busier machine trains fewer steps.
crbench therefore trains a **fixed number of optimiser steps**. When only ``minutes`` is given,
a short calibration (on a throw-away copy of the net and a separate data stream, so it does not
touch the training run) measures the *CPU* seconds per step (``time.process_time``, with torch
on ``threads`` intra-op threads, default 1), and ``steps = minutes * 60 / seconds_per_step``.
The resolved step count is written in the sidecar and in the recorded command
(``python -m baselines.unet.train ... --steps N``), so running the recorded command again gives
the same steps, the same data order (numpy ``default_rng(seed)``), the same initial weights
(``torch.manual_seed(seed)``) and, on the same machine and thread count, the same weights.

Schedule: Adam, learning rate ``lr`` with cosine decay to 0 over the step budget. An *epoch*
is ``epoch_steps`` optimiser steps; after each epoch the net is scored on the validation split
(average precision and TPR at FPR 5e-4 over non-ignored pixels, full images or their top-left
``val_crop`` square) and the best checkpoint (by validation AP) is kept. The training log (loss
and validation numbers per epoch) goes into the sidecar ``NAME.json`` beside ``NAME.pt``.

Mixtures and noise regimes
--------------------------
``dataset`` may be several datasets (``--dataset A --dataset B`` or ``--dataset A,B``): each
training patch draws a dataset with equal probability, then a sample of it (by area), and
validation pools the first ``max_val_images`` val samples of each. ``noise_aug=True``
(``--noise-aug``) moves every patch to a random read noise / gain / sky (:mod:`.noise_aug`) and
``star_aug=P`` (``--star-aug P``) adds undersampled stars at high significance to a fraction P
of the patches as hard negatives (:mod:`.star_aug`), ``cr_star_aug=P`` (``--cr-star-aug P``)
centres such stars on the CR pixels of a fraction P of the patches that have any (CRs on stars,
:func:`.star_aug.draw_stars_on_crs`); ``normalization='noise-model'``
(``--normalisation noise-model``) feeds the net significance
from each image's noise model instead of its median/MAD, ``'noise-vst'`` its variance-stabilised
form (:mod:`.data`); ``truth_at_noise=True`` (``--truth-at-noise``) applies the truth rule again
after the noise regime (:func:`.noise_aug.truth_at_regime`); both are recorded in
the sidecar, the weight file (normalisation) and the recorded command. The defaults
(``image-stats``, no noise augmentation, one dataset) reproduce the earlier trainer exactly.
"""
from __future__ import annotations

import argparse
import copy
import math
import platform
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crbench.atomic import write_json
from crbench.dataset import Dataset
from crbench.errors import CRBenchError, DatasetError
from crbench.metrics import ap as curve_ap
from crbench.metrics import exact_curve, tpr_at_fpr
from crbench.truth import DEFAULT_RULE

from .data import NORMALIZATIONS, PatchSampler, normalize_observation
from .inference import predict_logits
from .losses import LOSSES, compute_loss
from .models import ARCHITECTURES, UNet, build_model, count_parameters
from .noise_aug import EXTRA_SKY_RANGE, GAIN_RANGE, READ_NOISE_RANGE
from .star_aug import CR_STARS_PER_PATCH, FWHM_RANGE, PEAK_SIGMA_RANGE, STARS_PER_PATCH
from .weights import WEIGHTS_DIR, save_weights

#: Detector name <-> architecture.
DETECTOR_FOR_ARCH = {"deepcr-2-32": "deepcr-retrained", "attention-unet": "attention-unet",
                     "unet-nogate": "unet-nogate"}
ARCH_FOR_NAME = {**{v: k for k, v in DETECTOR_FOR_ARCH.items()}, **{k: k for k in DETECTOR_FOR_ARCH}}

#: Default hyper-parameters (override with ``**hp``).
DEFAULT_HP: dict[str, Any] = {
    "batch": 8, "patch": 128, "lr": 3e-3, "weight_decay": 0.0, "epoch_steps": 100,
    "threads": 1, "sky_aug": 3.0, "flux_aug": 2.0, "augment": True, "mwbce_ramp": 0.5,
    "val_crop": 512, "max_val_images": 16, "calibration_steps": 6,
    "normalization": "image-stats", "noise_aug": False, "star_aug": 0.0, "cr_star_aug": 0.0,
    "truth_at_noise": False,
}
DEFAULT_LOSS = "mwbce"
#: Hyper-parameters the recorded command names when they differ from :data:`DEFAULT_HP`.
RECORDED_IF_CHANGED = ("epoch_steps", "val_crop", "max_val_images")


def _to_torch(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in batch.items()}


def load_validation(dataset: Dataset | Sequence[Dataset], split: str, crop: int, max_images: int,
                    normalization: str = "image-stats") -> list[tuple[np.ndarray, ...]]:
    """Normalised validation inputs with truth and valid masks (top-left ``crop`` squares).

    With several datasets, the union of their ``split`` samples, at most ``max_images`` of each.
    ``normalization`` is one of :data:`.data.NORMALIZATIONS` (the noise ones use each sample's meta).
    """
    if not isinstance(dataset, Dataset):
        return [v for d in dataset for v in load_validation(d, split, crop, max_images, normalization)]
    out: list[tuple[np.ndarray, ...]] = []
    for k, sample in enumerate(dataset.iter_samples(split, load_companions=False)):
        if k >= max_images:
            break
        if sample.truth is None:
            raise DatasetError(f"dataset {dataset.name!r} sample {sample.id!r} has no truth; cannot validate")
        x = normalize_observation(normalization, sample.image, sample.meta,
                                  None if sample.dqmask is None else sample.dqmask > 0)
        sl = (slice(0, crop), slice(0, crop)) if crop else (slice(None), slice(None))
        out.append((x[sl], sample.truth[sl], ~sample.ignore_or_false()[sl]))
    return out


def validate(model: UNet, val: list[tuple[np.ndarray, ...]]) -> dict[str, float]:
    """Pooled AP and TPR at FPR 5e-4 of ``model`` on prepared validation images."""
    was_training = model.training
    model.eval()
    scores, truths, valids = [], [], []
    with torch.no_grad():
        for x, t, v in val:
            scores.append(predict_logits(model, x, tile=None).ravel())
            truths.append(t.ravel())
            valids.append(v.ravel())
    model.train(was_training)
    curve = exact_curve(np.concatenate(scores), np.concatenate(truths), np.concatenate(valids))
    return {"val_ap": float(curve_ap(curve)), "val_tpr_at_fpr_5e-4": float(tpr_at_fpr(curve, 5e-4))}


def _step(model, opt, batch, loss_name, progress_frac, ramp) -> float:
    logits = model(batch["x"])
    loss = compute_loss(loss_name, logits, batch, progress_frac, ramp)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def calibrate_seconds_per_step(model: UNet, sampler_kwargs: dict[str, Any], loss: str, hp: dict[str, Any],
                               n: int) -> float:
    """CPU seconds per optimiser step, measured on a copy of ``model`` with its own data stream."""
    m = copy.deepcopy(model).train()
    opt = torch.optim.Adam(m.parameters(), lr=hp["lr"])
    sampler = PatchSampler(**{**sampler_kwargs, "seed": sampler_kwargs["seed"] + 1_000_003})
    _step(m, opt, _to_torch(sampler.next_batch()), loss, 0.0, hp["mwbce_ramp"])  # warm-up
    t0 = time.process_time()
    for _ in range(n):
        _step(m, opt, _to_torch(sampler.next_batch()), loss, 0.0, hp["mwbce_ramp"])
    return max((time.process_time() - t0) / n, 1e-4)


def resolve_datasets(dataset: Dataset | str | Path | Sequence[Dataset | str | Path], *,
                     progress: bool = False) -> list[Dataset]:
    """Datasets from a dataset, a name/folder, a comma list of them, or a sequence of any of these.

    Raises :class:`CRBenchError` on an empty list or a dataset named twice.
    """
    from crbench.recipes import resolve_dataset

    items = [dataset] if isinstance(dataset, (Dataset, str, Path)) else list(dataset)
    flat: list[Dataset | str | Path] = []
    for item in items:
        if isinstance(item, str) and "," in item:
            flat.extend(part.strip() for part in item.split(",") if part.strip())
        else:
            flat.append(item)
    if not flat:
        raise CRBenchError("training needs at least one dataset (--dataset NAME_OR_FOLDER)")
    out = [d if isinstance(d, Dataset) else resolve_dataset(d, progress=progress) for d in flat]
    names = [d.name for d in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CRBenchError(f"dataset(s) {', '.join(map(repr, dupes))} given more than once; "
                           "each dataset of a mixture is sampled with equal probability, name it once")
    return out


def train_model(arch: str, dataset: Dataset | str | Path | Sequence[Dataset | str | Path], *, minutes: float | None, seed: int, out: Path,
                progress: bool = True, loss: str = DEFAULT_LOSS, steps: int | None = None,
                name: str | None = None, command: str | None = None, split: str = "train",
                val_split: str = "val", **hp: Any) -> Path:
    """Train ``arch`` on ``dataset``'s ``split`` and write ``out/NAME.pt`` plus its sidecar.

    Parameters
    ----------
    arch : str
        ``'deepcr-2-32'``, ``'attention-unet'`` or ``'unet-nogate'``.
    dataset : Dataset, path, recipe name, comma list or sequence of these
        Labelled dataset(s) with ``split`` and ``val_split``. Several make a mixture: each patch
        draws a dataset with equal probability; validation pools their val splits (at most
        ``max_val_images`` each).
    minutes : float or None
        CPU-minute budget, converted to a step count by calibration (module docstring); may be
        None when ``steps`` is given.
    seed : int
        Seeds weights init, patch order and augmentation.
    out : Path
        Output folder.
    progress : bool
        Show a tqdm progress bar.
    loss : str
        One of :data:`~baselines.unet.losses.LOSSES`.
    steps : int, optional
        Exact number of optimiser steps (overrides ``minutes``; what the recorded command uses).
    name : str, optional
        File stem; default the detector name of ``arch``.
    command : str, optional
        The command line to record; default the equivalent ``python -m baselines.unet.train``.
    **hp
        Hyper-parameters overriding :data:`DEFAULT_HP` (among them ``normalization``:
        ``'image-stats'``, ``'noise-model'`` or ``'noise-vst'``; ``noise_aug``, ``truth_at_noise``,
        ``star_aug``, ``cr_star_aug``), plus architecture options ``width``, ``levels`` and ``gates``.

    Returns
    -------
    Path
        The weight file (best checkpoint by validation AP).
    """
    if arch not in ARCHITECTURES:
        raise CRBenchError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    if loss not in LOSSES:
        raise CRBenchError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
    datasets = resolve_datasets(dataset, progress=progress)
    arch_opts = {k: hp.pop(k) for k in ("width", "levels", "gates") if k in hp and hp[k] is not None}
    unknown = set(hp) - set(DEFAULT_HP)
    if unknown:
        raise CRBenchError(f"unknown training option(s) {sorted(unknown)}; known: {sorted(DEFAULT_HP)}")
    hp = {**DEFAULT_HP, **hp}
    if hp["normalization"] not in NORMALIZATIONS:
        raise CRBenchError(f"unknown normalisation {hp['normalization']!r}; known: {', '.join(NORMALIZATIONS)}")
    hp["noise_aug"] = bool(hp["noise_aug"])
    hp["star_aug"] = float(hp["star_aug"])
    if not (math.isfinite(hp["star_aug"]) and 0.0 <= hp["star_aug"] <= 1.0):
        raise CRBenchError(f"training option star_aug must be a probability in [0, 1], got {hp['star_aug']!r}")
    hp["cr_star_aug"] = float(hp["cr_star_aug"])
    hp["truth_at_noise"] = bool(hp["truth_at_noise"])
    if hp["truth_at_noise"] and not hp["noise_aug"]:
        raise CRBenchError("training option truth_at_noise (--truth-at-noise) needs the noise-regime augmentation "
                           "(--noise-aug)")
    if not (math.isfinite(hp["cr_star_aug"]) and 0.0 <= hp["cr_star_aug"] <= 1.0):
        raise CRBenchError("training option cr_star_aug must be a probability in [0, 1], "
                           f"got {hp['cr_star_aug']!r}")
    for key, low in (("epoch_steps", 1), ("max_val_images", 1), ("val_crop", 0)):
        if int(hp[key]) < low:
            raise CRBenchError(f"training option {key} must be >= {low}, got {hp[key]!r}")
    name = name or DETECTOR_FOR_ARCH[arch]
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise CRBenchError(f"weights name {name!r}: expected a file stem of letters, digits, '.', '_' or '-'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights_path = out / f"{name}.pt"

    prev_threads = torch.get_num_threads()
    torch.set_num_threads(int(hp["threads"]))
    t_wall0, t_cpu0 = time.time(), time.process_time()
    try:
        torch.manual_seed(seed)
        model = build_model(arch, **arch_opts).train()
        sampler_kwargs = dict(dataset=datasets[0] if len(datasets) == 1 else datasets, split=split,
                              patch=int(hp["patch"]), batch=int(hp["batch"]),
                              seed=int(seed), augment=bool(hp["augment"]), sky_aug=float(hp["sky_aug"]),
                              flux_aug=float(hp["flux_aug"]), normalization=hp["normalization"],
                              noise_aug=hp["noise_aug"], star_aug=hp["star_aug"],
                              cr_star_aug=hp["cr_star_aug"], truth_at_noise=hp["truth_at_noise"])
        sampler = PatchSampler(**sampler_kwargs)
        val_per_dataset = [load_validation(d, val_split, int(hp["val_crop"]), int(hp["max_val_images"]),
                                           hp["normalization"]) for d in datasets]
        val = [v for part in val_per_dataset for v in part]
        sec_per_step = None
        if steps is None:
            if not minutes or minutes <= 0:
                raise CRBenchError(f"training budget: minutes must be > 0 (got {minutes!r}) or give steps")
            sec_per_step = calibrate_seconds_per_step(model, sampler_kwargs, loss, hp, int(hp["calibration_steps"]))
            steps = max(1, int(minutes * 60.0 / sec_per_step))
        steps = int(steps)
        torch.manual_seed(seed + 1)  # dropout-free nets: only fixes any remaining torch RNG use
        opt = torch.optim.Adam(model.parameters(), lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        epoch_steps = max(1, min(int(hp["epoch_steps"]), steps))
        log: list[dict[str, Any]] = []
        best = {"val_ap": -1.0}
        best_state = None
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, desc=f"train {name}", unit="step", dynamic_ncols=True)
        t_train0 = time.process_time()
        running, n_run = 0.0, 0
        for step in range(1, steps + 1):
            batch = _to_torch(sampler.next_batch())
            running += _step(model, opt, batch, loss, (step - 1) / steps, float(hp["mwbce_ramp"]))
            n_run += 1
            sched.step()
            if bar is not None:
                bar.update(1)
            if step % epoch_steps == 0 or step == steps:
                metrics = validate(model, val)
                entry = {"epoch": len(log) + 1, "step": step, "train_loss": running / n_run,
                         "lr": opt.param_groups[0]["lr"], **metrics,
                         "cpu_seconds": time.process_time() - t_train0}
                log.append(entry)
                running, n_run = 0.0, 0
                if metrics["val_ap"] > best["val_ap"]:
                    best = {"epoch": entry["epoch"], "step": step, **metrics}
                    best_state = copy.deepcopy(model.state_dict())
                if bar is not None:
                    bar.set_postfix(loss=f"{entry['train_loss']:.4f}", val_ap=f"{metrics['val_ap']:.4f}")
        if bar is not None:
            bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        sha = save_weights(weights_path, model, arch, normalization=hp["normalization"])
    finally:
        torch.set_num_threads(prev_threads)

    recorded = (f"python -m baselines.unet.train {name if name in ARCH_FOR_NAME else arch}"
                + "".join(f" --dataset {shlex.quote(str(_dataset_arg(d)))}" for d in datasets)
                + (f" --minutes {minutes:g}" if minutes else "") + f" --seed {seed} "
                f"--steps {steps} --loss {loss} --out {shlex.quote(str(out))}"
                + "".join(f" --{k.replace('_', '-')} {v}" for k, v in arch_opts.items())
                + f" --normalisation {hp['normalization']}"
                + (" --noise-aug" if hp["noise_aug"] else "")
                + (" --truth-at-noise" if hp["truth_at_noise"] else "")
                + (f" --star-aug {hp['star_aug']:g}" if hp["star_aug"] > 0 else "")
                + (f" --cr-star-aug {hp['cr_star_aug']:g}" if hp["cr_star_aug"] > 0 else "")
                + "".join(f" --{k.replace('_', '-')} {hp[k]}" for k in RECORDED_IF_CHANGED
                          if hp[k] != DEFAULT_HP[k])
                + (f" --name {name}" if name != DETECTOR_FOR_ARCH[arch] else ""))
    weight = 1.0 / len(datasets)
    listed: list[dict[str, Any]] = [
        {"name": d.name, "content_hash": d.content_hash, "weight": weight, "n_train": len(d.ids(split)),
         "n_val_used": len(v), "recipe": d.card.get("recipe"), "recipe_parameters": d.card.get("parameters")}
        for d, v in zip(datasets, val_per_dataset)]
    if len(datasets) == 1:
        training_data = {"dataset": datasets[0].name, "content_hash": datasets[0].content_hash, "split": split,
                         "val_split": val_split, "n_train": listed[0]["n_train"],
                         "n_val_used": len(val), "recipe": listed[0]["recipe"],
                         "recipe_parameters": listed[0]["recipe_parameters"]}
    else:
        training_data = {"dataset": ",".join(d.name for d in datasets), "content_hash": None, "split": split,
                         "val_split": val_split, "n_train": sum(e["n_train"] for e in listed),
                         "n_val_used": len(val), "sampling": "each patch draws a dataset with equal probability"}
    training_data["datasets"] = listed
    sidecar = {
        "name": name,
        "arch": arch,
        "config": model.config.to_dict(),
        "parameters": count_parameters(model),
        "weights_file": weights_path.name,
        "sha256": sha,
        "command": command or recorded,
        "reproduce_command": recorded,
        "training_data": training_data,
        "normalization": hp["normalization"],
        "augmentation": {"augment": bool(hp["augment"]), "noise_aug": hp["noise_aug"],
                         **({"noise_aug_ranges": {"read_noise_e": list(READ_NOISE_RANGE),
                                                  "gain_e_per_adu": list(GAIN_RANGE),
                                                  "extra_sky_e": list(EXTRA_SKY_RANGE)}}
                            if hp["noise_aug"] else {}),
                         **({"truth_at_noise": {"rule": DEFAULT_RULE.to_dict(),
                                                "charge_estimate": "patch minus its 5x5 median, before the regime"}}
                            if hp["truth_at_noise"] else {}),
                         "sky_aug": float(hp["sky_aug"]), "flux_aug": float(hp["flux_aug"]),
                         **({"star_aug": {"probability": hp["star_aug"], "stars_per_patch": STARS_PER_PATCH,
                                          "fwhm_px": list(FWHM_RANGE), "peak_sigma": list(PEAK_SIGMA_RANGE)}}
                            if hp["star_aug"] > 0 else {}),
                         **({"cr_star_aug": {"probability": hp["cr_star_aug"], "stars_per_patch": CR_STARS_PER_PATCH,
                                             "fwhm_px": list(FWHM_RANGE), "peak_sigma": list(PEAK_SIGMA_RANGE),
                                             "centred_on": "a truth pixel, +-1 px"}}
                            if hp["cr_star_aug"] > 0 else {})},
        "seed": int(seed),
        "minutes": float(minutes) if minutes else None,
        "steps": steps,
        "calibrated_cpu_seconds_per_step": sec_per_step,
        "loss": loss,
        "hyperparameters": hp,
        "cpu_minutes": (time.process_time() - t_cpu0) / 60.0,
        "wall_minutes": (time.time() - t_wall0) / 60.0,
        "best": best,
        "log": log,
        "environment": {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
                        "machine": platform.machine(), "threads": int(hp["threads"])},
    }
    write_json(weights_path.with_suffix(".json"), sidecar)
    return weights_path


def _dataset_arg(dataset: Dataset) -> str:
    """How to name ``dataset`` on a command line: its recipe name when it sits in the data dir."""
    try:
        from crbench.recipes import default_dataset_path

        if Path(dataset.root).resolve() == default_dataset_path(dataset.name).resolve():
            return dataset.name
    except Exception:  # noqa: BLE001 - fall back to the path
        pass
    return str(dataset.root)


def cli_train(name: str, dataset_name_or_path: str | Path | Sequence[str | Path], minutes: float | None, seed: int = 0,
              out: str | Path | None = None, *, steps: int | None = None, loss: str | None = None,
              progress: bool = True, weights_name: str | None = None, **hp: Any) -> Path:
    """Everything ``crbench train NAME --dataset D --minutes N [--seed S] [--out DIR]`` needs.

    ``NAME`` is a detector name (``attention-unet``, ``unet-nogate``, ``deepcr-retrained``) or an
    architecture (``deepcr-2-32``). The dataset is a folder or a recipe name (built into the
    data dir if absent), or several (a list, or a comma list) for a mixture. ``out`` defaults to
    ``./weights``; ``weights_name`` is the file stem (default the detector name, e.g. ``attention-unet``;
    the mixture nets use ``attention-unet-mixture`` etc.). ``hp`` may hold ``normalization``,
    ``noise_aug``, ``epoch_steps``, ``val_crop`` and ``max_val_images``. Returns the weight file.
    """
    from crbench.errors import RegistryError

    if name not in ARCH_FOR_NAME:
        raise RegistryError(f"cannot train {name!r}; trainable: {', '.join(sorted(ARCH_FOR_NAME))}")
    arch = ARCH_FOR_NAME[name]
    dataset = resolve_datasets(dataset_name_or_path, progress=progress)
    out_dir = Path(out) if out is not None else Path("weights")
    argv = " ".join(shlex.quote(a) for a in sys.argv) if sys.argv and sys.argv[0] else None
    path = train_model(arch, dataset, minutes=minutes, seed=seed, out=out_dir, progress=progress,
                       loss=loss or DEFAULT_LOSS, steps=steps, name=weights_name or DETECTOR_FOR_ARCH[arch],
                       command=argv if argv and "crbench" in Path(sys.argv[0]).name else None, **hp)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m baselines.unet.train NAME --dataset D --minutes N [--seed S] [--steps K] ...``."""
    p = argparse.ArgumentParser(prog="python -m baselines.unet.train", description=__doc__.splitlines()[0])
    p.add_argument("name", choices=sorted(ARCH_FOR_NAME))
    p.add_argument("--dataset", required=True, action="append",
                   help="dataset folder or recipe name; repeat it (or give a comma list) to train on a mixture, "
                        "each dataset drawn with equal probability per patch")
    p.add_argument("--minutes", type=float, default=None,
                   help="CPU-minute budget, converted to steps (default 5 unless --steps is given)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="exact step count (overrides --minutes)")
    p.add_argument("--loss", choices=LOSSES, default=DEFAULT_LOSS)
    p.add_argument("--out", default=str(WEIGHTS_DIR))
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--levels", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--normalisation", "--normalization", dest="normalization", choices=NORMALIZATIONS,
                   default="image-stats",
                   help="net input: image-stats (median/MAD of each image, the shipped nets), noise-model "
                        "(significance from the meta gain, read noise and sky) or noise-vst (its variance-stabilised "
                        "form, experimental)")
    p.add_argument("--noise-aug", action="store_true",
                   help="move each patch to a random read noise (2-100 e-), gain (0.5-20 e-/ADU) and extra sky "
                        "(1-1e4 e-)")
    p.add_argument("--star-aug", type=float, default=0.0, metavar="P",
                   help="probability per patch of adding undersampled stars (FWHM 1-3 px) at 5-300 sigma as hard "
                        "negatives (default 0: off)")
    p.add_argument("--truth-at-noise", action="store_true",
                   help="with --noise-aug: apply the common truth rule again at each patch's new noise (CR pixels the "
                        "added noise drowns become halo or negatives instead of staying positive)")
    p.add_argument("--cr-star-aug", type=float, default=0.0, metavar="P",
                   help="probability per patch with CR pixels of adding undersampled stars (FWHM 1-3 px, 5-300 sigma) "
                        "centred on them, so CRs on stars are seen (default 0: off)")
    p.add_argument("--epoch-steps", type=int, default=None,
                   help=f"optimiser steps between validations (default {DEFAULT_HP['epoch_steps']})")
    p.add_argument("--val-crop", type=int, default=None,
                   help=f"validate on the top-left square of this side (default {DEFAULT_HP['val_crop']}; 0: whole images)")
    p.add_argument("--max-val-images", type=int, default=None,
                   help=f"validation images per dataset (default {DEFAULT_HP['max_val_images']})")
    p.add_argument("--name", dest="weights_name", default=None,
                   help="weight file stem (default the detector name, e.g. attention-unet); the mixture-trained "
                        "nets ship as attention-unet-mixture, unet-nogate-mixture, deepcr-retrained-mixture")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    hp = {k: v for k, v in (("width", a.width), ("levels", a.levels), ("threads", a.threads),
                            ("epoch_steps", a.epoch_steps), ("val_crop", a.val_crop),
                            ("max_val_images", a.max_val_images)) if v is not None}
    hp.update(normalization=a.normalization, noise_aug=a.noise_aug, star_aug=a.star_aug, cr_star_aug=a.cr_star_aug,
              truth_at_noise=a.truth_at_noise)
    try:
        minutes = a.minutes if a.minutes is not None else (None if a.steps else 5.0)
        path = cli_train(a.name, a.dataset, minutes, a.seed, a.out, steps=a.steps, loss=a.loss,
                         progress=not a.no_progress, weights_name=a.weights_name, **hp)
    except CRBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"weights: {path}\nsidecar: {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
