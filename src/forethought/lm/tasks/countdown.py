"""Countdown: reach a target number from given numbers with + - * /.

Text format (one character per token with `chartok`):

    prompt    "12,3,7>27:"            numbers, '>' target, ':' starts the answer
    response  "12+3=15;15+7=22;"      steps 'a<op>b=c' each ending in ';' (the step delimiter)

Rules: each given number, and each intermediate result, may be used at most once; division must
be exact; results stay in 1..max_result; the answer is solved when every step is valid and the
last result equals the target.

Two settings are built in (`TASKS`): `countdown` (3-4 numbers, 2-3 steps, results up to 40; the
shipped models and published numbers use it) and `countdown-hard` (5-6 numbers, 4-5 steps,
results and targets up to 99), where an answer is long enough that judging it step by step can
cut a wrong branch early. A `CountdownTask` holds a setting; the module-level functions are the
default setting's methods.

The gold verifier gives graded partial credit so that search has a signal beyond solved/not:
1.0 when solved, otherwise 0.3 x (fraction of steps valid before the first invalid one)
+ 0.5 x closeness of the last valid result to the target (so at most 0.8).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

from forethought.errors import ConfigError

STEP_DELIMITER = ";"
_STEP = re.compile(r"^(\d+)([+\-*/])(\d+)=(\d+)$")
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


def parse_prompt(prompt: str) -> tuple[list[int], int]:
    """Numbers and target from a prompt like '12,3,7>27:'."""
    head = prompt.strip().rstrip(":")
    nums, target = head.split(">")
    return [int(x) for x in nums.split(",")], int(target)


def final_answer(response: str) -> int | None:
    """The result of the last complete step of `response` (what a majority vote counts), or None."""
    steps = [s for s in response.strip().split(STEP_DELIMITER) if s]
    m = _STEP.match(steps[-1]) if steps else None
    return int(m[4]) if m else None


@dataclass(frozen=True)
class CountdownTask:
    """One Countdown setting: how many numbers, how large, and how long an answer may be."""

    name: str
    min_numbers: int
    max_numbers: int
    max_number: int = 9
    """Given numbers are drawn from 1..max_number."""
    max_result: int = 40
    """No step may produce a larger number (targets are step results, so they stay below it)."""
    max_new_tokens: int = 24
    """Answer cap in tokens that fits the longest solution (6 tokens a step) with room to spare."""
    step_delimiter: str = STEP_DELIMITER

    def apply(self, a: int, op: str, b: int) -> int | None:
        """Result of `a op b` under the rules, or None when the step is not allowed."""
        if op == "+":
            c = a + b
        elif op == "-":
            c = a - b  # must stay positive (checked below)
        elif op == "*":
            c = a * b
        else:
            c = a // b if b > 1 and a % b == 0 else None
        return c if c is not None and 1 <= c <= self.max_result else None

    def random_step(self, pool: list[int], rng: random.Random) -> tuple[str, list[int]] | None:
        """Combine two numbers of `pool` with a random allowed op; the new pool, or None."""
        for _ in range(20):
            i, j = rng.sample(range(len(pool)), 2)
            a, b = pool[i], pool[j]
            op = rng.choice("+-*/")
            c = self.apply(a, op, b)
            if c is not None:
                rest = [x for k, x in enumerate(pool) if k not in (i, j)]
                return f"{a}{op}{b}={c}", [*rest, c]
        return None

    def make_problem(self, rng: random.Random) -> Problem:
        """A solvable problem: random numbers combined by random allowed steps give the target."""
        while True:
            count = rng.randint(self.min_numbers, self.max_numbers)
            numbers = [rng.randint(1, self.max_number) for _ in range(count)]
            pool, steps = list(numbers), []
            while len(pool) > 1:
                step = self.random_step(pool, rng)
                if step is None:
                    break
                steps.append(step[0])
                pool = step[1]
            if len(pool) == 1 and 1 <= pool[0] <= self.max_result and pool[0] not in numbers:
                rng.shuffle(numbers)
                return Problem(tuple(numbers), pool[0], tuple(steps))

    def make_problems(self, n: int, seed: int, exclude: set[str] | None = None) -> list[Problem]:
        """`n` distinct problems from `seed`, skipping any whose prompt is in `exclude`."""
        rng, seen, out = random.Random(seed), set(exclude or ()), []
        while len(out) < n:
            p = self.make_problem(rng)
            if p.prompt not in seen:
                seen.add(p.prompt)
                out.append(p)
        return out

    def _walk(self, prompt: str, steps: list[str]) -> tuple[int, int | None]:
        """How many of `steps` are valid before the first invalid one, and the last valid result."""
        numbers, _ = parse_prompt(prompt)
        pool, valid, last = Counter(numbers), 0, None
        for step in steps:
            m = _STEP.match(step)
            if not m:
                break
            a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
            need = Counter([a, b])
            if any(pool[k] < v for k, v in need.items()) or self.apply(a, op, b) != c:
                break
            pool -= need
            pool[c] += 1
            valid, last = valid + 1, c
        return valid, last

    def score(self, prompt: str, response: str) -> float:
        """Gold reward in [0, 1] with partial credit (see module docstring)."""
        _, target = parse_prompt(prompt)
        steps = [s for s in response.strip().split(STEP_DELIMITER) if s]
        valid, last = self._walk(prompt, steps)
        if steps and valid == len(steps) and last == target:
            return 1.0
        frac_valid = valid / len(steps) if steps else 0.0
        close = max(0.0, 1.0 - abs(last - target) / target) if last is not None else 0.0
        return _VALID_CREDIT * frac_valid + _CLOSE_CREDIT * close

    def solved(self, prompt: str, response: str) -> bool:
        return self.score(prompt, response) == 1.0

    def steps_legal(self, prompt: str, partial: str) -> float:
        """1.0 if every *completed* step of a (partial) answer obeys the rules, else 0.0.

        A process check for search: it reads only the prompt's numbers and the text so far,
        never the target or a known solution, so it says whether the work is legal, not whether
        it is heading anywhere. A step counts as completed once its delimiter is written; the
        unfinished tail is not judged.
        """
        done = partial.split(STEP_DELIMITER)[:-1]  # the last piece is the unfinished tail
        return 1.0 if self._walk(prompt, done)[0] == len(done) else 0.0

    def demonstration(self, problem: Problem, rng: random.Random) -> str:
        """An imperfect demonstration: a mixture of solutions, wandering, slips and inventions.

        Training on this mixture gives a generator whose samples vary in quality, which is what
        makes choosing among samples (search) worth anything.
        """
        kind = rng.choices(["solve", "wander", "slip", "invent"], weights=[35, 30, 25, 10])[0]
        steps = list(problem.solution)
        if kind == "wander":  # valid steps chosen at random: correct arithmetic, wrong goal
            pool, steps = list(problem.numbers), []
            while len(pool) > 1 and (step := self.random_step(pool, rng)) is not None:
                steps.append(step[0])
                pool = step[1]
        elif kind == "slip":  # one arithmetic error, later steps consistent with the wrong value
            steps = self._slip(steps, rng)
        elif kind == "invent":  # uses a number that is not available
            m = _STEP.match(steps[0])
            a = rng.randint(1, self.max_number)
            res = self.apply(a, m[2], int(m[3]))
            steps = [f"{a}{m[2]}{m[3]}={res if res is not None else a + int(m[3])}"]
        return "".join(s + STEP_DELIMITER for s in steps)

    def _slip(self, steps: list[str], rng: random.Random) -> list[str]:
        k = rng.randrange(len(steps))
        m = _STEP.match(steps[k])
        wrong = max(1, int(m[4]) + rng.choice([-1, 1]) * rng.randint(1, 9))
        steps[k] = f"{m[1]}{m[2]}{m[3]}={wrong}"
        for j in range(k + 1, len(steps)):
            steps[j] = steps[j].replace(m[4], str(wrong), 1)
            mj = _STEP.match(steps[j])
            res = self.apply(int(mj[1]), mj[2], int(mj[3])) if mj else None
            steps[j] = f"{mj[1]}{mj[2]}{mj[3]}={res if res is not None else rng.randint(1, 99)}"
        return steps


# Small numbers keep the arithmetic facts few enough for a ~1M-parameter model to pick up in
# minutes of CPU training; the hard setting keeps the numbers small and lengthens the answers.
TASKS = {
    "countdown": CountdownTask("countdown", 3, 4, max_result=40, max_new_tokens=24),
    "countdown-hard": CountdownTask("countdown-hard", 5, 6, max_result=99, max_new_tokens=36),
}
DEFAULT = TASKS["countdown"]
MAX_NUMBER, MAX_RESULT = DEFAULT.max_number, DEFAULT.max_result


def get_task(name: str) -> CountdownTask:
    """The built-in setting called `name`, or a one-line error listing them."""
    if name not in TASKS:
        raise ConfigError("task", f"must be one of {', '.join(TASKS)}, got {name!r}")
    return TASKS[name]


make_problem = DEFAULT.make_problem
make_problems = DEFAULT.make_problems
score = DEFAULT.score
steps_legal = DEFAULT.steps_legal
demonstration = DEFAULT.demonstration
