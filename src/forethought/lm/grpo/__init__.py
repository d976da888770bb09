"""GRPO on verifiable rewards (TRL's GRPOTrainer): the language track's model-free arm."""

from forethought.lm.grpo.config import GRPOConfig
from forethought.lm.grpo.loop import GRPORunner
from forethought.lm.grpo.rundir import GRPORunDir

__all__ = ["GRPOConfig", "GRPORunDir", "GRPORunner"]
