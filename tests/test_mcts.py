"""Tree search on small problems whose values are known: trees with a greedy trap, noisy
bandits, visit concentration, Gumbel root selection under a tiny budget, batching and seeds."""

import pytest
import torch

from forethought.errors import ConfigError
from forethought.planners.mcts import TreeSearchConfig, halving_schedule, search


class TableTree:
    """A known tree: the state is a node id, `table[node, action]` gives (child, reward, done).
    Rewards may carry Gaussian noise."""

    def __init__(self, children, rewards, done, noise=0.0, seed=0):
        self.children = torch.tensor(children)
        self.rewards = torch.tensor(rewards, dtype=torch.float32)
        self.done = torch.tensor(done)
        self.noise = noise
        self.generator = torch.Generator().manual_seed(seed)
        self.calls = 0

    def step(self, states, actions):
        self.calls += 1
        node = states[:, 0].long()
        reward = self.rewards[node, actions]
        if self.noise:
            reward = reward + self.noise * torch.randn(reward.shape, generator=self.generator)
        return self.children[node, actions].float().unsqueeze(1), reward, self.done[node, actions]

    def value(self, states):
        return torch.zeros(states.shape[0])


def trap():
    """Root action 0 pays 1 at once and nothing after; action 1 pays 0, then 3 for action 1
    (0 for action 0). Optimal: 1 then 1, worth 3 (discount 1); greedy takes 0."""
    #            node 0: root      node 1: after 0   node 2: after 1   node 3: end
    children = [[1, 2], [3, 3], [3, 3], [3, 3]]
    rewards = [[1.0, 0.0], [0.0, 0.0], [0.0, 3.0], [0.0, 0.0]]
    done = [[False, False], [True, True], [True, True], [True, True]]
    return TableTree(children, rewards, done)


def bandit(means, noise=0.0, seed=0):
    k = len(means)
    return TableTree([[1] * k, [1] * k], [means, [0.0] * k], [[True] * k] * 2, noise, seed)


RULES = [("uct", 1.5), ("puct", 5.0), ("gumbel", 1.25)]


@pytest.mark.parametrize(("rule", "c"), RULES)
def test_finds_the_optimal_action_past_a_greedy_trap(rule, c):
    config = TreeSearchConfig(simulations=24, rule=rule, exploration=c, discount=1.0)
    result = search(trap(), torch.zeros(4, 1), 2, config, torch.Generator().manual_seed(0))
    assert result.action.tolist() == [1, 1, 1, 1]
    torch.testing.assert_close(result.q[:, 0], torch.full((4,), 1.0))  # the trap, exactly
    # Mean backups include the exploratory visits, so the better branch is below its optimum 3.
    assert (result.q[:, 1] > 1.5).all() and (result.q[:, 1] < 3.0).all()


@pytest.mark.parametrize(("rule", "c"), RULES)
def test_picks_the_best_arm_of_a_noisy_bandit(rule, c):
    means = [0.2, 0.5, 0.8, 0.4]  # noise std 0.5: single pulls mislead often
    config = TreeSearchConfig(simulations=96, rule=rule, exploration=c)
    result = search(bandit(means, noise=0.5), torch.zeros(200, 1), 4, config, torch.Generator())
    assert (result.action == 2).float().mean() > 0.85


def test_visits_concentrate_on_the_best_arm_as_simulations_grow():
    means = [0.2, 0.5, 0.8, 0.4]
    share = []
    for simulations in (8, 32, 256):
        config = TreeSearchConfig(simulations=simulations, rule="uct", exploration=0.5)
        result = search(bandit(means, 0.3), torch.zeros(100, 1), 4, config, torch.Generator())
        share.append(float((result.visits[:, 2] / result.visits.sum(1)).mean()))
    assert share[0] < share[1] < share[2] and share[2] > 0.8, share


def test_gumbel_beats_uct_with_two_to_four_simulations_given_a_prior():
    """8 arms, a prior that knows roughly which are good: with 2-4 simulations UCT can only try
    arms in turn, Gumbel samples the promising ones and still uses what it sees."""
    generator = torch.Generator().manual_seed(0)
    problems, arms = 2000, 8
    means = torch.rand(problems, arms, generator=generator)
    prior = 3.0 * means + 0.5 * torch.randn(problems, arms, generator=generator)
    best = means.argmax(dim=1)

    class PerProblemBandit:  # problem b's arm a pays means[b, a]
        def step(self, states, actions):
            rows = states[:, 0].long()
            return states, means[rows, actions], torch.ones_like(actions, dtype=torch.bool)

        def value(self, states):
            return torch.zeros(states.shape[0])

    roots = torch.arange(problems, dtype=torch.float32).unsqueeze(1)
    for simulations in (2, 3, 4):
        hits = {}
        for rule in ("uct", "gumbel"):
            config = TreeSearchConfig(simulations=simulations, rule=rule)
            result = search(PerProblemBandit(), roots, arms, config, generator, prior)
            hits[rule] = float((result.action == best).float().mean())
        assert hits["gumbel"] > hits["uct"] + 0.1, (simulations, hits)


