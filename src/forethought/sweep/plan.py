"""A sweep's trials: base settings x grid (or a list of variants) x seeds, each an ordinary
configuration of the swept command whose run directory lies under the sweep directory.

A spec file (TOML) says the same as the command-line flags:

    base_args = "--env Pendulum-v1 --max-episode-steps 200"
    seeds = [0, 1, 2]
    [grid]                    # product of every key's values (keys as in `train --help`)
    "planning.horizon" = [10, 20]
    [[variants]]              # and/or a list of settings, each one group
    algo = "mpc"
    episodes = 5
    [[variants]]
    algo = "sac"
    steps = 1000

`command = "lm-grpo"` (or "lm-selftrain") sweeps that command's options instead of train's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import re
import shlex
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import tyro

from forethought.errors import ConfigError
from forethought.sweep.kinds import COMMANDS, TrialKind, get_kind

SPEC_KEYS = ("command", "base_args", "seeds", "grid", "variants")


@dataclasses.dataclass(frozen=True)
class Plan:
    base_args: str
    seeds: list[int]
    groups: list[dict[str, Any]]  # one dict of settings per group (config without the seed)
    command: str = "train"


def parse_seeds(text: str, flag: str = "seeds") -> list[int]:
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ConfigError(flag, "give at least one seed, e.g. 0,1,2")
    try:
        seeds = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(flag, f"'{text}' is not a comma-separated list of integers") from None
    if len(set(seeds)) != len(seeds):
        raise ConfigError(flag, f"'{text}' repeats a seed")
    return seeds


def parse_grid(entries: tuple[str, ...] | list[str]) -> dict[str, list[Any]]:
    """`KEY=V1,V2` strings as {key: [values]} (values stay text; `coerce` types them)."""
    grid: dict[str, list[Any]] = {}
    for entry in entries:
        key, sep, values = entry.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ConfigError("grid", f"'{entry}' is not KEY=VALUE[,VALUE...], e.g. algo=mpc,sac")
        grid[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return grid


def read_spec(path: Path) -> tuple[str, str, list[int], dict[str, list[Any]], list[dict[str, Any]]]:
    """command, base_args, seeds, grid and variants of a TOML spec file."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("spec", f"{path} is not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(
            "spec", f"{path}: unknown keys {', '.join(unknown)} ({', '.join(SPEC_KEYS)})"
        )
    command = data.get("command", "train")
    if command not in COMMANDS:
        raise ConfigError("spec", f"{path}: command must be one of {', '.join(COMMANDS)}")
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise ConfigError("spec", f"{path}: seeds must be a list of integers, e.g. [0, 1, 2]")
    grid = data.get("grid", {})
    variants = data.get("variants", [])
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError("spec", f"{path}: every [grid] key needs a non-empty list of values")
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        raise ConfigError("spec", f"{path}: variants must be a list of tables ([[variants]])")
    base = data.get("base_args", "")
    seed_text = ",".join(str(s) for s in seeds)
    return command, str(base), parse_seeds(seed_text, "spec"), grid, variants


