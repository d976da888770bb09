"""The process-wide CPU settings every command applies before it trains or plans."""

import pytest
import torch

from forethought.errors import ConfigError
from forethought.runtime import configure_cpu


@pytest.fixture
def restore_cpu_settings():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


def test_subnormal_results_are_flushed_to_zero(restore_cpu_settings):
    small = torch.tensor([1e-30], dtype=torch.float32)
    torch.set_flush_denormal(False)
    assert (small * 1e-10).item() != 0.0  # 1e-40 is subnormal in float32, so it survives
    configure_cpu(1)
    assert (small * 1e-10).item() == 0.0
    assert torch.get_num_threads() == 1


def test_a_negative_thread_count_is_refused(restore_cpu_settings):
    with pytest.raises(ConfigError, match="threads"):
        configure_cpu(-1)
