"""`forethought lm ...`: compare search strategies, generate for one prompt, train the models,
self-train (search, filter, fine-tune, refit, repeat).

Each subcommand is a frozen dataclass in `COMMANDS` (tyro turns its fields and their one-line
docstrings into options with defaults); `run(command, console)` carries it out. Errors a user
can cause are `ForethoughtError`s, printed by `forethought.cli` as one line; Ctrl-C is handled
there too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro
from rich.console import Console

from forethought.errors import ConfigError
from forethought.lm import cli_training as training
from forethought.lm.artifacts.pretrain import PretrainConfig
from forethought.lm.artifacts.train_blend import BlendConfig
from forethought.lm.artifacts.train_prm import PRMConfig
from forethought.lm.cli_training import say
from forethought.lm.compare import FinalPick
from forethought.lm.grpo.config import GRPOConfig
from forethought.lm.selftrain.config import SelfTrainConfig
from forethought.runtime import check_device, configure_cpu
from forethought.storage import write_json

DESCRIPTION = (
    "The language track: search over language-model outputs under an exactly counted budget, "
    "train the Countdown models, and self-train. `forethought lm COMMAND --help` lists every "
    "option of a command with its default."
)
Method = Literal["bon", "lookahead", "prune", "beam", "dvts", "mcts", "mix"]
ValueKind = Literal["model", "hidden", "minilm"]
Process = Literal["value", "proxy", "prm", "legal+value", "legal+proxy"]
TaskName = Literal["countdown", "countdown-hard"]
DEFAULT_METHODS = "bon,lookahead,prune,beam"
MODELS_OUT = Path("runs/countdown-models")


# -- the commands -----------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class _Machine:
    """Options every search command shares."""

    task: TaskName = "countdown"
    """Built-in task: its shipped models are used unless --assets is given (countdown-hard: 5-6 numbers, 4-5 steps)."""
    max_new_tokens: int | None = None
    """Response length cap in tokens (default: the task's own, 24 for countdown and 36 for countdown-hard; 24 with --model)."""
    assets: Path | None = None
    """Directory of Countdown models (default: the models shipped with the package)."""
    seed: int = 0
    """Torch seed for sampling."""
    device: str = "cpu"
    """Torch device, e.g. cpu or cuda (checked before any model is loaded)."""
    threads: int = 1
    """Torch CPU threads (0: torch's default of one per core; these models are too small to gain from more than 1)."""


@dataclass(frozen=True, kw_only=True)
class CompareCommand(_Machine):
    """Compare search strategies at equal budget on held-out Countdown prompts: a table, a plot of reward against tokens spent, and optionally the rows as JSON."""

    budget: int = 1024
    """Most tokens generated per prompt."""
    reward_calls: int | None = None
    """Most reward-model calls per prompt (None: unlimited, still counted)."""
    methods: str = DEFAULT_METHODS
    """Comma-separated search methods (bon is always added: win rates are measured against it)."""
    prompts: int = 30
    """Number of held-out prompts."""
    plot_budgets: str = "256,512"
    """Comma-separated extra token budgets for the reward-vs-budget plot (an empty string for none)."""
    plot: Path = Path("lm_compare.png")
    """Where to save the plot."""
    json: Path | None = None
    """Also write the summary rows to this JSON file."""
    value: ValueKind = "model"
    """Value predictor of look-ahead, pruning and beam: a fine-tuned transformer (model), ridge on the generator's hidden states (hidden) or on MiniLM embeddings (minilm)."""
    process: Process = "legal+value"
    """Partial scorer of look-ahead, pruning, beam, dvts, mcts and mix (legal+value: the value predictor behind the step-legality check; prm: the process reward model, which needs models with a prm/ from `lm train-prm`)."""
    final: FinalPick = "proxy"
    """Final pick of every method: the proxy reward model, the proxy behind the legality rule, the value model, the PRM's step scores folded by min/last/product, a weighted majority vote over final answers (PRM weights), rank: the mean within-pool rank given by the proxy, the value model and the PRM's last step, policy: the generator's own mean log-probability per token of the answer (free: recorded while sampling), or rank+policy: the mean rank of all four (no hand-written rule in any)."""
    policy: Path | None = None
    """Generator: the policy of a GRPO or self-training run directory (its newest checkpoint or iteration), with the value predictor the run refitted to its samples; the run's models replace --assets and --value."""
    policy_step: int | None = None
    """With --policy: the checkpoint step (GRPO) or iteration (self-training) to use; 0 is the starting policy."""


@dataclass(frozen=True, kw_only=True)
class GenerateCommand(_Machine):
    """Search for the best response to one prompt with the shipped Countdown models, or with any Hugging Face causal LM and reward model (--model and --reward)."""

    prompt: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="PROMPT")]
    """Prompt text, e.g. '3,7,12>33:' for the Countdown models."""
    method: Method = "bon"
    """Search method."""
    budget: int = 512
    """Most tokens generated."""
    reward_calls: int | None = None
    """Most reward-model calls (None: unlimited, still counted)."""
    model: str | None = None
    """Generator: a hub name or local path (default: the shipped Countdown generator)."""
    reward: str | None = None
    """Reward model, a trained sequence classifier: a hub name or local path (default: the shipped proxy)."""
    value: ValueKind = "model"
    """Value predictor of the shipped models (see `forethought lm compare --help`)."""
    value_model: str | None = None
    """With --model/--reward: a trained sequence classifier that scores partial responses; enables --method lookahead and prunes with it."""
    policy: Path | None = None
    """Generator: the policy of a GRPO or self-training run directory (see `forethought lm compare --help`)."""
    policy_step: int | None = None
    """With --policy: the checkpoint step or iteration to use (default: the newest)."""


