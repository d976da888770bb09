"""`python benchmarks/lm_search.py --part steps`: step-level search with learned scorers only.

Best-of-N, step beam, DVTS and MCTS run with a learned process scorer (the PRM or the value
model, named in each label, e.g. "mcts(prm)"); every search is re-picked by every final pick, so each (method, final pick) pair is measured on
the same answers. The rule-gated pick ("bon [legal+proxy]") is the control: Best-of-N with the
hand-written legality rule at its pick, the bar the learned methods must clear without it.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from forethought.lm import Account, Budget, compare
from forethought.lm.artifacts.shipped import load_countdown, shipped_root
from forethought.lm.artifacts.train_prm import step_ends
from lm_search import timed, tokens_to_match

HELD_OUT_SEED = 20_000
RESULTS = Path(__file__).parent / "results"
SEARCHES = [  # (method, process scorer); every label names its process scorer
    ("bon", None),
    ("beam", "value"),
    ("dvts", "prm"),
    ("dvts", "value"),
    ("mcts", "prm"),
    ("mcts", "value"),
]
# Measured on development prompts only; run when --searches names it.
ON_REQUEST = [("mix", "value")]
CONTROL = "bon [legal+proxy]"
# Pairs reported at every budget without being selected on these prompts: MCTS with the value
# model at its leaves, picked by the judges' mean rank or by their blend (chosen on the judges'
# prompts, benchmarks/judges.py).
FIXED_PAIRS = ("mcts(value) [rank+policy]", "mcts(value) [blend]", "dvts(value) [blend]")


def correlation_by_step(suite, problems, per_prompt: int, max_new: int) -> dict:
    """Spearman of each learned scorer on the prefix cut after step k with the final gold of
    the answer, pooled and averaged within a prompt, for k = 1, 2, ..."""
    cands, groups = [], []
    for i, p in enumerate(problems):
        torch.manual_seed(HELD_OUT_SEED + i)
        account = Account(Budget(per_prompt * max_new))
        cands += suite.generator.generate(p.prompt, per_prompt, max_new, account)
        groups += [i] * per_prompt
    gold = np.array([suite.task.score(c.prompt, c.text) for c in cands])
    groups = np.array(groups)
    delim = next(iter(suite.delimiters))
    scorers = {"prm": suite.prm, "value": suite.value, "proxy": suite.proxy}
    out = {"samples": len(cands), "mean_gold": float(gold.mean())}
    for k in range(1, 6):
        rows = [j for j, c in enumerate(cands) if len(step_ends(c, delim)) >= k]
        if len(rows) < 20:
            break
        prefixes = [
            suite.generator.prefix(cands[j], step_ends(cands[j], delim)[k - 1]) for j in rows
        ]
        y, g = gold[rows], groups[rows]
        entry = {"answers": len(rows)}
        for name, scorer in scorers.items():
            pred = scorer(prefixes)
            within = [
                spearmanr(pred[g == q], y[g == q]).statistic
                for q in np.unique(g)
                if np.ptp(y[g == q]) > 0 and np.ptp(pred[g == q]) > 0
            ]
            entry[name] = {
                "pooled": float(spearmanr(pred, y).statistic),
                "within_prompt": float(np.mean(within)) if within else float("nan"),
            }
        out[f"step_{k}"] = entry
    return out


def learned_vs_bon(rows: list[dict], budgets: list[int]) -> list[dict]:
    """Per budget: the best learned-only (method, final pick) by win rate against plain
    Best-of-N, and how its mean gold compares with the rule-gated control's; the learned pair
    with the highest mean gold against the control; and each of FIXED_PAIRS (no selection)."""
    out = []
    for b in budgets:
        at = {r["method"]: r for r in rows if r["budget"] == b}
        learned = {m: r for m, r in at.items() if "legal" not in m and m != "bon"}
        best = max(learned.values(), key=lambda r: (r["win_rate"], r["mean_gold"]))
        by_gold = max(learned.values(), key=lambda r: (r["mean_gold"], r["win_rate"]))
        control = at[CONTROL]
        out.append(
            {
                "budget": b,
                "best_learned": best["method"],
                "win_rate_vs_bon": best["win_rate"],
                "mean_gold": best["mean_gold"],
                "solved": best["solved"],
                "bon_gold": at["bon"]["mean_gold"],
                "control_gold": control["mean_gold"],
                "control_win_rate_vs_bon": control["win_rate"],
                "matches_control": best["mean_gold"] >= control["mean_gold"],
                "best_gold_learned": by_gold["method"],
                "best_gold": by_gold["mean_gold"],
                "best_gold_matches_control": by_gold["mean_gold"] >= control["mean_gold"],
                "fixed_pairs": {
                    m: {
                        "win_rate_vs_bon": at[m]["win_rate"],
                        "mean_gold": at[m]["mean_gold"],
                        "matches_control": at[m]["mean_gold"] >= control["mean_gold"],
                    }
                    for m in FIXED_PAIRS
                    if m in at
                },
            }
        )
    return out


def win_interval(records: list[dict], method: str, budget: int, resamples: int = 2000) -> list:
    """95% bootstrap interval (over prompts) of `method`'s win rate against plain Best-of-N at
    `budget`, ties counting half, as in compare.summarize."""
    gold = {}
    for r in records:
        if r["budget"] == budget and r["method"] in (method, "bon"):
            gold.setdefault(r["method"], {})[r["prompt_index"]] = r["gold"]
    prompts = sorted(gold["bon"])
    a = np.array([gold[method][i] for i in prompts])
    b = np.array([gold["bon"][i] for i in prompts])
    score = (a > b) + 0.5 * (a == b)
    picks = np.random.default_rng(0).integers(0, len(score), (resamples, len(score)))
    return [float(x) for x in np.percentile(score[picks].mean(axis=1), [2.5, 97.5])]


def add_intervals(summary: list[dict], records: list[dict]) -> None:
    """Each budget's best learned search gets the interval of its win rate (selected as the best
    of many (method, pick) pairs on these same prompts, so its own rate leans high)."""
    for row in summary:
        row["win_rate_ci95"] = win_interval(records, row["best_learned"], row["budget"])


def run_searches(suite, searches, prompts, budgets, settings, timings: dict) -> list:
    """Every (search, process scorer) pair at every budget, each answer re-picked by every
    final judge but the proxy; the same seeds for every search, so only the method and its
    scorer differ."""
    finals = [f for f in compare.FINALS if f != "proxy"]
    records = []
    for method, process in searches:
        t = time.time()
        s = replace(settings, process=process or settings.process)
        found = compare.evaluate(suite, [method], prompts, budgets, s, seed=2, finals=finals)
        label = method if process is None else f"{method}({process})"
        for r in found:
            r.method = r.method.replace(method, label, 1)
        records += found
        timings[label] = round(time.time() - t, 1)
        print(f"{label} done in {time.time() - t:.0f}s", flush=True)
    return records


def run_steps(args, machine: dict) -> int:
    task_name = args.task
    root = Path(args.assets) if args.assets else shipped_root(task_name)
    suite = load_countdown(root)
    if suite.prm is None:
        raise SystemExit(f"no prm/ under {root}; run `forethought lm train-prm --out {root}`")
    n_prompts = args.prompts or (30 if args.quick else 100)
    max_new = suite.task.max_new_tokens
    budgets = _budgets(args, max_new)
    settings = with_overrides(
        compare.SearchSettings(max_new_tokens=max_new, process="prm"), args.set
    )
    problems = suite.task.make_problems(n_prompts, seed=args.problem_seed)
    prompts = [p.prompt for p in problems]
    result = _header(args, machine, root, n_prompts, budgets, settings)
    held_out = problems[: n_prompts // 2]
    result["correlation_by_step"] = timed(result, "correlation_by_step", lambda: (
        correlation_by_step(suite, held_out, 16, max_new)))  # fmt: skip
    result["bon_sweep"] = timed(result, "bon_sweep", lambda: compare.bon_sweep(
        suite, prompts, [1, 4, 16, 32], settings, seed=1))  # fmt: skip
    searches = _chosen(args.searches)
    result["searches"] = [m if p is None else f"{m}({p})" for m, p in searches]
    records = run_searches(suite, searches, prompts, budgets, settings, result["timings_s"])
    rows = compare.summarize(records)
    result["budget_sweep"] = rows
    result["learned_vs_bon"] = learned_vs_bon(rows, budgets)
    raw = [
        {k: v for k, v in r.items() if k not in ("prompt", "response")}
        for r in compare.records_as_dicts(records)
    ]
    add_intervals(result["learned_vs_bon"], raw)
    bon16 = next(r for r in result["bon_sweep"] if r["n"] == 16)
    result["best_of_16"] = bon16
    result["tokens_to_match_bon16"] = tokens_to_match(rows, bon16)
    result["records"] = raw
    out = (
        Path(args.out)
        if args.out != _default_out()
        else RESULTS / f"lm_search_steps_{task_name}.json"
    )
    out.write_text(json.dumps(result, indent=1))
    plot = compare.plot_reward_vs_budget(
        [r for r in rows if r["method"] in _plotted(rows)], str(out.with_suffix(".png"))
    )
    for r in result["learned_vs_bon"]:
        print(json.dumps(r))
    print(f"wrote {out} and {plot}")
    _write_depth_summary()
    return 0


def with_overrides(settings, pairs: list[str]):
    """`settings` with each 'key=value' in `pairs` applied, the value cast to the field's type."""
    changes = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not hasattr(settings, key.strip()):
            raise SystemExit(f"--set: expected KEY=VALUE with KEY a search setting, got {pair!r}")
        key = key.strip()
        kind = type(getattr(settings, key))
        try:
            changes[key] = kind(text) if kind is not bool else text.lower() in ("1", "true")
        except ValueError:
            raise SystemExit(
                f"--set {key}: expected a value of type {kind.__name__}, got {text!r}"
            ) from None
    try:
        return replace(settings, **changes)
    except Exception as e:  # the settings' own validation, e.g. a negative width
        raise SystemExit(f"--set: {e}") from None


