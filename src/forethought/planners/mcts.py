"""Monte-Carlo tree search over discrete actions, for B independent problems at once.

Each simulation walks every problem's tree from its root to a leaf (selection), asks the
simulator for the one new child (expansion: one batched `step` and one batched `value` call for
all B trees), and adds the leaf's return to every node on the path (backup). The trees are
tensors (B x nodes), so nothing loops over problems or actions; the loops that remain run over
simulations and over depth.

Selection rules (`TreeSearchConfig.rule`):

- "uct": the mean return plus c * sqrt(ln N / n), every action tried once first;
- "puct": the mean return plus c * prior * sqrt(N) / (1 + n), an unvisited action valued as
  its parent (AlphaZero's rule, with a uniform prior unless one is given);
- "gumbel": Gumbel MuZero (Danihelka et al. 2022). At the root, m actions are sampled without
  replacement by Gumbel-top-m on the prior, and sequential halving spreads the simulations over
  them, keeping the better half by g + logits + sigma(q) after each phase; the surviving action
  is played. Inside the tree the action whose visit share lags most behind the improved policy
  softmax(logits + sigma(q)) is visited. With few simulations this still improves on the prior,
  where UCT would spend them all trying actions once.

Returns are normalised to [0, 1] per node by the minimum and maximum of its parent's value and
its visited children's values, so c and sigma work whatever the scale of the rewards.

With `parallel_simulations` K > 1, K walks descend each tree before any of them is expanded,
and their K x B new nodes go to the simulator in one call (fewer, larger model calls: what a
learned model on any device is fastest at). Each walk leaves a virtual loss on its path (an
in-flight visit that counts as the worst return seen at that node), so the next walk of the
same wave prefers other branches; two walks that still pick the same new edge share its one
expansion.

The simulator is anything with `step(states N x S, actions N) -> (next_states, rewards, done)`
and `value(states N x S) -> N` (an estimate of the discounted return from a state): a learned
model in the agents, known toy trees in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from forethought.errors import require

TreeRule = Literal["uct", "puct", "gumbel"]


@dataclass(frozen=True)
class TreeSearchConfig:
    """Monte-Carlo tree search for discrete actions (--planner mcts)."""

    simulations: int = 32
    """Simulations per action: each expands one node (one batched model step) and evaluates it."""
    rule: TreeRule = "gumbel"
    """Selection rule: uct, puct, or gumbel (Gumbel root sampling with sequential halving)."""
    exploration: float = 1.25
    """Exploration constant c of uct and puct."""
    discount: float = 0.99
    """Discount on rewards inside the tree and in the leaf value (the learned value is fitted with it too). It sets how far the value looks: on CartPole-v1, 0.98 learned 3 of 5 seeds within 2,175 steps where 0.99 left one of 3 on a plateau at 169; on Acrobot-v1, whose reward comes only at a goal often further away, 0.98 left one seed short of -100 in 5,000 steps (benchmarks/sample_efficiency.py)."""
    adaptive_horizon: float = 0.0
    """When > 0, after every model fit the discount (tree and value) rises so that its horizon 1 / (1 - discount) is this many times the mean length of the last 5 logged episodes, never below 1 / (1 - --mcts.discount): a short-sighted value while episodes are short, a far-sighted one once what ends them is slow (a cart drifting off its track). On CartPole-v1 with --mcts.discount 0.98, 2 took 4 of 5 seeds to 475 within 1,145 steps (0.98 alone: 3 of 5, within 2,175); on Acrobot-v1, whose failing episodes last the full 500 steps, no seed reached -100 in 5,000 steps with it (0.99 alone: all 3 within 4,530) (benchmarks/sample_efficiency.py --methods mcts-adaptive-horizon)."""
    max_depth: int = 50
    """Deepest node a simulation may descend to."""
    gumbel_scale: float = 1.0
    """Scale of the Gumbel noise at the root (gumbel). 1 samples actions as Gumbel MuZero does; 0 makes the choice deterministic: the prior's top actions, then the best mean return."""
    considered_actions: int = 16
    """Actions sampled at the root for sequential halving (gumbel)."""
    value_scale: float = 0.1
    """c_scale of sigma(q) = (c_visit + max visits) * c_scale * q (gumbel)."""
    visit_offset: float = 50.0
    """c_visit of sigma(q) (gumbel)."""
    rollout_steps: int = 0
    """Leaf value: imagined steps of a uniformly random policy from the new node, one rollout per ensemble member, before the learned value (--value.*) takes over (0: the learned value alone; with --value.no-enabled too, the leaf is worth 0). On CartPole-v1, 20 random steps without a value stalled near 120, the learned value alone reached 188 at 1.3k steps."""
    uncertainty_penalty: float = 0.0
    """Subtract this times the members' disagreement (normalised std) from the reward of every edge of the tree; < 0 is a bonus (explore where the members disagree)."""
    sample: bool = True
    """Sample the next state from the chosen member's Gaussian instead of using its mean."""
    parallel_simulations: int = 1
    """Simulations per wave: this many walks descend each tree (kept apart by virtual losses) and their new nodes are expanded in one batched model call. 1 is plain sequential MCTS; more gives fewer, larger model calls for a little search quality."""

    def validate(self) -> None:
        require(self.simulations >= 1, "mcts.simulations", "must be at least 1")
        require(self.exploration >= 0, "mcts.exploration", "must be 0 or more")
        require(0.0 < self.discount <= 1.0, "mcts.discount", "must be in (0, 1]")
        require(self.adaptive_horizon >= 0, "mcts.adaptive_horizon", "must be 0 or more")
        require(self.max_depth >= 1, "mcts.max_depth", "must be at least 1")
        require(self.gumbel_scale >= 0, "mcts.gumbel_scale", "must be 0 or more")
        require(self.considered_actions >= 2, "mcts.considered_actions", "must be at least 2")
        require(self.value_scale > 0, "mcts.value_scale", "must be positive")
        require(self.visit_offset >= 0, "mcts.visit_offset", "must be 0 or more")
        require(self.rollout_steps >= 0, "mcts.rollout_steps", "must be 0 or more")
        require(self.parallel_simulations >= 1, "mcts.parallel_simulations", "must be at least 1")


