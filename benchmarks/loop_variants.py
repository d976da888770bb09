"""Variants of `--algo loop`'s value at the horizon, run on request by sample_efficiency.py
(`--methods NAME`) with the loop's budget: name -> (settings, plot label, colour).

Each was tried on Pendulum-v1 to make the loop no slower than plain MPC on every seed; the
README's sample-efficiency rows say what each measured.
"""

from __future__ import annotations

from forethought.config import LoopConfig
from forethought.models.value import ValueConfig

LOOP_VARIANTS = {
    # The state value takes 10 passes over the data per fitted-value-iteration round instead
    # of 1 (--value.passes): with a few episodes one pass is a handful of updates, and the
    # underfitted value rated a pendulum spinning through the top above one held there.
    "loop-fitted": ({"value": ValueConfig(passes=10)}, "value fitted 10 passes per round",
                    "tab:gray"),
    # loop-fitted with five value networks reading the logged level where the data does not
    # support them (--value.unsupported level): beyond the returns the rewards allow, or where
    # the networks disagree more than on any logged state.
    "loop-support": ({"value": ValueConfig(passes=10, members=5, unsupported="level")},
                     "5 fitted values, logged level where unsupported", "tab:red"),
    # A shorter discount (--loop.gamma 0.95): the value weighs 0.36 at a 20-step horizon
    # instead of 0.82, and its range is a fifth as wide.
    "loop-gamma-0.95": ({"loop": LoopConfig(gamma=0.95)}, "discount 0.95", "tab:green"),
    # loop-fitted whose plans use the value only once it has predicted the episode collected
    # since its last fit (R-squared at least 0.5 against the logged level; --value.trust).
    "loop-trusted": ({"value": ValueConfig(passes=10, trust=0.5)},
                     "value used once it predicts an episode", "tab:brown"),
    # The same without the actor's proposals (--loop.proposals 0): until the value is trusted
    # the planner scores plans as plain MPC does (up to the discount).
    "loop-trusted-no-proposals": (
        {"value": ValueConfig(passes=10, trust=0.5), "loop": LoopConfig(proposals=0)},
        "value once trusted, no actor proposals", "tab:olive",
    ),
    # The gated value without proposals, gated by a trial in the model instead of R-squared
    # (--value.trial-steps 100): after every fit the planner runs 100 steps closed-loop in
    # the model from 10 logged states with the value and without it; plans use the value only
    # while it does not lower that imagined return.
    "loop-tried-no-proposals": (
        {"value": ValueConfig(passes=10, trial_steps=100), "loop": LoopConfig(proposals=0)},
        "value once it helps plans in the model, no actor proposals", "tab:pink",
    ),
    # The InvertedPendulum recipe (loop-imagined) gated by the same trial: where the value is
    # what makes the planner reach 1000, does the trial keep it?
    "loop-imagined-tried": (
        {"loop": LoopConfig(imagined_ratio=0.95, branches=5_000, gradient_steps=10),
         "value": ValueConfig(trial_steps=100)},
        "MBPO's data for SAC, value once it helps plans in the model", "tab:olive",
    ),
    # loop-fitted whose value also fits 40-step rollouts of SAC's actor in the model from
    # logged states (--value.imagined-horizon 40: past where the 20-step plans end), so it has
    # model-based targets at states the logs never reached.
    "loop-actor-value": ({"value": ValueConfig(passes=10, imagined_horizon=40)},
                         "value also fitted on the actor's imagined rollouts", "tab:cyan"),
}  # fmt: skip
