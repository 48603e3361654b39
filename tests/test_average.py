"""baselines/unet/average.py: weight averaging of crbench nets (exploratory model soup, issue 18)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.unet.average import average_files, average_models, main  # noqa: E402
from baselines.unet.models import build_model  # noqa: E402
from baselines.unet.weights import file_sha256, load_weights, save_weights  # noqa: E402
from crbench.errors import CRBenchError  # noqa: E402

from _torch_threads import _one_torch_thread  # noqa: E402,F401  (autouse fixture)


def _net(seed: int, arch: str = "attention-unet", **kw):
    torch.manual_seed(seed)
    m = build_model(arch, width=4, levels=2, **kw)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so they are averaged too
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
    return m.eval()


def test_average_is_the_elementwise_mean_and_integer_buffers_come_from_the_last():
    a, b = _net(1), _net(2)
    for mod in b.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.num_batches_tracked.fill_(7)
    avg = average_models([a, b])
    sa, sb = a.state_dict(), b.state_dict()
    for k, v in avg.items():
        if sa[k].is_floating_point():
            np.testing.assert_allclose(v.numpy(), (sa[k].double().numpy() + sb[k].double().numpy()) / 2, rtol=1e-6)
        else:
            assert torch.equal(v, sb[k])


def test_averaging_a_net_with_itself_gives_the_same_scores(tmp_path):
    m = _net(3)
    w = tmp_path / "a.pt"
    save_weights(w, m, "attention-unet", normalization="noise-model")
    side = average_files([w, w], tmp_path / "soup.pt")
    soup, meta = load_weights(tmp_path / "soup.pt")  # sidecar sha256 checked
    assert meta["normalization"]["method"] == "noise-model"
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(soup(x).numpy(), m(x).numpy(), rtol=1e-5, atol=1e-6)
    assert side["averaged_from"] == [{"file": str(w), "sha256": file_sha256(w)}] * 2
    assert json.loads((tmp_path / "soup.json").read_text())["sha256"] == file_sha256(tmp_path / "soup.pt")


def test_mismatched_nets_are_refused_naming_the_file(tmp_path, capsys):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    save_weights(a, _net(1), "attention-unet", normalization="noise-model")
    save_weights(b, _net(1), "attention-unet", normalization="image-stats")
    with pytest.raises(CRBenchError, match="b.pt: .*normalisation"):
        average_files([a, b], tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
    with pytest.raises(CRBenchError, match="at least two"):
        average_models([_net(1)])
    assert main([str(a), str(b), "--out", str(tmp_path / "x.pt")]) == 2
    assert "b.pt" in capsys.readouterr().err