@dataclass(frozen=True, kw_only=True)
class ExplainCommand(_Machine):
    """Show the search tree of one prompt with the shipped Countdown models: every partial answer grown, its score, which were pruned (and in which round), the finished answers with their final reward and gold score, and the pick; written to --out as explain.json and explain.png and printed as an indented tree."""

    prompt: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="PROMPT")]
    """Countdown prompt, e.g. '3,7,6,5>9:'."""
    method: str = "lookahead"
    """Search method: bon, lookahead, prune, beam, dvts, mcts or mix (Best-of-N on half the budget, MCTS on the rest)."""
    budget: int = 128
    """Most tokens generated."""
    reward_calls: int | None = None
    """Most reward-model calls (None: unlimited, still counted)."""
    value: ValueKind = "model"
    """Value predictor of the shipped models (see `forethought lm compare --help`)."""
    out: Path = Path("lm_explain")
    """Directory for explain.json (the tree) and explain.png (the tree drawn)."""


@dataclass(frozen=True)
class ModelsOptions:
    """Options shared by train-generator and train-reward."""

    out: Path = MODELS_OUT
    """Directory of the models (the shipped ones are written only with --overwrite-shipped)."""
    task: TaskName = "countdown"
    """Countdown setting: 'countdown' (3-4 numbers) or 'countdown-hard' (5-6 numbers, 4-5 steps); train-reward reads it from --out/meta.json when that exists."""
    half: bool = False
    """Save the weights as float16 (half the disk; loaded back as float32 on CPU)."""
    proxy_steps: int = PretrainConfig.proxy_steps
    """Proxy reward optimiser steps."""
    proxy_samples: int = PretrainConfig.proxy_samples
    """Generator samples (4 per problem) labelled with their gold score to train the proxy on (32000 with 8000 steps judged better; README, judges)."""
    proxy_pairwise: float = PretrainConfig.proxy_pairwise
    """Weight of a within-prompt ranking loss (Bradley-Terry over each prompt's answers) added to the proxy's regression on gold scores; 0: regression alone, as shipped (1 lowered the countdown pick: README, judges)."""
    value_model_steps: int = PretrainConfig.value_model_steps
    """Value model optimiser steps."""
    seed: int = 0
    """Seed for problems, demonstrations, initialisation and sampling."""
    threads: int = 1
    """Torch CPU threads (0: torch's default of one per core)."""
    overwrite_shipped: bool = False
    """Allow --out to be the models shipped inside the package, replacing them."""


@dataclass(frozen=True)
class TrainRewardCommand(ModelsOptions):
    """Retrain the proxy reward, the ridge value predictors and the value model on the generator in --out/generator/."""

    proxy_only: bool = False
    """Retrain the proxy reward alone, keeping the value predictors and value model in --out (meta.json records the new proxy's settings)."""


