"""Data: the replay buffer models train on and the crash-safe transition log."""

from forethought.data.buffer import ReplayBuffer
from forethought.data.log import TransitionLog

__all__ = ["ReplayBuffer", "TransitionLog"]
