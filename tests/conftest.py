import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread_torch():
    # Small models run fastest on one thread, and tests must not fight each other for cores.
    torch.set_num_threads(1)
    yield