def _header(args, machine: dict, root: Path, n_prompts: int, budgets: list, settings) -> dict:
    """What the run was: machine, task, prompts, settings, and the models' own records."""
    result = {
        "machine": machine,
        "task": args.task,
        "quick": args.quick,
        "prompts": n_prompts,
        "budgets": budgets,
        "settings": settings.__dict__,
        "held_out_seed": args.problem_seed,
        "overrides": list(args.set),
        "timings_s": {},
    }
    for name in ("meta.json", "prm.json"):
        if (root / name).exists():
            result[name.removesuffix(".json")] = json.loads((root / name).read_text())
    return result


def _budgets(args, max_new: int) -> list[int]:
    """--budgets when given, else 32-1024 from one answer's length up (three with --quick)."""
    if args.budgets:
        return _parse_budgets(args.budgets, max_new)
    budgets = [b for b in [32, 64, 128, 256, 512, 1024] if b >= max_new]
    return [b for b in budgets if b in (64, 256, 1024)] if args.quick else budgets


def _parse_budgets(text: str, max_new: int) -> list[int]:
    try:
        budgets = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise SystemExit(f"--budgets: expected comma-separated integers, got {text!r}") from None
    if not budgets or budgets[0] < max_new:
        raise SystemExit(f"--budgets: each budget must be >= one answer ({max_new} tokens)")
    return budgets


