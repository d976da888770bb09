"""Planners on toy objectives with known optima (no environment or model involved)."""

import math

import pytest
import torch

from forethought.errors import ConfigError
from forethought.planners import (
    DISCRETE_PLANNERS,
    PLANNERS,
    PlannerConfig,
    colored_noise,
    make_planner,
)

BOX_PLANNERS = sorted(set(PLANNERS) - set(DISCRETE_PLANNERS))  # discrete-cem: test_discrete_control

LOWER, UPPER = -torch.ones(2), torch.ones(2)


def quadratic(target):
    """Maximised exactly at `target` (B x H x A), value 0."""

    def objective(candidates):  # B x P x H x A -> B x P
        return -((candidates - target.unsqueeze(1)) ** 2).sum(dim=(-1, -2))

    return objective


def two_peaks(candidates):
    """Per coordinate: a local peak (height 1) at 0, the middle of the box where every planner
    starts, and the global peak (height 2) at 0.7."""
    x = candidates
    width = 2 * 0.1**2
    per_coord = torch.exp(-(x**2) / width) + 2.0 * torch.exp(-((x - 0.7) ** 2) / width)
    return per_coord.sum(dim=(-1, -2))


CONFIGS = {
    "random": PlannerConfig(horizon=1, population=4000, iterations=1, elites=1),
    "cem": PlannerConfig(horizon=4, population=300, iterations=8, elites=30),
    # White noise here: these targets are independent from step to step, which is exactly what
    # iCEM's default coloured noise (smooth sequences) is not meant for.
    "icem": PlannerConfig(horizon=4, population=300, iterations=8, elites=30, noise_beta=0.0),
    # MPPI's noise scale stays fixed, so its precision is set by init_std (about a quarter of it).
    "mppi": PlannerConfig(horizon=4, population=300, iterations=15, init_std=0.1, temperature=0.1),
}
TOLERANCE = {"random": 0.1, "cem": 0.03, "icem": 0.05, "mppi": 0.05}


@pytest.mark.parametrize("name", BOX_PLANNERS)
def test_finds_quadratic_optimum_for_each_problem_in_a_batch(name):
    cfg = CONFIGS[name]
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(3, cfg.horizon, 2, generator=generator) * 1.6 - 0.8  # 3 different problems
    planner = make_planner(name, cfg, LOWER, UPPER)
    result = planner.plan(quadratic(target), batch=3, generator=generator)
    assert result.actions.shape == (3, cfg.horizon, 2)
    error = (result.actions - target).abs().max().item()
    assert error < TOLERANCE[name], f"{name}: max error {error:.3f}"
    assert (result.actions >= LOWER).all() and (result.actions <= UPPER).all()


@pytest.mark.parametrize("name", BOX_PLANNERS)
def test_escapes_local_optimum(name):
    # MPPI needs wide noise to see the far peak, which costs it precision at the end.
    wide_mppi = PlannerConfig(
        horizon=2, population=300, iterations=15, init_std=0.2, temperature=0.05
    )
    cfg = {**CONFIGS, "mppi": wide_mppi}[name]
    cfg = PlannerConfig(**{**cfg.__dict__, "horizon": 2 if name != "random" else 1})
    planner = make_planner(name, cfg, LOWER, UPPER)
    result = planner.plan(two_peaks, batch=1, generator=torch.Generator().manual_seed(1))
    value = two_peaks(result.actions.unsqueeze(1)).item()
    n_coords = cfg.horizon * 2
    # All coordinates at the local peak would score n_coords; the global optimum 2 * n_coords.
    assert value > 1.5 * n_coords, f"{name} stuck near the local optimum: {value:.2f}"
    assert (result.actions - 0.7).abs().max() < (0.15 if name == "mppi" else 0.1)


def test_icem_matches_cem_with_fewer_evaluations():
    """On a smooth sequence target (what control plans look like), iCEM reaches CEM's solution
    quality while scoring far fewer candidates: the point of Pinneri et al. (2020)."""
    horizon = 30
    t = torch.linspace(0, 1, horizon)
    target = torch.stack([0.8 * torch.sin(2 * math.pi * t), 0.5 * torch.cos(3 * math.pi * t)], -1)[
        None
    ]
    objective = quadratic(target)
    scores, evaluations = {}, {}
    for name, cfg in {
        "cem": PlannerConfig(horizon=horizon, population=500, iterations=6, elites=50),
        "icem": PlannerConfig(
            horizon=horizon, population=150, iterations=6, elites=15, noise_beta=2.0
        ),
    }.items():
        results = [
            make_planner(name, cfg, LOWER, UPPER).plan(
                objective, generator=torch.Generator().manual_seed(s)
            )
            for s in range(5)
        ]
        scores[name] = sum(objective(r.actions.unsqueeze(1)).item() for r in results) / len(results)
        evaluations[name] = results[0].evaluations
    assert evaluations["icem"] < 0.25 * evaluations["cem"], evaluations
    assert scores["icem"] >= scores["cem"] - 0.05, scores


def test_warm_start_is_kept_when_already_optimal():
    target = torch.full((1, 4, 2), 0.3)
    cfg = PlannerConfig(horizon=4, population=100, iterations=3, elites=10, init_std=0.05)
    for name in ("cem", "icem", "mppi"):
        result = make_planner(name, cfg, LOWER, UPPER).plan(
            quadratic(target), initial=target.clone(), generator=torch.Generator().manual_seed(0)
        )
        assert (result.actions - target).abs().max() < 0.05, name


def test_nan_scores_are_never_chosen():
    def objective(candidates):
        scores = -(candidates**2).sum(dim=(-1, -2))
        return torch.where(candidates[..., 0, 0] > 0.2, torch.nan, scores)

    for name in BOX_PLANNERS:
        result = make_planner(name, CONFIGS[name], LOWER, UPPER).plan(
            objective, generator=torch.Generator().manual_seed(0)
        )
        assert torch.isfinite(result.score).all(), name


def test_colored_noise_has_unit_variance_and_the_right_colour():
    for beta in (0.0, 1.0, 2.0):
        for length in (1, 7, 30):
            x = colored_noise(beta, (20000, length), torch.Generator().manual_seed(0))
            assert abs(x.var().item() - 1.0) < 0.05, (beta, length)

    def lag1(beta):
        x = colored_noise(beta, (5000, 30), torch.Generator().manual_seed(0))
        return torch.corrcoef(torch.stack([x[:, :-1].flatten(), x[:, 1:].flatten()]))[0, 1].item()

    assert abs(lag1(0.0)) < 0.05
    assert lag1(2.0) > 0.8  # smooth, like the action sequences that work for control


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"horizon": 0}, "planning.horizon"),
        ({"population": 10, "elites": 20}, "planning.elites"),
        ({"iterations": 0}, "planning.iterations"),
        ({"temperature": 0.0}, "planning.temperature"),
    ],
)
def test_impossible_settings_name_the_field(changes, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        make_planner("cem", PlannerConfig(**changes), LOWER, UPPER)


def test_unknown_planner_and_bad_bounds():
    with pytest.raises(ConfigError, match="unknown planner"):
        make_planner("nope", PlannerConfig(), LOWER, UPPER)
    with pytest.raises(ConfigError, match="upper bound"):
        make_planner("cem", PlannerConfig(), UPPER, LOWER)
