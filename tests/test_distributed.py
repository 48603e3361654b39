"""Distributed runs: a dask LocalCluster and a local process pool give the same sums as a serial run."""
from __future__ import annotations

import numpy as np
import pytest

from crbench.harness import evaluate

pytest.importorskip("distributed")


def _same(a, b):
    ra, rb = a.runs[0], b.runs[0]
    assert ra["curve"]["n_pos"] == rb["curve"]["n_pos"] and ra["curve"]["n_neg"] == rb["curve"]["n_neg"]
    assert ra["curve"]["tpr"] == rb["curve"]["tpr"] and ra["curve"]["fpr"] == rb["curve"]["fpr"]
    for k, v in ra["summary"].items():
        if k == "seconds_per_mpix" or k.startswith("seconds_per_mpix"):
            continue
        w = rb["summary"][k]
        if isinstance(v, float) and np.isnan(v):
            assert np.isnan(w), k
        else:
            assert v == w, k
    assert ra["by_morphology"] == rb["by_morphology"]
    assert ra["operating_points"]["fpr"]["metrics"].keys() == rb["operating_points"]["fpr"]["metrics"].keys()


def test_dask_local_cluster_sums_equal_serial(basic_dataset):
    from distributed import Client, LocalCluster

    kw = dict(split="test", progress=False, bootstrap=20, seed=3)
    serial = evaluate("median", basic_dataset, **kw)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        dist = evaluate("median", basic_dataset, client=client, **kw)
    _same(serial, dist)
    assert dist.runs[0]["provenance"]["execution"]["dask"] is True


def test_process_pool_sums_equal_serial(basic_dataset):
    kw = dict(split="all", progress=False, operating_split=None)
    serial = evaluate("median", basic_dataset, **kw)
    pooled = evaluate("median", basic_dataset, workers=2, **kw)
    _same(serial, pooled)
    assert pooled.runs[0]["provenance"]["execution"]["workers"] == 2


def test_scheduler_address(basic_dataset):
    """``scheduler=ADDRESS`` connects to a running scheduler (here an in-process one)."""
    from distributed import LocalCluster

    kw = dict(split="all", progress=False, operating_split=None, per_cr=False, sources=False)
    serial = evaluate("median", basic_dataset, **kw)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        dist = evaluate("median", basic_dataset, scheduler=cluster.scheduler_address, **kw)
    assert dist.runs[0]["provenance"]["execution"]["scheduler"] == cluster.scheduler_address
    assert dist.runs[0]["curve"]["tpr"] == serial.runs[0]["curve"]["tpr"]