def _default_out() -> str:
    return str(RESULTS / "lm_search.json")


def _plotted(rows: list[dict]) -> set[str]:
    """Plain Best-of-N, the control, and each method with its best final pick on average."""
    keep = {"bon", CONTROL}
    for m in {r["method"].split(" [")[0] for r in rows} - {"bon"}:
        mine = [r for r in rows if r["method"].split(" [")[0] == m and "legal" not in r["method"]]
        by = {}
        for r in mine:
            by.setdefault(r["method"], []).append(r["mean_gold"])
        keep.add(max(by, key=lambda k: np.mean(by[k])))
    return keep


def _chosen(text: str | None) -> list[tuple[str, str | None]]:
    """The searches named in `text` ('bon,mcts(value),...'; all of SEARCHES when None)."""
    if not text:
        return SEARCHES
    labels = {m if p is None else f"{m}({p})": (m, p) for m, p in SEARCHES + ON_REQUEST}
    wanted = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in wanted if x not in labels]
    if unknown or "bon" not in wanted:
        raise SystemExit(f"--searches: choose from {', '.join(labels)}, bon included; got {text!r}")
    return [labels[x] for x in wanted]


def _write_depth_summary() -> None:
    """With both tasks measured: the best learned win rate by budget on each, side by side."""
    files = {t: RESULTS / f"lm_search_steps_{t}.json" for t in ("countdown", "countdown-hard")}
    if not all(f.exists() for f in files.values()):
        return
    data = {t: json.loads(f.read_text()) for t, f in files.items()}
    shared = sorted(set(data["countdown"]["budgets"]) & set(data["countdown-hard"]["budgets"]))
    table = []
    for b in shared:
        row = {"budget": b}
        for t, d in data.items():
            r = next(x for x in d["learned_vs_bon"] if x["budget"] == b)
            row[t] = {
                k: r[k] for k in ("best_learned", "win_rate_vs_bon", "mean_gold", "control_gold")
            }
        table.append(row)
    mean_win = {t: float(np.mean([row[t]["win_rate_vs_bon"] for row in table])) for t in data}
    summary = {
        "by_budget": table,
        "mean_best_win_rate": mean_win,
        "gain_grows_with_depth": mean_win["countdown-hard"] > mean_win["countdown"],
    }
    (RESULTS / "lm_search_steps.json").write_text(json.dumps(summary, indent=1))
    print(
        json.dumps(summary["mean_best_win_rate"]),
        "gain grows with depth:",
        summary["gain_grows_with_depth"],
    )


if __name__ == "__main__":  # recompute the summary (and intervals) of results already written
    import sys

    for name in sys.argv[1:]:
        data = json.loads(Path(name).read_text())
        data["learned_vs_bon"] = learned_vs_bon(data["budget_sweep"], data["budgets"])
        add_intervals(data["learned_vs_bon"], data["records"])
        Path(name).write_text(json.dumps(data, indent=1))
        for r in data["learned_vs_bon"]:
            print(name, r["budget"], r["best_learned"], r["win_rate_vs_bon"], r["win_rate_ci95"])