@dataclass(frozen=True)
class TrainGeneratorCommand(ModelsOptions):
    """Train the Countdown generator, then the proxy reward and value predictors on it (about 45 minutes on 2 CPU cores), into --out."""

    gen_steps: int = PretrainConfig.gen_steps
    """Generator optimiser steps."""


@dataclass(frozen=True)
class TrainPrmCommand:
    """Train a process reward model on the generator in --out/generator/ from Monte-Carlo step labels (each step prefix of a policy sample is labelled with the fraction of --rollouts continuations that end solved; no hand rule), into --out/prm/, and report its step-label accuracy and calibration on held-out prompts in --out/prm.json."""

    out: Path = MODELS_OUT
    """Directory of the models (the shipped ones are written only with --overwrite-shipped)."""
    problems: int = PRMConfig.problems
    """Training problems whose policy samples are labelled."""
    samples: int = PRMConfig.samples
    """Policy samples per problem."""
    rollouts: int = PRMConfig.rollouts
    """Continuations per step prefix (the k of the Monte-Carlo label)."""
    steps: int = PRMConfig.steps
    """Optimiser steps."""
    eval_problems: int = PRMConfig.eval_problems
    """Held-out problems for accuracy and calibration."""
    solutions: bool = PRMConfig.solutions
    """Also label the step prefixes of each training problem's known solution (policy samples rarely solve, so without them few labelled prefixes lead anywhere)."""
    outcomes: int = PRMConfig.outcomes
    """Further policy samples per training problem, labelled at their last step by the verifier's exact outcome (no rollouts): the near misses a final pick meets among many samples."""
    pick_samples: int = PRMConfig.pick_samples
    """Samples per held-out problem for the pick check (how often the PRM's top answer is solved)."""
    seed: int = 0
    """Seed for problems, sampling and initialisation."""
    half: bool = False
    """Save the weights as float16 (loaded back as float32 on CPU)."""
    threads: int = 1
    """Torch CPU threads (0: torch's default of one per core)."""
    overwrite_shipped: bool = False
    """Allow --out to be the models shipped inside the package (adds prm/ next to them)."""


@dataclass(frozen=True)
class TrainBlendCommand:
    """Fit the judge blend behind `--final blend` on the models in --out: the weights (a linear score plus --hidden tanh units) of the proxy, value model, PRM last step and the generator's likelihood whose softmax pick within each prompt's pool of policy samples has the highest expected gold score, on prompts of its own; checked on train-prm's pick-check prompts against each judge alone and the mean of their ranks, into --out/blend.json."""

    out: Path = MODELS_OUT
    """Directory of the models, with a prm/ (the shipped ones are written only with --overwrite-shipped)."""
    threads: int = 1
    """Torch CPU threads (0: torch's default of one per core)."""
    overwrite_shipped: bool = False
    """Allow --out to be the models shipped inside the package (adds blend.json next to them)."""
    config: Annotated[BlendConfig, tyro.conf.arg(name="")] = BlendConfig()  # noqa: RUF009 (frozen)


@dataclass(frozen=True)
class SelftrainCommand:
    """Expert iteration (STaR / ReST-EM) on the built-in task: each iteration searches the training prompts with the current policy and value predictor, keeps the best responses, fine-tunes a LoRA adapter on them, refits the predictor and evaluates on held-out prompts. A killed run continues with --resume RUN_DIR (only --iterations and --device may be given again)."""

    out: Path = Path("runs/selftrain")
    """New run directory: config.json, metrics.jsonl, selftrain.png and iter_K/."""
    resume: Path | None = None
    """Continue the killed or finished run in this directory with its own config."""
    threads: int = 1
    """Torch CPU threads (0: torch's default of one per core)."""
    quiet: bool = False
    """No progress bar (one line per iteration is still printed)."""
    config: Annotated[SelfTrainConfig, tyro.conf.arg(name="")] = SelfTrainConfig()  # noqa: RUF009 (frozen)


@dataclass(frozen=True)
class GrpoCommand:
    """GRPO on the built-in task (TRL's GRPOTrainer), the model-free arm: each step samples --generations completions per training prompt, scores them with the reward (the gold verifier by default) and moves the policy toward the ones that beat their group. Every --eval-every steps a checkpoint is saved and evaluated on the held-out prompts as self-training evaluates. A killed run continues with --resume RUN_DIR (only --steps and --device may be given again)."""

    out: Path = Path("runs/grpo")
    """New run directory: config.json, metrics.jsonl, train_log.jsonl, grpo.png, checkpoints/, evals/."""
    resume: Path | None = None
    """Continue the killed or finished run in this directory with its own config."""
    threads: int = 1
    """Torch CPU threads (0: torch's default of one per core)."""
    quiet: bool = False
    """No progress bar (one line per evaluated checkpoint is still printed)."""
    config: Annotated[GRPOConfig, tyro.conf.arg(name="")] = GRPOConfig()  # noqa: RUF009 (frozen)


