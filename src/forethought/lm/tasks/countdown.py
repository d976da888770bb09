"""Countdown: reach a target number from given numbers with + - * /.

Text format (one character per token with `chartok`):

    prompt    "12,3,7>27:"            numbers, '>' target, ':' starts the answer
    response  "12+3=15;15+7=22;"      steps 'a<op>b=c' each ending in ';' (the step delimiter)

Rules: each given number, and each intermediate result, may be used at most once; division must
be exact; results stay in 1..MAX_RESULT; the answer is solved when every step is valid and the last result equals the target.

The gold verifier gives graded partial credit so that search has a signal beyond solved/not:
1.0 when solved, otherwise 0.3 x (fraction of steps valid before the first invalid one)
+ 0.5 x closeness of the last valid result to the target (so at most 0.8).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

STEP_DELIMITER = ";"
_STEP = re.compile(r"^(\d+)([+\-*/])(\d+)=(\d+)$")
# Small numbers keep the arithmetic facts few enough (about a thousand) for a ~1M-parameter
# model to pick up in minutes of CPU training, and answers short (<= ~30 characters).
MAX_NUMBER = 9  # given numbers are drawn from 1..MAX_NUMBER
MAX_RESULT = 40  # no step may produce a larger number
_VALID_CREDIT, _CLOSE_CREDIT = 0.3, 0.5


@dataclass(frozen=True)
class Problem:
    numbers: tuple[int, ...]
    target: int
    solution: tuple[str, ...]
    """One valid list of steps reaching the target (how the problem was made)."""

    @property
    def prompt(self) -> str:
        return ",".join(map(str, self.numbers)) + f">{self.target}:"


def _apply(a: int, op: str, b: int) -> int | None:
    """Result of `a op b` under the rules, or None when the step is not allowed."""
    if op == "+":
        c = a + b
    elif op == "-":
        c = a - b  # must stay positive (checked below)
    elif op == "*":
        c = a * b
    else:
        c = a // b if b > 1 and a % b == 0 else None
    return c if c is not None and 1 <= c <= MAX_RESULT else None


def _random_step(pool: list[int], rng: random.Random) -> tuple[str, list[int]] | None:
    """Combine two numbers of `pool` with a random allowed op; the new pool, or None."""
    for _ in range(20):
        i, j = rng.sample(range(len(pool)), 2)
        a, b = pool[i], pool[j]
        op = rng.choice("+-*/")
        c = _apply(a, op, b)
        if c is not None:
            rest = [x for k, x in enumerate(pool) if k not in (i, j)]
            return f"{a}{op}{b}={c}", [*rest, c]
    return None


def make_problem(rng: random.Random, min_numbers: int = 3, max_numbers: int = 4) -> Problem:
    """A solvable problem: random numbers combined by random allowed steps give the target."""
    while True:
        numbers = [rng.randint(1, MAX_NUMBER) for _ in range(rng.randint(min_numbers, max_numbers))]
        pool, steps = list(numbers), []
        while len(pool) > 1:
            step = _random_step(pool, rng)
            if step is None:
                break
            steps.append(step[0])
            pool = step[1]
        if len(pool) == 1 and 1 <= pool[0] <= MAX_RESULT and pool[0] not in numbers:
            rng.shuffle(numbers)
            return Problem(tuple(numbers), pool[0], tuple(steps))


def make_problems(n: int, seed: int, exclude: set[str] | None = None) -> list[Problem]:
    """`n` distinct problems from `seed`, skipping any whose prompt is in `exclude`."""
    rng, seen, out = random.Random(seed), set(exclude or ()), []
    while len(out) < n:
        p = make_problem(rng)
        if p.prompt not in seen:
            seen.add(p.prompt)
            out.append(p)
    return out


def parse_prompt(prompt: str) -> tuple[list[int], int]:
    """Numbers and target from a prompt like '12,3,7>27:'."""
    head = prompt.strip().rstrip(":")
    nums, target = head.split(">")
    return [int(x) for x in nums.split(",")], int(target)


def score(prompt: str, response: str) -> float:
    """Gold reward in [0, 1] with partial credit (see module docstring)."""
    numbers, target = parse_prompt(prompt)
    steps = [s for s in response.strip().split(STEP_DELIMITER) if s]
    pool, valid, last = Counter(numbers), 0, None
    for step in steps:
        m = _STEP.match(step)
        if not m:
            break
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        need = Counter([a, b])
        if any(pool[k] < v for k, v in need.items()) or _apply(a, op, b) != c:
            break
        pool -= need
        pool[c] += 1
        valid, last = valid + 1, c
    if steps and valid == len(steps) and last == target:
        return 1.0
    frac_valid = valid / len(steps) if steps else 0.0
    close = max(0.0, 1.0 - abs(last - target) / target) if last is not None else 0.0
    return _VALID_CREDIT * frac_valid + _CLOSE_CREDIT * close


def steps_legal(prompt: str, partial: str) -> float:
    """1.0 if every *completed* step of a (partial) answer obeys the rules, else 0.0.

    A process check for search: it reads only the prompt's numbers and the text so far, never
    the target or a known solution, so it says whether the work is legal, not whether it is
    heading anywhere. A step counts as completed once its delimiter is written; the unfinished
    tail is not judged.
    """
    numbers, _ = parse_prompt(prompt)
    pool = Counter(numbers)
    for step in partial.split(STEP_DELIMITER)[:-1]:  # the last piece is the unfinished tail
        m = _STEP.match(step)
        if not m:
            return 0.0
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        need = Counter([a, b])
        if any(pool[k] < v for k, v in need.items()) or _apply(a, op, b) != c:
            return 0.0
        pool -= need
        pool[c] += 1
    return 1.0


def demonstration(problem: Problem, rng: random.Random) -> str:
    """An imperfect demonstration: a mixture of solutions, wandering, slips and inventions.

    Training on this mixture gives a generator whose samples vary in quality, which is what
    makes choosing among samples (search) worth anything.
    """
    kind = rng.choices(["solve", "wander", "slip", "invent"], weights=[35, 30, 25, 10])[0]
    steps = list(problem.solution)
    if kind == "wander":  # valid steps chosen at random: correct arithmetic, wrong goal
        pool, steps = list(problem.numbers), []
        while len(pool) > 1 and (step := _random_step(pool, rng)) is not None:
            steps.append(step[0])
            pool = step[1]
    elif kind == "slip":  # one arithmetic error, later steps consistent with the wrong value
        k = rng.randrange(len(steps))
        m = _STEP.match(steps[k])
        wrong = max(1, int(m[4]) + rng.choice([-1, 1]) * rng.randint(1, 9))
        steps[k] = f"{m[1]}{m[2]}{m[3]}={wrong}"
        for j in range(k + 1, len(steps)):
            steps[j] = steps[j].replace(m[4], str(wrong), 1)
            mj = _STEP.match(steps[j])
            res = _apply(int(mj[1]), mj[2], int(mj[3])) if mj else None
            steps[j] = f"{mj[1]}{mj[2]}{mj[3]}={res if res is not None else rng.randint(1, 99)}"
    elif kind == "invent":  # uses a number that is not available
        m = _STEP.match(steps[0])
        a = rng.randint(1, MAX_NUMBER)
        res = _apply(a, m[2], int(m[3]))
        steps = [f"{a}{m[2]}{m[3]}={res if res is not None else a + int(m[3])}"]
    return "".join(s + STEP_DELIMITER for s in steps)
