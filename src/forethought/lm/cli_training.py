"""The training commands of `forethought lm`: train-generator, train-reward, train-prm,
selftrain and grpo (their options are the dataclasses in `lm/cli.py`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from forethought.errors import ConfigError
from forethought.lm.artifacts.shipped import SHIPPED
from forethought.lm.artifacts.train_prm import PRMConfig
from forethought.lm.grpo.config import GRPOConfig
from forethought.lm.selftrain.config import SelfTrainConfig
from forethought.runtime import configure_cpu
from forethought.storage import read_json, write_json

RESUME_OVERRIDES = ("iterations", "device")
"""Options a resumed self-training run may change; everything else comes from its config.json."""
GRPO_RESUME_OVERRIDES = ("steps", "device")
"""Options a resumed GRPO run may change."""


def say(console: Console, text: str) -> None:
    """One whole line (no wrapping), text as is (responses may hold brackets: no markup)."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)


# -- train-generator, train-reward ------------------------------------------------------------
def train_models(cmd, console: Console) -> int:
    import torch

    from forethought.lm.artifacts import pretrain

    generator = hasattr(cmd, "gen_steps")  # train-generator, not train-reward
    for name in ("gen_steps",) * generator + ("proxy_steps", "value_model_steps"):
        if getattr(cmd, name) < 1:
            raise ConfigError(name, f"must be at least 1, got {getattr(cmd, name)}")
    if cmd.proxy_samples < 4:
        raise ConfigError(
            "proxy_samples", f"must be at least 4 (one problem), got {cmd.proxy_samples}"
        )
    if not cmd.proxy_pairwise >= 0:  # also refuses NaN
        raise ConfigError("proxy_pairwise", f"must be 0 (off) or more, got {cmd.proxy_pairwise}")
    out = _models_out(cmd)
    if not generator and not (out / "generator").is_dir():
        raise ConfigError("out", f"no generator/ under {out}; run train-generator first")
    configure_cpu(cmd.threads)
    overrides = {"seed": cmd.seed, "proxy_steps": cmd.proxy_steps, "half": cmd.half}
    overrides["proxy_pairwise"] = cmd.proxy_pairwise
    overrides["proxy_samples"] = cmd.proxy_samples
    overrides["task"] = cmd.task if generator else _assets_task(out, cmd.task)
    overrides["value_model_steps"] = cmd.value_model_steps
    if generator:
        overrides["gen_steps"] = cmd.gen_steps
    cfg = pretrain.PretrainConfig(**overrides)
    times: dict[str, float] = {}
    start = time.time()

    def timed(name: str, step: Callable[[], object]) -> object:
        t = time.time()
        result = step()
        times[name] = round(time.time() - t, 1)
        return result

    if generator:
        out.mkdir(parents=True, exist_ok=True)
        timed("generator_s", lambda: pretrain.train_generator(out / "generator", cfg))
    timed("proxy_s", lambda: pretrain.train_proxy(out / "generator", out / "proxy", cfg))
    if getattr(cmd, "proxy_only", False):
        _record_proxy(out / "meta.json", cfg, times["proxy_s"])
        say(console, f"proxy reward written to {out / 'proxy'} in {time.time() - start:.0f}s")
        return 0
    alphas = timed("values_s", lambda: pretrain.fit_values(out, cfg))
    timed(
        "value_model_s",
        lambda: pretrain.train_value_model(out / "generator", out / "value_model", cfg),
    )
    meta = {
        "config": cfg.__dict__,
        "seconds": times,
        "ridge_alphas": alphas,
        "torch_threads": torch.get_num_threads(),
    }
    write_json(out / "meta.json", meta)
    say(console, f"models written to {out} in {time.time() - start:.0f}s")
    return 0


