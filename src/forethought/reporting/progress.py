"""The live progress display of a run (rich): a bar over environment steps with the current
phase and the latest evaluation return."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RunProgress:
    def __init__(self, console: Console, config, total_steps: int | None, done_steps: int):
        self.config = config
        total = total_steps
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("env steps"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            disable=config.quiet,
        )
        self._task = self._progress.add_task(
            "training", total=total, completed=done_steps, status=""
        )
        self._last_eval = ""

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def start_episode(self, episode: int) -> None:
        self._progress.update(
            self._task,
            description=f"episode {episode + 1}/{self.config.episodes}",
            status=f"acting {self._last_eval}",
        )

    def advance_step(self, steps: int = 1) -> None:
        self._progress.advance(self._task, steps)

    def status(self, text: str) -> None:
        self._progress.update(self._task, status=f"{text} {self._last_eval}")

    def finish_episode(self, row: dict[str, Any]) -> None:
        if row.get("eval_return") is not None:
            self._last_eval = f"(last eval {row['eval_return']:.1f})"
        self._progress.update(self._task, status=self._last_eval)
