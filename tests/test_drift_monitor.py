"""The drifting environment, the model-error monitor, and their wiring into the run loop."""

import json

import gymnasium as gym
import numpy as np
import pytest

from forethought.config import MonitorConfig, TrainConfig
from forethought.errors import ConfigError
from forethought.tasks.drift import DriftConfig, DynamicsDrift
from forethought.trainers import train
from forethought.trainers.adaptation import ModelErrorMonitor
from helpers import tiny_config


def test_drift_changes_the_parameter_at_the_given_step():
    env = DynamicsDrift(gym.make("Pendulum-v1"), DriftConfig(at_step=3, parameter="l", scale=2.0))
    env.reset(seed=0)
    lengths = []
    for _ in range(5):
        env.step(np.zeros(1, np.float32))
        lengths.append(env.unwrapped.l)
    assert lengths == [1.0, 1.0, 2.0, 2.0, 2.0]  # steps 1-3 ran on the old dynamics
    resumed = DynamicsDrift(
        gym.make("Pendulum-v1"), DriftConfig(at_step=3, parameter="l", scale=2.0), 10
    )
    assert resumed.drifted and resumed.unwrapped.l == 2.0


def test_action_drift_reverses_the_actuator_and_evaluation_copies_follow_the_clock():
    config = DriftConfig(at_step=2, parameter="action", scale=-1.0)
    drifting = DynamicsDrift(gym.make("Pendulum-v1"), config)
    follower = DynamicsDrift(gym.make("Pendulum-v1"), config, clock=drifting)
    plain = gym.make("Pendulum-v1")
    for env in (drifting, follower, plain):
        env.reset(seed=3)
    push = np.array([1.5], np.float32)
    for t in range(4):
        obs, *_ = drifting.step(push)
        expected, *_ = plain.step(push if t < 2 else -push)  # reversed from the third step on
        np.testing.assert_allclose(obs, expected)
    assert drifting.drifted and follower.drifted and follower.total_steps == 0
    follower.reset(seed=3)
    plain.reset(seed=3)
    np.testing.assert_allclose(follower.step(push)[0], plain.step(-push)[0])
    assert follower.total_steps == 0  # an evaluation copy never moves the clock


@pytest.mark.parametrize(
    "parameter, scale, message",
    [("action", 0.0, "must not be 0"), ("m", -1.0, "positive for a physical parameter")],
)
def test_bad_drift_scales_are_refused(parameter, scale, message):
    with pytest.raises(ConfigError, match=message):
        DriftConfig(at_step=1, parameter=parameter, scale=scale).validate()


def test_drift_of_an_unknown_parameter_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"drift\.parameter"):
        DynamicsDrift(gym.make("Pendulum-v1"), DriftConfig(at_step=3, parameter="mass_of_moon"))
    bad = tiny_config(tmp_path / "run", drift=DriftConfig(at_step=3, parameter="mass_of_moon"))
    with pytest.raises(ConfigError, match=r"drift\.parameter"):
        train(bad)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_monitor_fires_only_on_a_sustained_rise():
    monitor = ModelErrorMonitor(MonitorConfig(enabled=True, factor=3.0, window=5))
    monitor.reset(baseline=1.0)
    assert not any(monitor.observe(e) for e in [1.0, 2.0, 8.0, 1.0, 1.0, 1.0, 2.0])  # one spike
    monitor.reset(baseline=1.0)
    fired = [monitor.observe(10.0) for _ in range(6)]
    assert fired == [False, False, False, False, True, True]  # only once the window is full
    monitor.reset(baseline=10.0)
    assert not monitor.observe(10.0)


def test_change_point_is_the_first_step_over_the_threshold():
    monitor = ModelErrorMonitor(MonitorConfig(enabled=True, factor=3.0, window=5))
    monitor.reset(baseline=1.0)
    fired = [monitor.observe(e) for e in [1.0, 1.0, 1.0, 50.0, 50.0]]
    assert fired[-1] and monitor.steps_since_change() == 2


def test_forgetting_refits_on_the_new_data_only_and_once_per_cooldown(tmp_path):
    # Hair trigger again; the actuator reverses at step 45 (episode 2 of 3, 30 steps each).
    config = tiny_config(
        tmp_path / "run",
        episodes=3,
        drift=DriftConfig(at_step=45, parameter="action", scale=-1.0),
        monitor=MonitorConfig(enabled=True, factor=1.01, window=4, forget=True),
    )
    result = train(config)
    forgetting = [e for e in result.history if "forgot_before" in e]
    assert len(forgetting) == 1  # later alarms fall in the cooldown and refit on everything
    first = forgetting[0]
    assert first["step"] - config.monitor.window <= first["forgot_before"] < first["step"]
    refits = [e for e in result.history if e.get("event") == "refit_after_forgetting"]
    # The refit from scratch comes once `window` transitions since the change exist.
    assert refits[0]["step"] == first["refit_at_step"]
    assert refits[0]["transitions"] == config.monitor.window
    from forethought.trainers.run_dir import RunDir

    adaptation = RunDir(result.run_dir).load_checkpoint()["adaptation"]
    assert adaptation["fit_from"] == first["forgot_before"]  # kept for a resumed run


def test_run_with_drift_and_monitor_logs_alarms_and_refits(tmp_path):
    # A hair-trigger monitor (factor just above 1, window 1) so the plumbing is exercised for sure.
    config = tiny_config(
        tmp_path / "run",
        episodes=3,
        drift=DriftConfig(at_step=45, parameter="g", scale=1.5),
        monitor=MonitorConfig(enabled=True, factor=1.01, window=1),
    )
    result = train(config)
    events = [r for r in result.history if r.get("event") == "model_drift"]
    assert events and all(e["refit"] and e["step"] > 30 for e in events)  # never during warm-up
    rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in rows if r.get("event") == "model_drift"] == events
    episodes = [r for r in result.history if "event" not in r]
    assert sum(r["drift_alarms"] for r in episodes) == len(events)


def test_config_round_trips_through_json():
    config = tiny_config(None, drift=DriftConfig(at_step=5), monitor=MonitorConfig(enabled=True))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_diagnose_writes_error_growing_with_horizon(tmp_path, capsys):
    from forethought.cli import main

    train(tiny_config(tmp_path / "run", episodes=2))
    assert (
        main(
            [
                "diagnose",
                str(tmp_path / "run"),
                "--episodes",
                "2",
                "--horizon",
                "10",
                "--policy",
                "random",
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "run" / "diagnose.json").read_text())
    assert data["horizons"] == list(range(1, 11))
    assert len(data["member_rmse"]) == 2 and len(data["member_rmse"][0]) == 10
    assert data["ensemble_rmse"][-1] > data["ensemble_rmse"][0]  # compounding error
    assert (tmp_path / "run" / "diagnose.png").stat().st_size > 10_000
    assert "plot:" in capsys.readouterr().out