def train_prm(cmd, console: Console) -> int:
    from forethought.lm.artifacts.train_prm import run_train_prm

    out = _models_out(cmd)
    if not (out / "generator").is_dir():
        raise ConfigError("out", f"no generator/ under {out}; run train-generator first")
    for name in ("problems", "samples", "rollouts", "steps", "eval_problems", "pick_samples"):
        if getattr(cmd, name) < 1:
            raise ConfigError(name, f"must be at least 1, got {getattr(cmd, name)}")
    if cmd.outcomes < 0:
        raise ConfigError("outcomes", f"must be 0 (none) or more, got {cmd.outcomes}")
    configure_cpu(cmd.threads)
    cfg = PRMConfig(
        problems=cmd.problems,
        samples=cmd.samples,
        rollouts=cmd.rollouts,
        steps=cmd.steps,
        eval_problems=cmd.eval_problems,
        solutions=cmd.solutions,
        outcomes=cmd.outcomes,
        pick_samples=cmd.pick_samples,
        seed=cmd.seed,
    )
    start = time.time()
    report = run_train_prm(out, cfg, half=cmd.half, log=lambda line: say(console, line))
    held = report["held_out"]["all"]
    say(
        console,
        f"PRM written to {out / 'prm'} in {time.time() - start:.0f}s; held-out step labels: "
        f"accuracy {held['accuracy']:.3f} (majority {held['majority_baseline']:.3f}), Brier "
        f"{held['brier']:.4f}, ECE {held['ece']:.4f}, Spearman {held['spearman']:.3f} "
        f"({out / 'prm.json'})",
    )
    pick = report["pick"]
    say(
        console,
        f"pick check on {pick['prompts']} held-out prompts x {pick['samples']} samples: the PRM's "
        f"top answer is solved on {pick['pick_solved']:.3f} of prompts (any sample solved: "
        f"{pick['any_solved']:.3f}; a random pick: {pick['random_pick_solved']:.3f})",
    )
    return 0


def train_blend(cmd, console: Console) -> int:
    from forethought.lm.artifacts.train_blend import run_train_blend

    out, cfg = _models_out(cmd), cmd.config
    for name in ("problems", "samples", "check_problems", "steps"):
        if getattr(cfg, name) < 1:
            raise ConfigError(name, f"must be at least 1, got {getattr(cfg, name)}")
    if cfg.hidden < 0:
        raise ConfigError("hidden", f"must be at least 0 (0: a linear blend), got {cfg.hidden}")
    if not (out / "prm").is_dir():
        raise ConfigError("out", f"no prm/ under {out}; run train-generator and train-prm first")
    configure_cpu(cmd.threads)
    start = time.time()
    report = run_train_blend(out, cfg, log=lambda line: say(console, line))
    blend = report["blend"]
    weights = ", ".join(
        f"{j} {w:+.2f}" for j, w in zip(blend["judges"], blend["weights"], strict=True)
    )
    layer = f" and {cfg.hidden} tanh units" if cfg.hidden else ""
    say(
        console,
        f"blend written to {out / 'blend.json'} in {time.time() - start:.0f}s: {weights}{layer}",
    )
    for name, row in report["check"].items():
        gold = f", gold {row['pick_gold']:.3f}" if "pick_gold" in row else ""
        say(console, f"  check pick by {name:10s} solved {row['pick_solved']:.3f}{gold}")
    return 0


def _record_proxy(meta_path: Path, cfg, seconds: float) -> None:
    """Update meta.json for a proxy retrained alone: its settings and time, the rest kept."""
    meta = read_json(meta_path, "the models' settings") if meta_path.exists() else {}
    config = meta.setdefault("config", {"task": cfg.task, "seed": cfg.seed})
    config.update({k: v for k, v in cfg.__dict__.items() if k.startswith("proxy_")})
    meta.setdefault("seconds", {})["proxy_s"] = seconds
    write_json(meta_path, meta)


def _assets_task(root: Path, given: str) -> str:
    """The task the models under `root` were trained on (meta.json), else `given`."""
    from forethought.lm.artifacts.shipped import task_of

    return task_of(root).name if (root / "meta.json").exists() else given