COMMANDS: dict[str, type] = {
    "compare": CompareCommand,
    "generate": GenerateCommand,
    "explain": ExplainCommand,
    "train-generator": TrainGeneratorCommand,
    "train-reward": TrainRewardCommand,
    "train-prm": TrainPrmCommand,
    "train-blend": TrainBlendCommand,
    "selftrain": SelftrainCommand,
    "grpo": GrpoCommand,
}


def run(command, console: Console) -> int:
    """Carry out a parsed command; returns the exit code."""
    _quiet_transformers()
    runner: Callable[..., int] = {
        CompareCommand: _compare,
        GenerateCommand: _generate,
        ExplainCommand: _explain,
        TrainGeneratorCommand: training.train_models,
        TrainRewardCommand: training.train_models,
        TrainPrmCommand: training.train_prm,
        TrainBlendCommand: training.train_blend,
        SelftrainCommand: training.selftrain,
        GrpoCommand: training.grpo,
    }[type(command)]
    return runner(command, console)


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    # A command prints its own results; per-load progress bars and transformers' advisory
    # notices would bury them (its errors still surface as exceptions).
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


# -- compare ----------------------------------------------------------------------------------
def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(flag, f"expected comma-separated integers, got {text!r}") from None


def _compare(cmd: CompareCommand, console: Console) -> int:
    from forethought.lm import compare
    from forethought.lm.artifacts.shipped import load_countdown, shipped_root

    check_device(cmd.device)
    configure_cpu(cmd.threads)
    methods = [m.strip() for m in cmd.methods.split(",") if m.strip()]
    if "bon" not in methods:
        methods.insert(0, "bon")  # win rates are measured against Best-of-N
    if cmd.prompts < 1:
        raise ConfigError("prompts", "must be at least 1")
    budgets = sorted({*_int_list(cmd.plot_budgets, "plot_budgets"), cmd.budget})
    suite = _policy_suite(cmd) or load_countdown(
        cmd.assets or shipped_root(cmd.task), value=cmd.value, device=cmd.device
    )
    if cmd.final == "blend":
        compare.final_scorer(suite, "blend")  # the one-line error when no blend was fitted
    pool_judges = ("vote", "rank", "rank+policy", "blend")  # these read PRM-last
    for flag, wants_prm in (
        ("process", cmd.process == "prm"),
        ("final", cmd.final.startswith("prm") or cmd.final in pool_judges),
    ):
        if wants_prm and suite.prm is None:
            compare.partial_scorer(suite, "prm", flag)  # the one-line error saying how
    problems = suite.task.make_problems(cmd.prompts, seed=10_000 + cmd.seed)  # held-out seed
    settings = compare.SearchSettings(
        max_new_tokens=cmd.max_new_tokens or suite.task.max_new_tokens,
        final=cmd.final,
        process=cmd.process,
        prune_scorer=cmd.process,
        lookahead_scorer=cmd.process,
    )
    with _progress(console, len(budgets) * len(problems) * len(methods)) as advance:
        records = compare.evaluate(
            suite,
            methods,
            [p.prompt for p in problems],
            budgets,
            settings,
            seed=cmd.seed,
            reward_calls=cmd.reward_calls,
            on_done=advance,
        )
    rows = compare.summarize(records)
    _print_summary(console, [r for r in rows if r["budget"] == cmd.budget], cmd, len(problems))
    path = compare.plot_reward_vs_budget(rows, str(cmd.plot))
    say(console, f"plot of reward vs budget saved to {Path(path).resolve()}")
    if cmd.json:
        write_json(cmd.json, rows)
        say(console, f"summary rows written to {cmd.json}")
    return 0


