"""The Countdown task: problems are solvable, the gold verifier grades as documented."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forethought.lm.tasks import countdown as cd


@pytest.mark.parametrize(
    "prompt,response,expected",
    [
        ("3,5>8:", "3+5=8;", 1.0),
        ("3,5,2>16:", "3+5=8;8*2=16;", 1.0),
        ("3,5>8:", "3+5=9;", 0.0),  # wrong arithmetic in the first step: no credit
        ("3,5>8:", "3*5=15;", 0.3 + 0.5 * (1 - 7 / 8)),  # valid but 7 away from 8
        ("3,5>8:", "3+3=6;", 0.0),  # 3 is given once, used twice
        ("3,5,2>16:", "3+5=8;8*2=15;", 0.3 * 0.5 + 0.5 * 0.5),  # 8 is halfway, then a slip
        ("3,5>8:", "", 0.0),
        ("6,3>2:", "6/3=2;", 1.0),
        ("7,3>2:", "7/3=2;", 0.0),  # division must be exact
        ("3,5>2:", "3-5=2;", 0.0),  # results stay positive
    ],
)
def test_gold_score_known_values(prompt, response, expected):
    assert cd.score(prompt, response) == pytest.approx(expected)


def test_every_generated_problem_is_solved_by_its_solution():
    for p in cd.make_problems(300, seed=5):
        assert cd.score(p.prompt, "".join(s + ";" for s in p.solution)) == 1.0
        assert p.target not in p.numbers


def test_problem_sets_are_deterministic_and_can_exclude():
    a = cd.make_problems(50, seed=1)
    assert [p.prompt for p in a] == [p.prompt for p in cd.make_problems(50, seed=1)]
    b = cd.make_problems(50, seed=2, exclude={p.prompt for p in a})
    assert not {p.prompt for p in a} & {p.prompt for p in b}


def test_demonstrations_vary_in_quality():
    rng = random.Random(0)
    scores = [cd.score(p.prompt, cd.demonstration(p, rng)) for p in cd.make_problems(400, seed=3)]
    solved = sum(s == 1.0 for s in scores) / len(scores)
    assert 0.25 < solved < 0.75  # a mixture: neither all right nor all wrong
    assert len({round(s, 2) for s in scores}) > 5  # graded, not binary


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(alphabet="0123456789+-*/=;", max_size=40))
def test_score_is_bounded_for_any_response(response):
    assert 0.0 <= cd.score("4,9,2>17:", response) <= 1.0


@pytest.mark.parametrize(
    "prompt,partial,expected",
    [
        ("3,4,5>12:", "", 1.0),
        ("3,4,5>12:", "3+4=7;", 1.0),
        ("3,4,5>12:", "3+4=7;7+5=12;", 1.0),
        ("3,4,5>12:", "3+4=7;7*", 1.0),  # the unfinished tail is not judged
        ("3,4,5>12:", "3+4=7;7*9=6", 1.0),  # ... even when it will be wrong
        ("3,4,5>12:", "3+4=8;", 0.0),  # wrong arithmetic
        ("3,4,5>12:", "3+3=6;", 0.0),  # 3 is given once
        ("3,4,5>12:", "7+5=12;", 0.0),  # 7 is not available yet
        ("3,4,5>12:", "3+4=7;3+5=8;", 0.0),  # 3 was used up by the first step
        ("3,4,5>12:", "3+4=7;;", 0.0),  # an empty step is not a step
        ("7,3>2:", "7/3=2;", 0.0),  # division must be exact
    ],
)
def test_steps_legal_judges_completed_steps_only(prompt, partial, expected):
    assert cd.steps_legal(prompt, partial) == expected


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(alphabet="0123456789+-*/=;", max_size=30), st.integers(1, 40))
def test_steps_legal_never_reads_the_target(partial, target):
    # The check is a process scorer for search, so it must not know where the answer should
    # end up: changing only the target never changes its verdict.
    assert cd.steps_legal(f"4,9,2>{target}:", partial) == cd.steps_legal("4,9,2>17:", partial)


def test_illegal_steps_are_never_solved_and_solutions_are_legal():
    rng = random.Random(1)
    for p in cd.make_problems(300, seed=6):
        text = cd.demonstration(p, rng)
        if cd.steps_legal(p.prompt, text) == 0.0:
            assert cd.score(p.prompt, text) < 1.0
        assert cd.steps_legal(p.prompt, "".join(s + ";" for s in p.solution)) == 1.0