class Simulator(Protocol):
    def step(
        self, states: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...

    def value(self, states: torch.Tensor) -> torch.Tensor: ...


@dataclass
class SearchResult:
    """What the search found at each of the B roots."""

    action: torch.Tensor  # B: the action to play
    visits: torch.Tensor  # B x A: simulations through each root action
    q: torch.Tensor  # B x A: mean discounted return of each root action (NaN where unvisited)
    root_value: torch.Tensor  # B: the root's mean return over all simulations
    depth: torch.Tensor  # B: the deepest node expanded


@dataclass
class Tree:
    """B trees of up to N nodes each; node 0 is the root, node s + 1 is simulation s's."""

    state: torch.Tensor  # B x N x S
    visits: torch.Tensor  # B x N
    value_sum: torch.Tensor  # B x N: summed discounted returns from the node onward
    reward: torch.Tensor  # B x N: reward on the edge into the node
    terminal: torch.Tensor  # B x N bool
    estimate: torch.Tensor  # B x N: the value estimate at expansion
    parent: torch.Tensor  # B x N long, -1 for the root
    depth: torch.Tensor  # B x N long
    children: torch.Tensor  # B x N x A long, -1 where not expanded
    # Walks of the current wave not yet backed up (virtual losses), through each node and
    # through each edge that has no node yet; and which new node each such edge will get.
    pending_node: torch.Tensor  # B x N
    pending_edge: torch.Tensor  # B x N x A
    claimed: torch.Tensor  # B x N x A long
    rows: torch.Tensor  # B long: 0 .. B - 1, to index one node per tree

    @classmethod
    def rooted(cls, root: torch.Tensor, nodes: int, actions: int) -> Tree:
        b, device = root.shape[0], root.device
        state = root.new_zeros(b, nodes, root.shape[1])
        state[:, 0] = root
        zeros = torch.zeros(b, nodes, device=device)
        long = torch.zeros(b, nodes, dtype=torch.long, device=device)
        return cls(
            state=state,
            visits=zeros.clone(),
            value_sum=zeros.clone(),
            reward=zeros.clone(),
            terminal=torch.zeros(b, nodes, dtype=torch.bool, device=device),
            estimate=zeros.clone(),
            parent=long - 1,
            depth=long.clone(),
            children=torch.full((b, nodes, actions), -1, dtype=torch.long, device=device),
            pending_node=zeros.clone(),
            pending_edge=torch.zeros(b, nodes, actions, device=device),
            claimed=torch.full((b, nodes, actions), -1, dtype=torch.long, device=device),
            rows=torch.arange(b, device=device),
        )

    def at(self, field: torch.Tensor, node: torch.Tensor) -> torch.Tensor:
        """field[b, node[b]] for every problem b."""
        return field[self.rows, node]

    def value(self, node: torch.Tensor) -> torch.Tensor:
        return self.at(self.value_sum, node) / self.at(self.visits, node).clamp_min(1)

    def children_stats(self, node: torch.Tensor, discount: float, children=None):
        """Visits (B x A) and mean returns q = r + discount * V (B x A) of `node`'s children
        (`children`: their indices, B x A, when the caller has them already)."""
        children = self.at(self.children, node) if children is None else children
        safe = children.clamp_min(0)
        visits = torch.where(children >= 0, self.visits.gather(1, safe), 0.0)
        mean = self.value_sum.gather(1, safe) / visits.clamp_min(1)
        q = self.reward.gather(1, safe) + discount * mean
        return children, visits, q

    def in_flight(self, node: torch.Tensor, children: torch.Tensor) -> torch.Tensor:
        """Walks of the current wave through each of `node`'s `children` (B x A)."""
        through_nodes = self.pending_node.gather(1, children.clamp_min(0))
        return torch.where(children >= 0, through_nodes, self.at(self.pending_edge, node))


def search(
    simulator: Simulator,
    root: torch.Tensor,
    num_actions: int,
    config: TreeSearchConfig,
    generator: torch.Generator | None = None,
    prior_logits: torch.Tensor | None = None,
) -> SearchResult:
    """Run `config.simulations` simulations from each of the B x S `root` states."""
    b, device = root.shape[0], root.device
    tree = Tree.rooted(root, config.simulations + 1, num_actions)
    tree.estimate[:, 0] = simulator.value(root)
    tree.visits[:, 0], tree.value_sum[:, 0] = 1.0, tree.estimate[:, 0]
    logits = torch.zeros(b, num_actions, device=device) if prior_logits is None else prior_logits
    rule = _Rule(config, num_actions, logits, generator)
    for first in range(0, config.simulations, config.parallel_simulations):
        walks = min(config.parallel_simulations, config.simulations - first)
        _wave(tree, simulator, rule, first, walks, config)
    root_node = torch.zeros(b, dtype=torch.long, device=device)
    _, visits, q = tree.children_stats(root_node, config.discount)
    return SearchResult(
        action=rule.final_action(tree),
        visits=visits,
        q=torch.where(visits > 0, q, torch.nan),
        root_value=tree.value(root_node),
        depth=tree.depth.max(dim=1).values,
    )


class _Rule:
    """The selection rule's scores for the B current nodes."""

    def __init__(self, config, num_actions, logits, generator):
        self.config, self.logits = config, logits
        self.generator = generator
        self.uniform_noise = lambda shape: torch.rand(
            shape, generator=generator, device=logits.device
        )
        if config.rule == "gumbel":
            u = self.uniform_noise(logits.shape).clamp(1e-10, 1 - 1e-10)
            self.gumbel = -config.gumbel_scale * torch.log(-torch.log(u))
            m = min(config.considered_actions, num_actions, config.simulations)
            top = (self.gumbel + logits).topk(m, dim=1).indices
            self.considered = torch.zeros_like(logits, dtype=torch.bool).scatter(1, top, True)
            self.schedule = halving_schedule(m, config.simulations)

    def normalised(self, tree: Tree, node: torch.Tensor, visits, q) -> torch.Tensor:
        """q mapped to [0, 1] by the node's value and its visited children's; unvisited
        children are valued as their parent (the "completed" q of Gumbel MuZero)."""
        parent = tree.value(node).unsqueeze(1)  # B x 1
        q = torch.where(visits > 0, q, parent)
        low = torch.minimum(q.min(dim=1, keepdim=True).values, parent)
        high = torch.maximum(q.max(dim=1, keepdim=True).values, parent)
        return (q - low) / (high - low).clamp_min(1e-8)

    def sigma(self, visits: torch.Tensor, qn: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        scale = (cfg.visit_offset + visits.max(dim=1, keepdim=True).values) * cfg.value_scale
        return scale * qn

    def scores(self, tree: Tree, node, children, simulation: int, at_root: bool):
        """B x A selection scores at `node` (the roots when `at_root`, else interior nodes)
        whose `children` are given; the argmax is visited. A walk of the current wave still in
        flight through a child counts as a visit that returned the worst (0)."""
        _, visits, q = tree.children_stats(node, self.config.discount, children)
        qn = self.normalised(tree, node, visits, q)
        if self.config.parallel_simulations > 1:
            in_flight = tree.in_flight(node, children)
            qn = torch.where(in_flight > 0, qn * visits / (visits + in_flight), qn)
            visits = visits + in_flight
        total = visits.sum(dim=1, keepdim=True)
        # Drawn under every rule (gumbel ignores it) so that a seed gives one random stream.
        ties = 1e-6 * self.uniform_noise(visits.shape)
        c = self.config.exploration
        if self.config.rule == "uct":
            bonus = c * torch.sqrt(torch.log(total.clamp_min(1)) / visits.clamp_min(1))
            return torch.where(visits > 0, qn + bonus, torch.inf) + ties
        if self.config.rule == "puct":
            prior = torch.softmax(self.logits, dim=1)
            return qn + c * prior * torch.sqrt(total) / (1 + visits) + ties
        if at_root:
            return self.root_scores(visits, qn, simulation)
        improved = torch.softmax(self.logits + self.sigma(visits, qn), dim=1)
        return improved - visits / (1 + total)

    def root_scores(self, visits, qn, simulation: int) -> torch.Tensor:
        """Sequential halving: only considered actions with the visit count the schedule asks
        for at this simulation compete, on g + logits + sigma(q)."""
        due = self.considered & (visits == self.schedule[simulation])
        due = torch.where(due.any(dim=1, keepdim=True), due, self.considered)
        score = self.gumbel + self.logits + self.sigma(visits, qn)
        return torch.where(due, score, -torch.inf)

    def final_action(self, tree: Tree) -> torch.Tensor:
        root = torch.zeros(tree.visits.shape[0], dtype=torch.long, device=tree.visits.device)
        _, visits, q = tree.children_stats(root, self.config.discount)
        qn = self.normalised(tree, root, visits, q)
        if self.config.rule != "gumbel":  # most visited, ties to the better mean
            return (visits + 1e-3 * torch.where(visits > 0, qn, 0.0)).argmax(dim=1)
        considered_visits = torch.where(self.considered, visits, -1.0)
        survivors = considered_visits == considered_visits.max(dim=1, keepdim=True).values
        score = self.gumbel + self.logits + self.sigma(visits, qn)
        return torch.where(survivors, score, -torch.inf).argmax(dim=1)


def halving_schedule(considered: int, simulations: int) -> list[int]:
    """For each simulation, the visit count a root action must have to be visited then.

    Sequential halving over `considered` actions in ceil(log2 m) phases: every phase gives each
    remaining action the same number of visits, then the worse half drops out (down to two)."""
    if considered <= 1:
        return list(range(simulations))
    phases = math.ceil(math.log2(considered))
    schedule: list[int] = []
    visits = [0] * considered
    remaining = considered
    while len(schedule) < simulations:
        rounds = max(1, simulations // (phases * remaining))
        for _ in range(rounds):
            schedule.extend(visits[:remaining])
            visits[:remaining] = [v + 1 for v in visits[:remaining]]
        remaining = max(2, remaining // 2)
    return schedule[:simulations]


def _select(tree: Tree, rule: _Rule, simulation: int):
    """Walk from the roots to the first unexpanded, terminal or too-deep child. Returns the B
    parents, the actions taken from them, and the children (-1 where to expand)."""
    b, device = tree.visits.shape[0], tree.visits.device
    node = torch.zeros(b, dtype=torch.long, device=device)
    action, child = node.clone(), node.clone()
    active = torch.ones(b, dtype=torch.bool, device=device)
    passable = ~tree.terminal & (tree.depth < rule.config.max_depth)  # B x N
    at_root = True  # every walk starts at its root; below it no walk is at a root again
    while at_root or active.any():
        children = tree.at(tree.children, node)  # B x A
        chosen = rule.scores(tree, node, children, simulation, at_root).argmax(dim=1)
        picked = children.gather(1, chosen.unsqueeze(1)).squeeze(1)
        deeper = (picked >= 0) & tree.at(passable, picked.clamp_min(0))
        stop = active & ~deeper
        action = torch.where(stop, chosen, action)
        child = torch.where(stop, picked, child)
        active = active & deeper
        node = torch.where(active, picked, node)  # a stopped walk stays at its parent node
        at_root = False
    return node, action, child


def _wave(tree: Tree, simulator, rule: _Rule, first: int, walks: int, config) -> None:
    """Simulations first .. first + walks - 1: select them one after another (each claims
    its path), expand their new nodes in one simulator call, back them all up."""
    b, device = tree.visits.shape[0], tree.visits.device
    selected = []
    for walk in range(walks):
        parent, action, child = _select(tree, rule, first + walk)
        shared = torch.full_like(child, -1)
        if walks > 1:
            shared = _claim(tree, parent, action, child, first + walk + 1)
        selected.append((parent, action, child, shared))
    parent, action, child, shared = (torch.cat(parts) for parts in zip(*selected, strict=True))
    rows = torch.arange(b, device=device).repeat(walks)
    new = torch.arange(first + 1, first + walks + 1, device=device).repeat_interleave(b)
    leaf, value = _expand(tree, simulator, rows, parent, action, child, new, shared)
    _backup(tree, rows, leaf, value, config.discount)
    if walks > 1:
        tree.pending_node.zero_()
        tree.pending_edge.zero_()
        tree.claimed.fill_(-1)


def _claim(tree: Tree, parent, action, child, new: int) -> torch.Tensor:
    """Put one in-flight visit on every node of the selected paths (and on the new edge);
    return, per tree, the node an earlier walk of this wave already claimed for the same new
    edge (-1 where this walk's own node `new` is to be created)."""
    rows = torch.arange(parent.shape[0], device=parent.device)
    edge = child < 0
    shared = torch.where(edge, tree.claimed[rows, parent, action], -1)
    claims = edge & (shared < 0)
    tree.claimed[rows[claims], parent[claims], action[claims]] = new
    tree.pending_edge[rows[edge], parent[edge], action[edge]] += 1
    tree.pending_node[rows[~edge], child[~edge]] += 1
    node = parent
    while (node > 0).any():  # the roots themselves are compared with nothing
        on = node > 0
        tree.pending_node[rows[on], node[on]] += 1
        node = torch.where(on, tree.parent[rows, node], node)
    return shared


def _expand(tree, simulator, rows, parent, action, child, new, shared):
    """Create node `new` where the selected child does not exist yet; return the leaf of each
    walk and the return to back up from it. Walk w works on tree `rows[w]`; a walk whose new
    edge an earlier walk of its wave claimed (`shared` >= 0) backs up that walk's node.

    A terminal child reached again is stepped to again: its reward is a running mean over the
    visits, so a noisy final reward is averaged rather than fixed by its first sample. (Other
    edges keep the next state they were expanded with: the tree is one sampled realisation.)"""
    grow = (child < 0) & (shared < 0)
    again = (child >= 0) & tree.terminal[rows, child.clamp_min(0)]
    leaf = torch.where(grow, new, torch.where(shared >= 0, shared, child))
    stepped = grow | again
    if stepped.any():
        g, p, a = rows[stepped], parent[stepped], action[stepped]
        next_state, reward, done = simulator.step(tree.state[g, p], a)
        fresh = grow[stepped]
        gf, pf, af, nf = g[fresh], p[fresh], a[fresh], new[stepped][fresh]
        estimate = torch.zeros(len(gf), device=tree.visits.device)
        if fresh.any():
            estimate = torch.where(done[fresh], 0.0, simulator.value(next_state[fresh]))
        tree.state[gf, nf], tree.reward[gf, nf] = next_state[fresh], reward[fresh].float()
        tree.terminal[gf, nf], tree.estimate[gf, nf] = done[fresh], estimate.float()
        tree.parent[gf, nf], tree.depth[gf, nf] = pf, tree.depth[gf, pf] + 1
        tree.children[gf, pf, af] = nf
        gr, lr = g[~fresh], leaf[again]
        seen = tree.visits[gr, lr]
        tree.reward[gr, lr] += (reward[~fresh].float() - tree.reward[gr, lr]) / (seen + 1)
    # An existing child was reached only because it is terminal (worth 0) or at the depth
    # limit (worth its current mean).
    mean = tree.value_sum[rows, leaf] / tree.visits[rows, leaf].clamp_min(1)
    value = torch.where(tree.terminal[rows, leaf], 0.0, mean)
    value = torch.where(child < 0, tree.estimate[rows, leaf], value)
    return leaf, value


def _backup(tree: Tree, rows: torch.Tensor, leaf: torch.Tensor, value: torch.Tensor, discount):
    """Add each walk's discounted return to every node from its leaf up to its root (several
    walks of a wave may share nodes, so the additions accumulate)."""
    node, ret = leaf, value
    on = node >= 0
    while on.any():
        # Walks already past their root add 0 (to their root), which leaves every sum as is.
        safe = node.clamp_min(0)
        tree.visits.index_put_((rows, safe), on.float(), accumulate=True)
        tree.value_sum.index_put_((rows, safe), torch.where(on, ret, 0.0), accumulate=True)
        ret = tree.reward[rows, safe] + discount * ret
        node = torch.where(on, tree.parent[rows, safe], node)
        on = node >= 0
