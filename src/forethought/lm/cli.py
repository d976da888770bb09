"""`forethought lm ...`: compare search strategies, generate for one prompt, train the models,
self-train (search, filter, fine-tune, refit, repeat).

Every user-caused error is a `ForethoughtError`; `main` prints its one-line message and
returns 2 instead of showing a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from forethought.errors import ConfigError, ForethoughtError

DEFAULT_METHODS = "bon,lookahead,prune,beam"


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from err


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="forethought lm",
        description="Search over language-model outputs under an exactly counted budget.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compare", help="compare search strategies at equal budget (table + plot)")
    c.add_argument("--task", default="countdown", choices=["countdown"], help="built-in task")
    c.add_argument("--budget", type=int, default=1024, help="max tokens per prompt (default 1024)")
    c.add_argument(
        "--reward-calls",
        type=int,
        default=None,
        help="max reward-model calls per prompt (default: unlimited, still counted)",
    )
    c.add_argument(
        "--methods", default=DEFAULT_METHODS, help=f"comma list (default {DEFAULT_METHODS})"
    )
    c.add_argument("--prompts", type=int, default=30, help="held-out prompts (default 30)")
    c.add_argument(
        "--plot-budgets",
        type=_int_list,
        default=[256, 512],
        help="extra token budgets for the reward-vs-budget plot (default 256,512)",
    )
    c.add_argument("--plot", default="lm_compare.png", help="where to save the plot")
    c.add_argument("--json", default=None, help="also write the summary rows to this JSON file")
    c.add_argument(
        "--value",
        default="model",
        choices=["model", "hidden", "minilm"],
        help="value predictor for look-ahead, pruning and beam: model (default, a fine-tuned "
        "transformer value model), hidden (ridge on the generator's hidden states), minilm "
        "(ridge on MiniLM embeddings)",
    )
    c.add_argument(
        "--process",
        default="legal+value",
        choices=["value", "proxy", "legal+value", "legal+proxy"],
        help="partial scorer of look-ahead, pruning and beam search (default legal+value: the "
        "value predictor behind the step-legality check)",
    )
    _common(c)

    g = sub.add_parser("generate", help="search for the best response to one prompt")
    g.add_argument("prompt", help="prompt text, e.g. '3,7,12>33:' for the Countdown models")
    g.add_argument("--method", default="bon", choices=["bon", "lookahead", "prune", "beam"])
    g.add_argument("--budget", type=int, default=512, help="max tokens (default 512)")
    g.add_argument("--reward-calls", type=int, default=None, help="max reward-model calls")
    g.add_argument(
        "--model",
        default=None,
        help="generator: hub name or local path (default: shipped Countdown generator)",
    )
    g.add_argument(
        "--reward",
        default=None,
        help="reward model: hub name or local path (default: shipped proxy)",
    )
    g.add_argument(
        "--value",
        default="model",
        choices=["model", "hidden", "minilm"],
        help="value predictor of the shipped models (default model; see `compare --help`)",
    )
    g.add_argument(
        "--value-model",
        default=None,
        help="with --model/--reward: a sequence classifier (hub name or local path) that scores "
        "partial responses; enables --method lookahead and prunes with it",
    )
    _common(g)

    t = sub.add_parser(
        "train-generator", help="train the Countdown generator, proxy reward and value predictors"
    )
    t.add_argument("--out", default=None, help="output directory (default: the package's assets)")
    t.add_argument("--gen-steps", type=int, default=None, help="generator optimiser steps")
    t.add_argument("--proxy-steps", type=int, default=None, help="proxy reward optimiser steps")
    t.add_argument(
        "--value-model-steps", type=int, default=None, help="value model optimiser steps"
    )
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    t.add_argument("--seed", type=int, default=0)

    r = sub.add_parser(
        "train-reward", help="retrain only the proxy reward, value predictors and value model"
    )
    r.add_argument("--out", default=None, help="directory holding generator/ (default: assets)")
    r.add_argument("--proxy-steps", type=int, default=None)
    r.add_argument("--value-model-steps", type=int, default=None)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--seed", type=int, default=0)

    # Listed here for `forethought lm --help`; `main` hands its arguments to _selftrain_parser.
    sub.add_parser(
        "selftrain",
        help="self-training loop: search, filter, LoRA fine-tune, refit the predictor, repeat",
        add_help=False,
    )
    return p


class _OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line that says what to change (no usage dump)."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see `forethought lm selftrain --help`\n")


RESUME_OVERRIDES = ("iterations", "device")
"""Options a resumed run may change; everything else comes from its config.json."""


def _selftrain_parser() -> argparse.ArgumentParser:
    from dataclasses import MISSING, fields

    from forethought.lm.selftrain import SelfTrainConfig

    p = _OneLineParser(
        prog="forethought lm selftrain",
        description="Expert iteration (STaR / ReST-EM) on the built-in task: each iteration "
        "searches the training prompts with the current policy and value predictor, scores "
        "every response with the proxy reward and the gold verifier, keeps the best (filter), "
        "fine-tunes a LoRA adapter on them with TRL's SFTTrainer, refits the predictor on the "
        "new policy's samples and evaluates on held-out prompts. Writes config.json, "
        "metrics.jsonl, selftrain.png and iter_K/ (adapter, dataset.jsonl, value.npz) to --out.",
        epilog="A killed run continues with `forethought lm selftrain --resume RUN_DIR`: it "
        "restarts at the first unfinished iteration with the run's own config (only "
        f"{', '.join('--' + o for o in RESUME_OVERRIDES)} may be given again).",
    )
    p.add_argument("--out", default="runs/selftrain", help="new run directory (runs/selftrain)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a killed run")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    for f in fields(SelfTrainConfig):
        default = f.default if f.default is not MISSING else None
        flag = "--" + f.name.replace("_", "-")
        choices = f.metadata.get("choices")
        text = f.metadata["help"]
        if isinstance(default, bool):
            p.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=text)
            continue
        shown = default if default != "" else "shipped"
        p.add_argument(
            flag,
            type=type(default),
            default=argparse.SUPPRESS,  # only options given on the command line are kept
            metavar=f.name.upper() if not choices else "{" + ",".join(choices) + "}",
            help=f"{text} (default {shown})",
        )
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=int, default=24, help="response length cap (24)")
    p.add_argument("--assets", default=None, help="directory of Countdown models (default shipped)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: these models are too small to gain "
        "from more, and extra threads thrash on a shared machine)",
    )


def _assets(args) -> Path:
    from forethought.lm.assets import SHIPPED

    return Path(args.assets) if args.assets else SHIPPED


def cmd_compare(args) -> int:
    import torch
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from forethought.lm import compare
    from forethought.lm.assets import load_countdown
    from forethought.lm.tasks import countdown

    torch.set_num_threads(max(1, args.threads))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if "bon" not in methods:
        methods.insert(0, "bon")  # win rates are measured against Best-of-N
    if args.prompts < 1:
        raise ConfigError("--prompts", "must be at least 1")
    suite = load_countdown(_assets(args), value=args.value, device=args.device)
    problems = countdown.make_problems(args.prompts, seed=10_000 + args.seed)  # held-out seed
    settings = compare.SearchSettings(
        max_new_tokens=args.max_new_tokens,
        process=args.process,
        prune_scorer=args.process,
        lookahead_scorer=args.process,
    )
    budgets = sorted({*args.plot_budgets, args.budget})
    total = len(budgets) * len(problems) * len(methods)
    with Progress(transient=True) as progress:
        task = progress.add_task("searching", total=total)
        records = compare.evaluate(
            suite,
            methods,
            [p.prompt for p in problems],
            budgets,
            settings,
            seed=args.seed,
            reward_calls=args.reward_calls,
            on_done=lambda: progress.advance(task),
        )
    rows = compare.summarize(records)
    table = Table(title=f"Countdown, {len(problems)} held-out prompts, budget {args.budget} tokens")
    cols = ("method", "gold", "solved", "proxy", "win", "W/T/L", "tokens", "RM calls", "V calls")
    for col in cols:
        table.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    for r in rows:
        if r["budget"] != args.budget:
            continue
        table.add_row(
            r["method"],
            f"{r['mean_gold']:.3f}",
            f"{r['solved']:.0%}",
            f"{r['mean_proxy']:.3f}",
            "-" if r["method"] == "bon" else f"{r['win_rate']:.0%}",
            f"{r['wins']}/{r['ties']}/{r['losses']}",
            f"{r['mean_tokens']:.0f}",
            f"{r['mean_reward_calls']:.1f}",
            f"{r['mean_value_calls']:.1f}",
        )
    console = Console()
    console.print(table)
    console.print(
        "gold/proxy: mean reward of the pick; win: win rate on gold against Best-of-N at the "
        "same budget (a tie counts half); W/T/L: wins/ties/losses; tokens, RM calls (reward "
        "model) and V calls (value predictor): mean spent per prompt"
    )
    path = compare.plot_reward_vs_budget(rows, args.plot)
    console.print(f"plot of reward vs budget saved to {Path(path).resolve()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
        console.print(f"summary rows written to {args.json}")
    return 0


def cmd_generate(args) -> int:
    import torch

    from forethought.lm import Budget, ClassifierReward, Generator
    from forethought.lm.assets import CountdownSuite, load_countdown
    from forethought.lm.compare import SearchSettings, run_method
    from forethought.lm.tasks import countdown

    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    if args.model is None and args.reward is None:
        suite = load_countdown(_assets(args), value=args.value, device=args.device)
    else:
        if args.method == "beam":
            raise ConfigError(
                "--method",
                "beam needs the Countdown models' step delimiter; with --model/--reward use "
                "bon, prune, or lookahead with --value-model",
            )
        if args.method == "lookahead" and args.value_model is None:
            raise ConfigError(
                "--method",
                "lookahead needs a value predictor for the generator; with --model/--reward "
                "give --value-model PATH, or use bon or prune",
            )
        gen = Generator.from_pretrained(args.model, device=args.device) if args.model else None
        if gen is None or args.reward is None:
            raise ConfigError("--model/--reward", "give both, or neither for the shipped models")
        value = None
        if args.value_model is not None:
            value = ClassifierReward.from_pretrained(
                args.value_model, device=args.device, kind="value", name="value model"
            )
        suite = CountdownSuite(
            gen,
            ClassifierReward.from_pretrained(args.reward, device=args.device),
            None,
            value,
            set(),
        )
    budget = Budget(max_tokens=args.budget, max_reward_calls=args.reward_calls)
    settings = SearchSettings(args.max_new_tokens)
    if suite.gold is None:  # a user's own models: no Countdown rule check on partials
        partial = "value" if suite.value is not None else "proxy"
        settings = SearchSettings(
            args.max_new_tokens, lookahead_scorer=partial, prune_scorer=partial
        )
    res = run_method(suite, args.method, args.prompt, budget, settings)
    print(f"response: {res.pick.text}")
    print(f"reward:   {res.score:.4f}  ({args.method}, {len(res.finalists)} finalists)")
    spent = res.spent
    print(
        f"spent:    {spent.tokens}/{args.budget} tokens, {spent.reward_calls} reward calls, "
        f"{spent.value_calls} value calls"
    )
    if suite.gold is not None:
        try:
            print(f"gold:     {countdown.score(args.prompt, res.pick.text):.4f}")
        except ValueError:
            pass  # not a Countdown prompt: there is no gold verifier to ask
    return 0


def cmd_train(args, *, generator: bool) -> int:
    import torch

    from forethought.lm import train
    from forethought.lm.assets import SHIPPED

    torch.set_num_threads(max(1, args.threads))  # the training machine is shared; be modest
    out = Path(args.out) if args.out else SHIPPED
    overrides = {"seed": args.seed}
    if generator and args.gen_steps is not None:
        overrides["gen_steps"] = args.gen_steps
    if args.proxy_steps is not None:
        overrides["proxy_steps"] = args.proxy_steps
    if args.value_model_steps is not None:
        overrides["value_model_steps"] = args.value_model_steps
    cfg = train.TrainConfig(**overrides)
    if not generator and not (out / "generator").is_dir():
        raise ConfigError("--out", f"no generator/ under {out}; run train-generator first")
    times = {}
    start = time.time()
    if generator:
        train.train_generator(out / "generator", cfg)
        times["generator_s"] = round(time.time() - start, 1)
    train.train_proxy(out / "generator", out / "proxy", cfg)
    times["proxy_s"] = round(time.time() - start - sum(times.values()), 1)
    alphas = train.fit_values(out, cfg)
    times["values_s"] = round(time.time() - start - sum(times.values()), 1)
    train.train_value_model(out / "generator", out / "value_model", cfg)
    times["value_model_s"] = round(time.time() - start - sum(times.values()), 1)
    meta = {
        "config": cfg.__dict__,
        "seconds": times,
        "ridge_alphas": alphas,
        "torch_threads": torch.get_num_threads(),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    print(f"models written to {out} in {time.time() - start:.0f}s")
    return 0


def cmd_selftrain(argv: list[str]) -> int:
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from forethought.lm.selftrain import RunDir, SelfTrainConfig, SelfTrainer

    args = vars(_selftrain_parser().parse_args(argv))
    out, resume = args.pop("out"), args.pop("resume")
    threads, quiet = args.pop("threads"), args.pop("quiet")
    if threads < 1:
        raise ConfigError("--threads", f"must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    console = Console()

    def log(line: str) -> None:  # whole lines (no wrapping), text as is (no markup)
        console.print(line, soft_wrap=True, markup=False, highlight=False)

    if resume:
        extra = sorted(set(args) - set(RESUME_OVERRIDES))
        if extra:
            raise ConfigError(
                "--resume",
                f"a resumed run keeps its own config; drop {', '.join('--' + e for e in extra)} "
                f"(only {', '.join('--' + o for o in RESUME_OVERRIDES)} may change)",
            )
        run, cfg = RunDir.open(Path(resume))
        cfg = SelfTrainConfig(**{**cfg.__dict__, **args}).validate()
        run.save_config(cfg)  # a raised --iterations is remembered by the next resume
    else:
        cfg = SelfTrainConfig(**args).validate()
        run = RunDir.create(Path(out), cfg)
    log(
        f"self-training {cfg.task}: {cfg.iterations} iterations, {cfg.train_prompts} training "
        f"prompts, {cfg.eval_prompts} held-out, collect={cfg.collect}@{cfg.collect_budget} "
        f"tokens, filter={cfg.filter} on {cfg.filter_reward}, run directory {run.path}"
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet,
    ) as progress:
        bar = progress.add_task("starting", total=1)

        def report(step: str, done: int, total: int) -> None:
            progress.update(bar, description=step, completed=done, total=max(total, 1))

        trainer = SelfTrainer(cfg, run, report=report, log=log)
        trainer.run_all()
    log(f"metrics: {run.path / 'metrics.jsonl'}\nplot: {run.path / 'selftrain.png'}")
    return 0


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    # A command prints its own results; per-load progress bars and transformers' advisory
    # notices would bury them (its errors still surface as exceptions).
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def main(argv: list[str]) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # defaults never touch the network
    if argv and argv[0] == "selftrain":
        _quiet_transformers()
        try:
            return cmd_selftrain(argv[1:])
        except ForethoughtError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted; continue with `forethought lm selftrain --resume RUN_DIR`")
            return 130
    args = _parser().parse_args(argv)
    _quiet_transformers()
    try:
        if args.command == "compare":
            return cmd_compare(args)
        if args.command == "generate":
            return cmd_generate(args)
        return cmd_train(args, generator=args.command == "train-generator")
    except ForethoughtError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
