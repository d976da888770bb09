"""`forethought report PATH [PATH ...]`: one self-contained HTML page for people.

A PATH is a run directory or a folder of benchmark results (`benchmarks/results`). For a run:
its configuration, learning curve with the evaluation spread, model diagnostics over time
(holdout error, disagreement along the executed plans, the open-loop error of `forethought
diagnose` when it was run), drift alarms, refits and resumes on a timeline, a few decisions
explained (`forethought explain`), and every metrics row. Several runs also get a side-by-side
table. Figures are PNGs inlined as data URIs, so the page needs no network and no other file.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import tyro

from forethought.config import TrainConfig
from forethought.errors import ConfigError, ForethoughtError, require
from forethought.models.uncertainty import member_variance
from forethought.storage import atomic_write_text, read_json, read_metrics
from forethought.tasks import get_task
from forethought.trainers.run_dir import RunDir


@dataclass(frozen=True)
class ReportArgs:
    """Write one self-contained HTML page for runs or benchmark results: configuration, learning curves, model diagnostics, drift alarms, explained decisions and, for several runs, a side-by-side table."""

    paths: tyro.conf.Positional[tuple[Path, ...]]
    """Run directories or benchmark-results folders."""
    out: Path | None = None
    """HTML file to write (default: report.html inside the first path)."""
    explain: int = 2
    """Decisions explained per MPC run, spread over its planned steps (0: none)."""


def report(args: ReportArgs) -> Path:
    require(len(args.paths) >= 1, "paths", "give at least one run directory or results folder")
    require(args.explain >= 0, "explain", "must be 0 or more")
    sections, runs = [], []
    for path in args.paths:
        if not Path(path).is_dir():
            raise ConfigError("PATHS", f"{path} is not a directory")
        if (Path(path) / "config.json").exists():
            run = _load_run(Path(path))
            runs.append(run)
            sections.append(_run_section(run, args.explain))
        elif list(Path(path).glob("*.json")):
            sections.append(_results_section(Path(path)))
        else:
            raise ConfigError(
                "PATHS", f"{path} is neither a run directory nor a folder of results JSON files"
            )
    if len(runs) > 1:
        sections.insert(0, _comparison(runs))
    out = args.out or Path(args.paths[0]) / "report.html"
    title = "forethought report: " + ", ".join(str(p) for p in args.paths)
    atomic_write_text(out, _page(title, sections))
    return out


# -- one run -----------------------------------------------------------------------------------
@dataclass
class _Run:
    path: Path
    config: TrainConfig
    rows: list[dict[str, Any]]  # one per episode (or evaluation point)
    events: list[dict[str, Any]]

    @property
    def name(self) -> str:
        method = self.config.planner if self.config.algo == "mpc" else self.config.algo
        return f"{self.config.env} · {method} · seed {self.config.seed}"


def _load_run(path: Path) -> _Run:
    directory, config = RunDir.open(path, flag="PATHS", lock=False)
    history = read_metrics(directory.metrics_path)
    rows = [r for r in history if "event" not in r]
    if not rows:
        raise ConfigError("PATHS", f"{path} has no finished episode yet; nothing to report")
    return _Run(path, config, rows, [r for r in history if "event" in r])


def _run_section(run: _Run, explain: int) -> str:
    parts = [f"<h2>{_e(run.name)}</h2><p class='path'>{_e(str(run.path))}</p>"]
    parts.append(_figure(_learning_curve(run), "learning curve"))
    if any(r.get("holdout_error") is not None for r in run.rows):
        parts.append(_figure(_model_over_time(run), "model over time"))
    calibration = _calibration(run)
    if calibration is not None:
        parts.append(_figure(calibration, "calibration"))
    diagnose = run.path / "diagnose.png"
    if diagnose.exists():
        parts.append("<h3>Open-loop error against horizon</h3>" + _image(diagnose.read_bytes()))
    if run.events:
        parts.append("<h3>Timeline: alarms, refits, resumes, step evaluations</h3>")
        parts.append(_table(run.events[:200]))
    parts.extend(_explanations(run, explain))
    parts.append("<h3>Every episode</h3>" + _table(run.rows))
    parts.append(
        "<details><summary>configuration</summary>"
        f"<pre>{_e(json.dumps(run.config.to_dict(), indent=1))}</pre></details>"
    )
    return "<section class='run'>" + "".join(parts) + "</section>"


def _learning_curve(run: _Run):
    fig, ax = plt.subplots(figsize=(7, 3.4))
    evals = [r for r in run.rows + run.events if r.get("eval_return") is not None]
    evals.sort(key=lambda r: r["env_steps"])
    if evals:
        x = np.array([r["env_steps"] for r in evals])
        mean = np.array([r["eval_return"] for r in evals])
        std = np.array([r.get("eval_return_std") or 0.0 for r in evals])
        ax.plot(x, mean, marker="o", ms=3, label="evaluation (mean ± std)")
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    train = [(r["env_steps"], r["return"]) for r in run.rows if r.get("return") is not None]
    if train:
        ax.plot(*zip(*train, strict=True), color="0.5", lw=1, label="training episode return")
    for event in run.events:
        if event.get("event") == "model_drift":
            ax.axvline(event["step"], color="tab:red", lw=0.8, alpha=0.6)
    solved = get_task(run.config.env).solved_return
    if solved is not None:
        ax.axhline(solved, color="tab:green", ls=":", lw=1, label=f"solved ({solved:g})")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(run.name + " (red lines: drift alarms)", fontsize=9)
    costs = [(r["env_steps"], r["eval_cost"]) for r in run.rows if r.get("eval_cost") is not None]
    if costs:  # a constrained task: violations on a second axis
        cost_ax = ax.twinx()
        cost_ax.plot(*zip(*costs, strict=True), color="tab:purple", marker="x", ms=4, lw=1)
        cost_ax.set_ylabel(f"evaluation cost ({run.config.safety.constraint})", color="tab:purple")
        cost_ax.set_ylim(bottom=0)
    return fig


def _model_over_time(run: _Run):
    fig, ax = plt.subplots(figsize=(7, 3))
    fitted = [(r["env_steps"], r["holdout_error"]) for r in run.rows if r.get("holdout_error")]
    ax.semilogy(*zip(*fitted, strict=True), marker="o", ms=3, label="holdout error after the fit")
    plans = [
        (r["env_steps"], r["plan_disagreement"]) for r in run.rows if r.get("plan_disagreement")
    ]
    if plans:
        ax.semilogy(*zip(*plans, strict=True), marker="s", ms=3, label="disagreement along plans")
    ax.set_xlabel("environment steps")
    ax.legend(fontsize=7)
    ax.set_title("model: holdout error and ensemble disagreement (normalised units)", fontsize=9)
    return fig


def _calibration(run: _Run):
    """Coverage of the model's predictive intervals on the run's last episode, predicted by the
    snapshot taken before that episode (so none of it was training data): for a calibrated
    model, a central interval of probability p holds a fraction p of the real next states."""
    last = len(run.rows) - 1
    snapshot = RunDir(run.path).snapshot_path(last)
    if run.config.algo != "mpc" or not snapshot.exists():
        return None
    from forethought.agents.build import build_mpc_agent
    from forethought.storage import load_torch
    from forethought.tasks import make_env, vector_actions

    env = vector_actions(make_env(run.config.env, **run.config.make_kwargs()))
    _, model, _ = build_mpc_agent(run.config, env)
    model.load_state_dict(load_torch(snapshot)["model"])
    records = RunDir(run.path).counted_records(model.obs_dim, model.action_dim)
    records = records[records[:, 0] == last]
    if len(records) == 0:
        return None
    o, a = model.obs_dim, model.action_dim
    obs, action = records[:, 2 : 2 + o], records[:, 2 + o : 2 + o + a]
    next_obs = records[:, 3 + o + a : 3 + 2 * o + a]
    obs, action, next_obs = (
        torch.as_tensor(x, dtype=torch.float32) for x in (obs, action, next_obs)
    )
    with torch.no_grad():
        pred = model.predict(obs, action)
    mean = pred.next_obs_mean.mean(0)
    variance = pred.next_obs_var.mean(0) + member_variance(pred.next_obs_mean)
    z = ((next_obs - mean) / variance.clamp_min(1e-12).sqrt()).abs()
    levels = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])
    bounds = torch.distributions.Normal(0.0, 1.0).icdf(torch.as_tensor((1 + levels) / 2))
    coverage = [(z < b).float().mean().item() for b in bounds]
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", label="calibrated")
    ax.plot(levels, coverage, marker="o", ms=3, label=f"episode {last} ({len(records)} steps)")
    ax.set_xlabel("predicted interval probability")
    ax.set_ylabel("fraction of real next states inside")
    ax.set_title("calibration on unseen data", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def _explanations(run: _Run, count: int) -> list[str]:
    """Explain `count` planned steps spread over the run (MPC runs with snapshots only)."""
    if count == 0 or run.config.algo != "mpc" or not (run.path / "snapshots").exists():
        return []
    from forethought.tools.explain import ExplainArgs, explain

    # A quarter into planned episodes spread over the run, so each plan has a real future.
    rows, planned = run.rows, range(run.config.warmup_episodes, len(run.rows))
    if not planned:
        return []
    picks = sorted({int(i) for i in np.linspace(planned.start, planned.stop - 1, count)})
    steps = [
        rows[i - 1]["env_steps"] + (rows[i]["env_steps"] - rows[i - 1]["env_steps"]) // 4
        for i in picks
    ]
    parts = ["<h3>Decisions explained</h3>"]
    for step in steps:
        try:
            result = explain(ExplainArgs(run_dir=run.path, step=int(step), top_k=3))
        except ForethoughtError as err:  # e.g. a step after a mid-episode refit
            parts.append(f"<p>step {step}: not explained ({_e(str(err))})</p>")
            continue
        chosen = result.report["chosen"]
        parts.append(
            f"<p>step {step} (episode {result.episode}, t={result.t}): action "
            f"{_e(str([round(a, 3) for a in result.action]))}, "
            f"{'reproduced' if result.reproduced else 'NOT reproduced'}; predicted return "
            f"{chosen['predicted_return']:.1f}, real {result.report['real']['return']:.1f}</p>"
        )
        parts.append(_image(result.plot_path.read_bytes()))
    return parts


def _comparison(runs: list[_Run]) -> str:
    rows = []
    for run in runs:
        evals = [r for r in run.rows if r.get("eval_return") is not None]
        solved = get_task(run.config.env).solved_return
        reached = next(
            (r["env_steps"] for r in evals if solved is not None and r["eval_return"] >= solved),
            None,
        )
        rows.append(
            {
                "run": run.name,
                "path": str(run.path),
                "env steps": run.rows[-1]["env_steps"],
                "final eval return": evals[-1]["eval_return"] if evals else None,
                "best eval return": max((r["eval_return"] for r in evals), default=None),
                "steps to solved": reached,
            }
        )
    return "<section><h2>Side by side</h2>" + _table(rows) + "</section>"


# -- benchmark results -------------------------------------------------------------------------
def _results_section(folder: Path) -> str:
    parts = [f"<h2>Results in {_e(str(folder))}</h2>"]
    for path in sorted(folder.glob("*.json")):
        data = read_json(path, "benchmark results")
        parts.append(f"<h3>{_e(path.name)}</h3>")
        if isinstance(data, dict):
            scalars = {k: v for k, v in data.items() if isinstance(v, str | int | float | bool)}
            if isinstance(data.get("machine"), dict):
                scalars.update({f"machine.{k}": v for k, v in data["machine"].items()})
            if scalars:
                parts.append(_table([scalars]))
        png = path.with_suffix(".png")
        if png.exists():
            parts.append(_image(png.read_bytes()))
        text = json.dumps(data, indent=1)
        parts.append(
            f"<details><summary>every number ({len(text):,} characters)</summary>"
            f"<pre>{_e(text[:200_000])}</pre></details>"
        )
    return "<section class='results'>" + "".join(parts) + "</section>"


# -- HTML --------------------------------------------------------------------------------------
def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _figure(fig, alt: str) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return _image(buffer.getvalue(), alt)


def _image(png: bytes, alt: str = "figure") -> str:
    data = base64.b64encode(png).decode()
    return f"<img class='figure' alt='{_e(alt)}' src='data:image/png;base64,{data}'>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return _e(", ".join(_cell(v) for v in value[:12]) + (" …" if len(value) > 12 else ""))
    return _e("—" if value is None else str(value))


def _table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.4em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
.path { color: #666; font-family: monospace; }
img.figure { max-width: 100%; display: block; margin: .5em 0 1em; }
table { border-collapse: collapse; font-size: .8em; } .scroll { overflow-x: auto; }
td, th { border: 1px solid #ddd; padding: .2em .5em; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; } pre { font-size: .75em; max-height: 30em; overflow: auto; }
"""

# Marks the page once every figure has loaded (or failed), and records script errors, so a
# headless browser can check the page from its DOM alone.
_CHECK = """
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e)));
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.figures = ok + '/' + imgs.length;
  document.body.dataset.errors = String(window.__errors.length);
});
"""


def _page(title: str, sections: list[str]) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style><script>{_CHECK}</script></head>"
        f"<body><h1>{_e(title)}</h1>{''.join(sections)}</body></html>"
    )