class _progress:
    """A transient progress bar on a terminal; nothing (no redraws) when output is redirected."""

    def __init__(self, console: Console, total: int):
        from rich.progress import Progress

        self.progress = Progress(console=console, transient=True, disable=not console.is_terminal)
        self.task = self.progress.add_task("searching", total=total)

    def __enter__(self) -> Callable[[], None]:
        self.progress.__enter__()
        return lambda: self.progress.advance(self.task)

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)


SUMMARY_COLUMNS = (
    "method",
    "gold",
    "solved",
    "proxy",
    "win",
    "W/T/L",
    "tokens",
    "RM calls",
    "V calls",
)


def _summary_cells(r: dict) -> tuple[str, ...]:
    return (
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


def _print_summary(console: Console, rows: list[dict], cmd: CompareCommand, prompts: int) -> None:
    """A table on a terminal; one plain line per method when output is redirected."""
    from rich.table import Table

    title = f"{cmd.task}, {prompts} held-out prompts, budget {cmd.budget} tokens"
    if console.is_terminal:
        table = Table(title=title)
        for col in SUMMARY_COLUMNS:
            table.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
        for r in rows:
            table.add_row(*_summary_cells(r))
        console.print(table)
    else:
        say(console, title)
        for r in rows:
            cells = _summary_cells(r)
            say(
                console,
                f"{cells[0]}: "
                + ", ".join(
                    f"{name} {cell}"
                    for name, cell in zip(SUMMARY_COLUMNS[1:], cells[1:], strict=True)
                ),
            )
    say(
        console,
        "gold/proxy: mean reward of the pick; win: win rate on gold against Best-of-N at the "
        "same budget (a tie counts half); W/T/L: wins/ties/losses; tokens, RM calls (reward "
        "model) and V calls (value predictor): mean spent per prompt",
    )


def _policy_suite(cmd):
    """With --policy: the run's models, its trained policy and the predictor refitted to it."""
    if cmd.policy is None:
        if cmd.policy_step is not None:
            raise ConfigError("policy_step", "needs --policy RUN_DIR")
        return None
    from forethought.lm.policies import load_trained_policy, suite_with_policy

    for name, default in (("assets", None), ("value", "model")):
        if getattr(cmd, name) != default:
            raise ConfigError(
                name,
                "with --policy the run's own models and refitted value predictor are used; "
                f"drop --{name}",
            )
    policy = load_trained_policy(cmd.policy, cmd.policy_step, device=cmd.device)
    return suite_with_policy(policy, device=cmd.device)


# -- generate ---------------------------------------------------------------------------------
def _generate(cmd: GenerateCommand, console: Console) -> int:
    import torch

    from forethought.lm import Budget
    from forethought.lm.compare import SearchSettings, run_method

    if not cmd.prompt.strip():
        raise ConfigError("PROMPT", "is empty; give the text to respond to, e.g. '3,7,12>33:'")
    check_device(cmd.device)
    configure_cpu(cmd.threads)
    torch.manual_seed(cmd.seed)
    if cmd.model is None:  # the shipped Countdown models
        require_countdown_prompt(cmd.prompt)
    suite = _generate_suite(cmd)
    max_new = cmd.max_new_tokens or (suite.task.max_new_tokens if suite.gold else 24)
    settings = SearchSettings(max_new)
    if suite.gold is None:  # a user's own models: no Countdown rule check on partials
        partial = "value" if suite.value is not None else "proxy"
        settings = SearchSettings(max_new, lookahead_scorer=partial, prune_scorer=partial)
    budget = Budget(max_tokens=cmd.budget, max_reward_calls=cmd.reward_calls)
    res = run_method(suite, cmd.method, cmd.prompt, budget, settings)
    spent = res.spent
    say(console, f"response: {res.pick.text}")
    say(console, f"reward:   {res.score:.4f}  ({cmd.method}, {len(res.finalists)} finalists)")
    say(
        console,
        f"spent:    {spent.tokens}/{cmd.budget} tokens, {spent.reward_calls} reward calls, "
        f"{spent.value_calls} value calls",
    )
    if suite.gold is not None:
        try:
            say(console, f"gold:     {suite.task.score(cmd.prompt, res.pick.text):.4f}")
        except ValueError:
            pass  # not a Countdown prompt: there is no gold verifier to ask
    return 0


def _generate_suite(cmd: GenerateCommand):
    """The shipped models, or the user's generator, reward model and optional value model."""
    from forethought.lm import ClassifierReward, Generator
    from forethought.lm.artifacts.shipped import CountdownSuite, load_countdown, shipped_root

    if cmd.policy is not None and (cmd.model is not None or cmd.reward is not None):
        raise ConfigError("policy", "give --policy or --model/--reward, not both")
    if cmd.model is None and cmd.reward is None:
        return _policy_suite(cmd) or load_countdown(
            cmd.assets or shipped_root(cmd.task), value=cmd.value, device=cmd.device
        )
    if cmd.model is None or cmd.reward is None:
        raise ConfigError("--model/--reward", "give both, or neither for the shipped models")
    if cmd.method == "beam":
        raise ConfigError(
            "method",
            "beam needs the Countdown models' step delimiter; with --model/--reward use "
            "bon, prune, or lookahead with --value-model",
        )
    if cmd.method == "lookahead" and cmd.value_model is None:
        raise ConfigError(
            "method",
            "lookahead needs a value predictor for the generator; with --model/--reward "
            "give --value-model PATH, or use bon or prune",
        )
    gen = Generator.from_pretrained(cmd.model, device=cmd.device)
    reward = ClassifierReward.from_pretrained(cmd.reward, device=cmd.device)
    value = None
    if cmd.value_model is not None:
        value = ClassifierReward.from_pretrained(
            cmd.value_model, device=cmd.device, kind="value", name="value model", flag="value_model"
        )
    return CountdownSuite(gen, reward, None, value, set())


# -- explain ----------------------------------------------------------------------------------
def _explain(cmd: ExplainCommand, console: Console) -> int:
    import torch

    from forethought.lm import explain as ex
    from forethought.lm.artifacts.shipped import load_countdown, shipped_root
    from forethought.lm.compare import SearchSettings

    budget = _explain_checks(cmd)
    check_device(cmd.device)
    configure_cpu(cmd.threads)
    torch.manual_seed(cmd.seed)  # as `lm generate`: same seed and budget, same search
    suite = load_countdown(cmd.assets or shipped_root(cmd.task), value=cmd.value, device=cmd.device)
    settings = SearchSettings(cmd.max_new_tokens or suite.task.max_new_tokens)
    result, trace = ex.explain(suite, cmd.method, cmd.prompt, budget, settings)
    cmd.out.mkdir(parents=True, exist_ok=True)
    run = {"method": cmd.method, "budget": budget.max_tokens, "seed": cmd.seed}
    run["max_reward_calls"] = budget.max_reward_calls
    run["settings"] = dataclasses.asdict(settings)
    write_json(cmd.out / "explain.json", ex.as_json(result, trace, **run))
    ex.plot_tree(trace, result, cmd.method, cmd.out / "explain.png")
    for line in ex.render_text(trace, result, cmd.method, cmd.budget):
        say(console, line)
    say(console, f"tree written to {cmd.out / 'explain.json'} and {cmd.out / 'explain.png'}")
    return 0


def require_countdown_prompt(prompt: str) -> None:
    """The shipped models and their legality check read only Countdown prompts."""
    from forethought.lm.tasks import countdown

    if not prompt.strip():
        raise ConfigError("PROMPT", "is empty; give a Countdown prompt, e.g. '3,7,6,5>9:'")
    try:
        countdown.parse_prompt(prompt)
    except ValueError:
        raise ConfigError(
            "PROMPT",
            f"{prompt!r} is not a Countdown prompt (numbers>target:, e.g. '3,7,6,5>9:'); "
            "the shipped models and their legality check read only that form",
        ) from None


def _explain_checks(cmd: ExplainCommand):
    """The budget, after every check that needs no model: prompt, method, budget, --out."""
    from forethought.lm import Budget
    from forethought.lm.compare import METHODS
    from forethought.lm.search.common import require_one_candidate
    from forethought.lm.tasks.countdown import get_task

    require_countdown_prompt(cmd.prompt)
    if cmd.method not in METHODS:
        raise ConfigError(
            "method", f"unknown method {cmd.method!r}; choose from {', '.join(METHODS)}"
        )
    budget = Budget(max_tokens=cmd.budget, max_reward_calls=cmd.reward_calls)
    require_one_candidate(budget, cmd.max_new_tokens or get_task(cmd.task).max_new_tokens)
    if cmd.out.exists() and not cmd.out.is_dir():
        raise ConfigError("out", f"{cmd.out} is a file, not a directory; choose another --out")
    return budget
