"""Kill a Stable-Baselines3-driven run (SAC, MBPO, TD3) with SIGKILL at chosen and random
moments, resume it each time, and check that it ends exactly as the run that was never killed:
same metrics (wall-clock fields aside), same replay buffer (MBPO's imagined one too), same
policy, critic and dynamics weights. SB3 keeps no per-transition log, so the work since the last
checkpoint is redone; the redo must be exact."""

import json
import random
import time

import numpy as np
import pytest
import torch

from forethought.trainers import sb3
from forethought.trainers.run_dir import RunDir
from helpers import kill_when, start_cli

# Evaluations (and so checkpoints) every 40 steps of 30-step episodes: most checkpoints fall
# mid-episode, so the environments' state must come back too.
COMMON = [
    "--env", "Pendulum-v1", "--max-episode-steps", "30", "--eval-episodes", "2", "--quiet",
]  # fmt: skip
# A tiny MBPO: two small members, few epochs, short branches.
TINY_MBPO = [
    "--algo", "mbpo", "--steps", "240", "--eval-every-steps", "40", "--model.ensemble-size", "2",
    "--model.hidden-size", "16", "--model.num-hidden-layers", "1", "--fit.max-epochs", "3",
    "--mbpo.rollout-batch", "20", "--mbpo.rollout-min-length", "2",
    "--mbpo.rollout-max-length", "2", "--mbpo.gradient-steps", "2",
]  # fmt: skip
ARGS = {
    "sac": ["--algo", "sac", "--steps", "240", "--eval-every-steps", "40"],
    # under a constraint with a Lagrangian penalty: the multiplier lives in the environments
    "sac-lagrangian": [
        "--algo", "sac", "--steps", "240", "--eval-every-steps", "40",
        "--safety.constraint", "pendulum-zone", "--safety.lagrangian", "--safety.lagrange-lr", "0.5",
    ],
    "mbpo": [*TINY_MBPO, "--mbpo.warmup-steps", "60", "--mbpo.model-train-freq", "50"],
    # MBPO whose real actions pass a shield from the first refit on: the shield's planner
    # keeps warm starts and a sampling stream across steps, and its overrides are logged
    "mbpo-shield": [
        *TINY_MBPO, "--mbpo.warmup-steps", "20", "--mbpo.model-train-freq", "20",
        "--safety.constraint", "pendulum-zone", "--safety.shield", "--safety.shield-lookahead", "8",
        "--planning.horizon", "8", "--planning.population", "20", "--planning.iterations", "2",
        "--planning.elites", "4", "--rollout.particles", "4",
    ],
    # The zoo's TD3 acts at random for 1000 steps (the action space's generator), then learns
    # with Gaussian action noise (numpy's global generator).
    "td3": ["--algo", "td3", "--steps", "1120", "--eval-every-steps", "224"],
}  # fmt: skip
WALL_CLOCK = {"eval_seconds", "seconds", "cpu_seconds"}


def rows(out):
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    found = [json.loads(x) for x in path.read_text().splitlines() if x]
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in found if "event" not in r]


def rewritten(out):
    """A condition: the metrics file was replaced since now (a resumed run rewrites it to its
    checkpoint's rows first), so the rows seen after that are the new process's own."""
    path = out / "metrics.jsonl"
    before = path.stat().st_ino if path.exists() else None
    return lambda: path.exists() and path.stat().st_ino != before


def final_state(out):
    """The finished run rebuilt from its last checkpoint, and its metrics rows."""
    directory, config = RunDir.open(out, lock=False)
    checkpoint = directory.load_checkpoint()
    return sb3._build(config, directory, checkpoint), checkpoint, rows(out)


def assert_same_buffer(buffer, want):
    assert (buffer.pos, buffer.full) == (want.pos, want.full)
    for name in ("observations", "actions", "rewards", "next_observations", "dones", "timeouts"):
        np.testing.assert_array_equal(getattr(buffer, name), getattr(want, name), err_msg=name)


# The default tier kills SAC under a Lagrangian cost penalty (plain SAC plus the multiplier);
# plain sac, mbpo and td3 resume through the same SB3 checkpointing: the slow tier has them,
# and MBPO under a training shield (tests/test_safety.py restores a shield's state by itself).
@pytest.mark.parametrize(
    "algo",
    [
        "sac-lagrangian",
        pytest.param("mbpo-shield", marks=pytest.mark.slow),
        pytest.param("sac", marks=pytest.mark.slow),
        pytest.param("mbpo", marks=pytest.mark.slow),
        pytest.param("td3", marks=pytest.mark.slow),
    ],
)
def test_killed_and_resumed_equals_the_uninterrupted_run(tmp_path, algo):
    args = [*COMMON, *ARGS[algo]]
    reference = start_cli(["--out", str(tmp_path / "reference"), *args])
    out, rng = tmp_path / "run", random.Random(algo)
    checkpoint = out / "checkpoint.pt"
    total = int(args[args.index("--steps") + 1]) // int(args[args.index("--eval-every-steps") + 1])
    second, third = rng.randrange(2, total // 2 + 1), rng.randrange(total // 2 + 1, total - 1)
    kills = [
        ("the first checkpoint was written", lambda new: checkpoint.exists()),
        (f"{second} evaluations were recorded", lambda new: new() and len(rows(out)) >= second),
        (f"a few ms after evaluation {third}", lambda new: new() and len(rows(out)) >= third
         and (time.sleep(rng.uniform(0, 0.01)) or True)),
    ]  # fmt: skip
    proc, new = start_cli(["--out", str(out), *args]), None
    for what, condition in kills:
        kill_when(proc, lambda c=condition, n=new: c(n), what)
        new = rewritten(out)
        proc = start_cli(["--resume", str(out)])
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    assert reference.wait(timeout=120) == 0, reference.stderr.read().decode()

    want_run, want_checkpoint, want_rows = final_state(tmp_path / "reference")
    run, got_checkpoint, got_rows = final_state(out)
    assert got_rows == want_rows  # every evaluation once, the same numbers
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    # Each resume that finds a checkpoint marks the interruption; a mark written after the last
    # checkpoint goes with the rows that are redone.
    assert {r["event"] for r in events if "event" in r} == {"interrupted"}
    assert run.model.num_timesteps == want_run.model.num_timesteps
    assert_same_buffer(run.model.replay_buffer, want_run.model.replay_buffer)
    for key, value in want_run.model.policy.state_dict().items():
        assert torch.equal(run.model.policy.state_dict()[key], value), key
    if algo.startswith("mbpo"):
        assert_same_buffer(run.model.replay_buffer.model, want_run.model.replay_buffer.model)
        for key, value in want_checkpoint["dynamics"].items():
            assert torch.equal(got_checkpoint["dynamics"][key], value), key
        drop = [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in want_run.rollouts.log]
        assert [
            {k: v for k, v in r.items() if k not in WALL_CLOCK} for r in run.rollouts.log
        ] == drop
    if algo == "mbpo-shield":
        log = (tmp_path / "reference" / "shield.jsonl").read_text()
        assert log and (out / "shield.jsonl").read_text() == log  # overrides, each logged once
        assert got_checkpoint["shield"]["decisions"] == want_checkpoint["shield"]["decisions"]
