"""Shared random bilevel problems for the bilevel RL tests (float64, seeded)."""

from __future__ import annotations

import pytest
import torch

from zoo.bilevel_rl.problems import random_problem


@pytest.fixture
def problem():
    return random_problem()


@pytest.fixture(autouse=True)
def single_thread():
    """Tabular problems are tiny: intra-op threads only add contention on a shared CPU (10x slower measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