def _models_out(cmd) -> Path:
    """--out, refused when it is (or lies inside) the shipped models unless asked for."""
    out = Path(cmd.out)
    resolved = out.resolve()
    if (resolved == SHIPPED or SHIPPED in resolved.parents) and not cmd.overwrite_shipped:
        raise ConfigError(
            "out",
            f"{out} holds the models shipped with forethought; choose another --out, or pass "
            "--overwrite-shipped to replace them",
        )
    if out.exists() and not out.is_dir():
        raise ConfigError("out", f"{out} is a file, not a directory; choose another --out")
    return out


# -- selftrain and grpo -----------------------------------------------------------------------
def selftrain(cmd, console: Console) -> int:
    from forethought.lm.selftrain import RunDir, SelfTrainer

    configure_cpu(cmd.threads)
    run, cfg = _open_run(cmd, RunDir, SelfTrainConfig, RESUME_OVERRIDES)
    try:
        say(
            console,
            f"self-training {cfg.task}: {cfg.iterations} iterations, {cfg.train_prompts} training "
            f"prompts, {cfg.eval_prompts} held-out, collect={cfg.collect}@{cfg.collect_budget} "
            f"tokens, filter={cfg.filter} on {cfg.filter_reward}, run directory {run.path}",
        )
        with _stage_progress(console, cmd.quiet) as report:
            SelfTrainer(cfg, run, report=report, log=lambda line: say(console, line)).run_all()
        say(console, f"metrics: {run.metrics_path}")
        say(console, f"plot: {run.path / 'selftrain.png'}")
    finally:
        run.close()
    return 0


def grpo(cmd, console: Console) -> int:
    from forethought.lm.grpo import GRPORunDir, GRPORunner
    from forethought.lm.grpo.loop import training_reward

    configure_cpu(cmd.threads)
    if cmd.resume is None:  # a --reward path that holds no classifier fails before --out exists
        training_reward(cmd.config.validate(), proxy=None, gold=None)
    run, cfg = _open_run(cmd, GRPORunDir, GRPOConfig, GRPO_RESUME_OVERRIDES)
    try:
        say(
            console,
            f"GRPO on {cfg.task}: {cfg.steps} steps x {cfg.prompts_per_step} prompts x "
            f"{cfg.generations} generations, reward {cfg.reward}, {cfg.tuning} tuning at lr "
            f"{cfg.lr:g}, {cfg.eval_prompts} held-out prompts every {cfg.eval_every} steps, run "
            f"directory {run.path}",
        )
        with _stage_progress(console, cmd.quiet) as report:
            GRPORunner(cfg, run, report=report, log=lambda line: say(console, line)).run_all()
        say(console, f"metrics: {run.metrics_path}")
        say(console, f"plot: {run.path / 'grpo.png'}")
    finally:
        run.close()
    return 0


@contextmanager
def _stage_progress(console: Console, quiet: bool):
    """A progress bar whose description names the current stage; `report(stage, done, total)`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,  # redirected: the lines only
    ) as progress:
        bar = progress.add_task("starting", total=1)

        def report(step: str, done: int, total: int) -> None:
            progress.update(bar, description=step, completed=done, total=max(total, 1))

        yield report


def _open_run(cmd, run_class, config_class, overrides: tuple[str, ...]):
    """A new locked run directory, or the one --resume names with its own config (only the
    `overrides` given on the command line may change it)."""
    if cmd.resume is None:
        cfg = cmd.config.validate()
        return run_class.create(cmd.out, cfg), cfg
    defaults = config_class()
    given = {
        f.name: getattr(cmd.config, f.name)
        for f in dataclasses.fields(config_class)
        if getattr(cmd.config, f.name) != getattr(defaults, f.name)
    }
    fixed = sorted(set(given) - set(overrides))
    if cmd.out != type(cmd).out:
        fixed.insert(0, "out")
    if fixed:
        raise ConfigError(
            "resume",
            f"a resumed run keeps its own config; drop {', '.join(_flag(n) for n in fixed)} "
            f"(only {', '.join(_flag(n) for n in overrides)} may change)",
        )
    run, saved = run_class.open(cmd.resume)
    try:
        cfg = saved.replace(**given)
        run.save(cfg)  # a raised --iterations / --steps is remembered by the next resume
    except BaseException:
        run.close()
        raise
    return run, cfg


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
