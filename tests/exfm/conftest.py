"""ExFM tests run single-threaded: the networks are tiny, and thread contention on a shared CPU costs more than it gains."""

import pytest


@pytest.fixture(autouse=True)
def single_thread_torch():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
