"""Shared fixture: one torch intra-op thread for the small-net tests (imported by those modules)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread: small nets on a shared machine run far faster without thread barriers."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
