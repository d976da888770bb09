"""The end-of-run summary table (rich)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def summary_table(history: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("ep", "policy", "steps", "return", "eval return", "holdout", "fit s", "ms/act"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in history:
        if "event" in r:
            continue
        eval_text = "—"
        if r.get("eval_return") is not None:
            eval_text = f"{r['eval_return']:.1f} ± {r['eval_return_std']:.1f}"
        table.add_row(
            str(r["episode"]),
            r["policy"],
            str(r["env_steps"]),
            _fmt(r.get("return"), ".1f"),
            eval_text,
            _fmt(r.get("holdout_error"), ".4f"),
            _fmt(r.get("fit_seconds"), ".1f"),
            _fmt(r.get("ms_per_action"), ".1f"),
        )
    return table
