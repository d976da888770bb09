"""The live progress display of a run (rich): a bar over environment steps with the current
phase and the latest evaluation return. When the output is not a terminal (a log file, CI), a
bar would only show at the end, so one plain line per finished episode is printed instead."""

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
        self.console = console
        self.lines = not config.quiet and not console.is_terminal
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
            disable=config.quiet or self.lines,
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
            description=episode_count(episode, self.config.episode_limit),
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
        if self.lines:
            self.console.print(episode_line(row, self.config.episode_limit), soft_wrap=True)


def episode_count(episode: int, episodes: int | None) -> str:
    """'episode 3/10', or 'episode 3' when only a step budget ends the run."""
    return f"episode {episode + 1}" + ("" if episodes is None else f"/{episodes}")


def episode_line(row: dict[str, Any], episodes: int | None) -> str:
    """One finished episode (or evaluation point) as a line of text."""
    if "policy_updates" in row:  # a model-free run: rows are evaluation points, not episodes
        parts = [f"evaluation {row['episode'] + 1}", f"steps {row['env_steps']}"]
    else:
        parts = [episode_count(row["episode"], episodes), f"steps {row['env_steps']}"]
    if row.get("return") is not None:
        parts.append(f"return {row['return']:.1f}")
    if row.get("eval_return") is not None:
        parts.append(f"eval {row['eval_return']:.1f} ± {row['eval_return_std']:.1f}")
    if row.get("holdout_error") is not None:
        parts.append(f"holdout {row['holdout_error']:.4f}")
    if row.get("fit_seconds") is not None:
        parts.append(f"fit {row['fit_seconds']:.1f} s")
    if row.get("ms_per_action") is not None:
        parts.append(f"{row['ms_per_action']:.1f} ms/act")
    return "  ".join(parts)