def groups_of(grid: dict[str, list[Any]], variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every variant (or one empty one) combined with every point of the grid's product."""
    keys = list(grid)
    points = [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]
    return [{**variant, **point} for variant in (variants or [{}]) for point in points]


def parse_base(base_args: str, kind: TrialKind) -> Any:
    """The command's options as its config; tyro's complaint becomes one line."""
    try:
        argv = shlex.split(base_args)
    except ValueError as exc:
        raise ConfigError(
            "base_args", f"'{base_args}' does not split into options ({exc})"
        ) from None
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            return tyro.cli(kind.config_class, args=argv)
    except SystemExit:
        lines = [ln.strip(" │─-╭╮╰╯|") for ln in captured.getvalue().splitlines()]
        said = [ln for ln in lines if ln and "helptext" not in ln and "usage" not in ln.lower()]
        raise ConfigError(
            "base_args",
            f"'{base_args}' is not valid for forethought {kind.cli}: {'; '.join(said[1:] or said)}",
        ) from None


def field_type(key: str, kind: TrialKind) -> Any:
    """The annotation of the config setting `key` (dotted for nested ones)."""
    cls: Any = kind.config_class
    parts = key.split(".")
    for i, name in enumerate(parts):
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        if name not in hints:
            raise ConfigError(
                "grid",
                f"unknown setting '{key}'; use a `forethought {kind.cli}` option without "
                "dashes (e.g. algo, episodes, planning.horizon for train; lr, steps for lm grpo)",
            )
        cls = hints[name]
        if i < len(parts) - 1 and not dataclasses.is_dataclass(cls):
            raise ConfigError("grid", f"unknown setting '{key}' ('{name}' has no sub-settings)")
    if dataclasses.is_dataclass(cls):
        raise ConfigError("grid", f"'{key}' is a group of settings; vary one of them ({key}.X)")
    return cls


def coerce(key: str, value: Any, trial_kind: TrialKind) -> Any:
    """`value` (text from --grid, or a TOML value) as the type of setting `key`."""
    kind = field_type(key, trial_kind)
    options = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if value is None or str(value).lower() == "none":
            return None
        kind = next(o for o in options if o is not type(None))
        options = typing.get_args(kind)
    try:
        if typing.get_origin(kind) is typing.Literal:
            if value not in options:
                raise ValueError(f"choose from {', '.join(map(str, options))}")
            return value
        if kind is bool:
            if isinstance(value, bool) or str(value).lower() in ("true", "false"):
                return value if isinstance(value, bool) else str(value).lower() == "true"
            raise ValueError("expected true or false")
        if kind in (int, float) and isinstance(value, bool):
            raise ValueError(f"expected {kind.__name__}")
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError("expected int")
        return kind(value) if kind in (int, float, str, Path) else value
    except (TypeError, ValueError) as exc:
        said = str(exc)
        reason = said if "choose" in said or "expected" in said else f"expected {kind.__name__}"
        raise ConfigError("grid", f"{key}={value!r}: {reason}") from None


def with_setting(config: Any, key: str, value: Any) -> Any:
    name, _, rest = key.partition(".")
    if rest:
        return dataclasses.replace(
            config, **{name: with_setting(getattr(config, name), rest, value)}
        )
    return dataclasses.replace(config, **{name: value})


def group_label(settings: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in settings.items()) or "base"


def trial_name(settings: dict[str, Any], seed: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", group_label(settings).replace("=", "-"))
    return f"{slug}-seed{seed}"


def expand(plan: Plan, sweep_dir: Path) -> list[dict[str, Any]]:
    """The trials of `plan` as JSON-ready records (name, group, seed, settings, command,
    run_dir, config)."""
    kind = get_kind(plan.command)
    base = parse_base(plan.base_args, kind)
    trials, names = [], set()
    for raw in plan.groups:
        settings = {k.replace("-", "_"): v for k, v in raw.items()}
        for key in settings:
            if key.split(".")[0] in kind.reserved:
                why = kind.reserved[key.split(".")[0]]
                raise ConfigError("grid", f"'{key}' cannot be set ({why})")
        settings = {k: coerce(k, v, kind) for k, v in settings.items()}
        group = base
        for key, value in settings.items():
            group = with_setting(group, key, value)
        for seed in plan.seeds:
            name = trial_name(settings, seed)
            if name in names:
                raise ConfigError("grid", f"two trials would both be {name}; remove the duplicate")
            names.add(name)
            trials.append(make_trial(kind, group, name, group_label(settings), seed, settings,
                                     Path(sweep_dir) / "trials" / name))  # fmt: skip
    return trials


def make_trial(kind: TrialKind, config: Any, name: str, group: str, seed: int,
               settings: dict[str, Any], run_dir: Path) -> dict[str, Any]:  # fmt: skip
    """One trial's record in sweep.json: its config with the seed and run directory set (and
    checked, so a bad setting fails before anything runs)."""
    return {
        "name": name,
        "group": group,
        "seed": seed,
        "settings": json.loads(json.dumps(settings, default=str)),
        "command": kind.command,
        "run_dir": str(run_dir),
        "config": kind.to_dict(kind.prepare(config, seed, run_dir)),
    }
