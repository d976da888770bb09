"""The run directory's CPU-time stamp: what a run cost, over a kill and a resume."""

import time

from forethought.storage import RunDirectory, read_metrics


def burn(seconds: float) -> None:
    """Keep this process busy for `seconds` of CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_cpu_seconds_add_up_over_attempts_and_skip_idle_and_lost_work(tmp_path):
    first = RunDirectory(tmp_path / "run")
    first.create_directory({"seed": 0})
    burn(0.2)
    kept = {"episode": 0}
    first.append_metrics(kept)
    assert kept["cpu_seconds"] >= 0.2  # stamped in place: a history holding the row has it
    burn(0.3)
    first.append_metrics({"episode": 1})  # written after the checkpoint: a resume redoes it
    first.close()

    second = RunDirectory(tmp_path / "run")
    second.open_directory()
    second.rewrite_metrics([kept])  # what a resume does with rows past the checkpoint
    time.sleep(0.3)  # stopped or waiting: wall time, not CPU time
    burn(0.2)
    redone = {"episode": 1}
    second.append_metrics(redone)
    gained = redone["cpu_seconds"] - kept["cpu_seconds"]
    assert 0.2 <= gained < 0.35, gained  # the lost 0.3 s and the 0.3 s asleep are not in it
    own = {"event": "note", "cpu_seconds": 7.0}
    second.append_metrics(own)  # a row that carries its own figure keeps it
    assert [r["cpu_seconds"] for r in read_metrics(second.metrics_path)][-1] == 7.0
    second.close()