def test_one_batched_call_per_simulation_and_independent_problems():
    tree = trap()
    config = TreeSearchConfig(simulations=10, rule="uct", discount=1.0)
    result = search(tree, torch.zeros(7, 1), 2, config, torch.Generator().manual_seed(1))
    assert tree.calls <= 10  # one step call per simulation for all 7 problems together
    assert (result.visits.sum(dim=1) == 10).all()  # every simulation passes through the root


@pytest.mark.parametrize("walks", [1, 7])  # one simulation per model call, or waves of 7
def test_same_seed_same_search(walks):
    config = TreeSearchConfig(simulations=32, parallel_simulations=walks)
    runs = [
        search(bandit([0.1, 0.3, 0.2], 1.0, seed=3), torch.zeros(16, 1), 3, config,
               torch.Generator().manual_seed(5))
        for _ in range(2)
    ]  # fmt: skip
    assert torch.equal(runs[0].action, runs[1].action)
    assert torch.equal(runs[0].visits, runs[1].visits)
    assert torch.equal(runs[0].q.nan_to_num(), runs[1].q.nan_to_num())


def test_halving_schedule_spreads_simulations_evenly_then_halves():
    assert halving_schedule(4, 8) == [0, 0, 0, 0, 1, 1, 2, 2]
    schedule = halving_schedule(16, 64)
    assert len(schedule) == 64 and schedule[:16] == [0] * 16
    assert halving_schedule(1, 3) == [0, 1, 2]


def test_bad_settings_name_the_flag():
    with pytest.raises(ConfigError, match=r"mcts\.simulations"):
        TreeSearchConfig(simulations=0).validate()
    with pytest.raises(ConfigError, match=r"mcts\.discount"):
        TreeSearchConfig(discount=1.5).validate()
    with pytest.raises(ConfigError, match=r"mcts\.parallel-simulations"):
        TreeSearchConfig(parallel_simulations=0).validate()


@pytest.mark.parametrize(("rule", "c"), RULES)
def test_virtual_losses_keep_the_walks_of_one_wave_apart(rule, c):
    """Four walks in one wave over four untried arms: each takes a different arm, and the
    four new nodes are expanded in a single simulator call."""
    tree = bandit([0.2, 0.5, 0.8, 0.4])
    config = TreeSearchConfig(simulations=4, parallel_simulations=4, rule=rule, exploration=c)
    result = search(tree, torch.zeros(5, 1), 4, config, torch.Generator().manual_seed(0))
    assert tree.calls == 1
    assert (result.visits == 1).all(), result.visits


@pytest.mark.parametrize(
    ("rule", "c", "walks"), [("uct", 1.5, 2), ("puct", 5.0, 4), ("gumbel", 1.25, 4)]
)
def test_waves_of_simulations_still_find_the_optimum(rule, c, walks):
    """Past the greedy trap and to the best noisy arm with `walks` simulations per model call.
    (UCT with 4 per wave falls into the trap: with two root actions, the virtual losses split
    every wave between them, and the trap's exact 1 beats the other branch's early mean.)"""
    tree = trap()
    config = TreeSearchConfig(
        simulations=24, parallel_simulations=walks, rule=rule, exploration=c, discount=1.0
    )
    result = search(tree, torch.zeros(4, 1), 2, config, torch.Generator().manual_seed(0))
    assert result.action.tolist() == [1, 1, 1, 1]
    assert tree.calls <= 24 // walks  # one call per wave
    assert (result.visits.sum(dim=1) == 24).all()  # walks sharing a new edge are all counted
    means = [0.2, 0.5, 0.8, 0.4]
    config = TreeSearchConfig(simulations=96, parallel_simulations=4, rule=rule, exploration=c)
    result = search(bandit(means, noise=0.5), torch.zeros(400, 1), 4, config, torch.Generator())
    assert (result.action == 2).float().mean() > 0.85
