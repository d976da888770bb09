"""Self-training (expert iteration): the run's configuration (`config`), its directory on disk
(`rundir`), the held-out evaluation (`evaluation`) and the loop that ties them (`loop`)."""

from forethought.lm.selftrain.config import SelfTrainConfig
from forethought.lm.selftrain.loop import SelfTrainer, select
from forethought.lm.selftrain.rundir import RunDir

__all__ = ["RunDir", "SelfTrainConfig", "SelfTrainer", "select"]
