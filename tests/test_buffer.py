import numpy as np
import pytest

from forethought.data import ReplayBuffer, TransitionLog
from forethought.errors import DataError
from forethought.types import TransitionBatch


def batch(n, start=0, obs_dim=3, action_dim=2):
    i = np.arange(start, start + n, dtype=np.float32)
    return TransitionBatch(
        obs=np.repeat(i[:, None], obs_dim, 1),
        action=np.repeat(-i[:, None], action_dim, 1),
        reward=i * 10,
        next_obs=np.repeat(i[:, None] + 1, obs_dim, 1),
        terminated=(i % 7 == 0),
        truncated=np.zeros(n, bool),
    )


def test_ring_keeps_newest_in_order():
    buffer = ReplayBuffer(3, 2, capacity=5)
    buffer.add_batch(batch(4))
    buffer.add_batch(batch(3, start=4))
    data = buffer.all()
    assert len(buffer) == 5 and buffer.total_added == 7
    np.testing.assert_array_equal(data.reward, np.arange(2, 7) * 10)
    buffer.add_batch(batch(12, start=7))  # larger than capacity: only the newest survive
    np.testing.assert_array_equal(buffer.all().reward, np.arange(14, 19) * 10)
    assert buffer.total_added == 19


def test_since_counts_run_wide_indices_across_the_ring():
    buffer = ReplayBuffer(3, 2, capacity=5)
    buffer.add_batch(batch(8))  # indices 3..7 are stored, wrapped around the ring
    np.testing.assert_array_equal(buffer.since(6).reward, [60, 70])
    np.testing.assert_array_equal(buffer.since(0).reward, np.arange(3, 8) * 10)  # evicted: all
    assert len(buffer.since(8)) == 0


def test_add_single_keeps_rows_whole():
    buffer = ReplayBuffer(3, 2, capacity=100)
    for t in range(50):
        buffer.add(np.full(3, t), np.full(2, -t), float(t), np.full(3, t + 1), False, False)
    data = buffer.all()
    assert data.obs.shape == (50, 3) and data.action.shape == (50, 2)
    np.testing.assert_array_equal(data.next_obs[:, 0], data.obs[:, 0] + 1)
    np.testing.assert_array_equal(data.reward, np.arange(50))


def test_state_dict_roundtrip():
    buffer = ReplayBuffer(3, 2, capacity=6)
    buffer.add_batch(batch(9))
    loaded = ReplayBuffer.from_state_dict(buffer.state_dict())
    assert loaded.total_added == 9 and loaded.capacity == 6
    for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(loaded.all(), name), getattr(buffer.all(), name))


def test_rejects_nan_naming_the_step():
    buffer = ReplayBuffer(3, 2)
    buffer.add_batch(batch(5))
    bad = batch(3, start=5)
    bad.next_obs[1, 2] = np.nan
    with pytest.raises(DataError, match=r"'next_obs' at environment step 6"):
        buffer.add_batch(bad)
    assert buffer.total_added == 5  # nothing from the bad batch was stored


def test_rejects_wrong_shapes_and_dtypes():
    buffer = ReplayBuffer(3, 2)
    with pytest.raises(DataError, match="'action' has shape"):
        buffer.add(np.zeros(3), np.zeros(3), 0.0, np.zeros(3), False, False)
    good = batch(2)
    with pytest.raises(DataError, match="'terminated' must be bool"):
        buffer.add_batch(TransitionBatch(**{**good.__dict__, "terminated": np.zeros(2)}))


def test_transition_log_survives_partial_record(tmp_path):
    log = TransitionLog(tmp_path / "t.bin", 3, 2)
    data = batch(4)
    for i in range(4):
        log.append(
            0,
            i,
            data.obs[i],
            data.action[i],
            data.reward[i],
            data.next_obs[i],
            data.terminated[i],
            False,
        )
    log.close()
    with open(tmp_path / "t.bin", "ab") as f:  # a kill in the middle of a write
        f.write(b"\x00" * 13)
    reopened = TransitionLog(tmp_path / "t.bin", 3, 2)
    assert len(reopened) == 4
    _episodes, _steps, read = reopened.read()
    np.testing.assert_array_equal(read.reward, data.reward)
    np.testing.assert_array_equal(read.terminated, data.terminated)
    _, _, tail = reopened.read(start=3)
    assert len(tail) == 1 and tail.reward[0] == data.reward[3]
    with pytest.raises(DataError, match="belongs to another run"):
        TransitionLog(tmp_path / "t.bin", 4, 2)
