"""Space-decoupling tests run with one intra-op thread (as the benchmark): on a shared CPU, small LAPACK and BLAS
calls with 2 threads took milliseconds each (thread wake-ups) instead of microseconds."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
