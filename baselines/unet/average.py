"""Weight averaging ("model soup") of crbench-trained nets: ``python -m baselines.unet.average``.

The parameters and BatchNorm statistics of two or more weight files of the same architecture,
configuration and input normalisation are averaged element by element (float tensors; integer
buffers such as BatchNorm's ``num_batches_tracked``, which inference does not use, are taken from the
last file). The result is written atomically with a sidecar naming every parent file and its sha256,
so the averaged net is reproduced exactly from the shipped files.

Exploratory (issue 18): the average of ``attention-unet-mixture`` (25 CPU min) and
``attention-unet-mixture-60`` (60 CPU min), both trained from the same seed, is measured on the
noise-regime grid in the README ("Noise regimes"); no averaged net is shipped.

Usage::

    python -m baselines.unet.average baselines/weights/attention-unet-mixture.pt \\
        baselines/weights/attention-unet-mixture-60.pt --out runs/soup.pt
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from crbench.atomic import write_text
from crbench.errors import CRBenchError

from .data import normalization_method
from .models import UNet
from .weights import file_sha256, load_weights, save_weights


def average_models(models: Sequence[UNet]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the float tensors of ``models``' state dicts (integer buffers from the last).

    Raises
    ------
    CRBenchError
        With fewer than two models, or state dicts with different keys or shapes.
    """
    if len(models) < 2:
        raise CRBenchError(f"averaging needs at least two nets, got {len(models)}")
    dicts = [m.state_dict() for m in models]
    keys = list(dicts[0])
    out: dict[str, torch.Tensor] = {}
    for i, d in enumerate(dicts[1:], start=1):
        if list(d) != keys:
            raise CRBenchError(f"net {i}: its parameters differ from net 0's (another architecture or config)")
    for k in keys:
        shapes = {tuple(d[k].shape) for d in dicts}
        if len(shapes) != 1:
            raise CRBenchError(f"parameter {k!r}: shapes {sorted(shapes)} differ between the nets")
        if dicts[0][k].is_floating_point():
            out[k] = torch.stack([d[k].double() for d in dicts]).mean(dim=0).to(dicts[0][k].dtype)
        else:
            out[k] = dicts[-1][k].clone()
    return out


def average_files(paths: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Average the weight files ``paths`` into ``out`` (+ sidecar); return the sidecar.

    Raises
    ------
    CRBenchError
        When the files differ in architecture, configuration or normalisation (naming the file).
    """
    loaded = [load_weights(p) for p in paths]
    arch0, norm0, conf0 = loaded[0][1]["arch"], loaded[0][1]["normalization"], loaded[0][0].config.to_dict()
    for p, (model, meta) in zip(paths, loaded):
        if meta["arch"] != arch0 or meta["normalization"] != norm0 or model.config.to_dict() != conf0:
            raise CRBenchError(f"{p}: arch {meta['arch']!r}, normalisation {meta['normalization']!r}, config "
                               f"{model.config.to_dict()}; expected those of {paths[0]} ({arch0!r}, {norm0!r}, {conf0})")
    model = loaded[0][0]
    model.load_state_dict(average_models([m for m, _ in loaded]))
    model.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    method = normalization_method(norm0)
    sha = save_weights(out, model, arch0, normalization=method)
    sidecar = {
        "name": out.stem, "arch": arch0, "config": conf0, "weights_file": out.name, "sha256": sha,
        "normalization": method,
        "averaged_from": [{"file": str(p), "sha256": file_sha256(p)} for p in paths],
        "command": "python -m baselines.unet.average " + " ".join(str(p) for p in paths) + f" --out {out}",
    }
    write_text(out.with_suffix(".json"), json.dumps(sidecar, indent=2) + "\n")
    return sidecar


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", nargs="+", help="two or more weight files of the same architecture")
    p.add_argument("--out", required=True, help="the averaged weight file (.pt; a .json sidecar beside it)")
    a = p.parse_args(argv)
    try:
        side = average_files(a.weights, a.out)
    except CRBenchError as exc:
        print(f"average: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {a.out} (sha256 {side['sha256']})")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
