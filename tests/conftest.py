"""Shared set-up: every test gets its own SEQEMB_HOME so nothing touches ~/.seqemb."""

from __future__ import annotations

import pytest
import torch

# The suite's models are small: one intra-op thread is as fast and does not stall when the
# CI machine's two cores are shared with numba's worker threads.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def seqemb_home(tmp_path, monkeypatch):
    """Point SEQEMB_HOME at a fresh temp dir and clear SEQEMB_DB_URL for each test."""
    home = tmp_path / "seqemb-home"
    monkeypatch.setenv("SEQEMB_HOME", str(home))
    monkeypatch.delenv("SEQEMB_DB_URL", raising=False)
    return home
