"""Imagination with a hand-written ensemble whose members differ in a known way."""

from dataclasses import dataclass

import pytest
import torch

from forethought.errors import ConfigError
from forethought.rollout import RolloutConfig, imagine
from forethought.types import ModelPrediction


@dataclass(frozen=True)
class _Config:
    probabilistic: bool = False


class OffsetEnsemble:
    """Member e moves the 1-D state by action + e: next = obs + action + e."""

    def __init__(self, ensemble_size):
        self.ensemble_size, self.obs_dim, self.action_dim = ensemble_size, 1, 1
        self.config = _Config()
        self.target_std = torch.ones(1)

    def predict(self, obs, action):
        if obs.dim() == 2:
            obs = obs.expand(self.ensemble_size, *obs.shape)
            action = action.expand(self.ensemble_size, *action.shape)
        offset = torch.arange(self.ensemble_size, dtype=obs.dtype).view(-1, 1, 1)
        return ModelPrediction(obs + action + offset, torch.zeros_like(obs), None, None)


def reward_is_next_state(obs, action, next_obs):
    return next_obs[..., 0]


def test_tsinf_keeps_each_particle_on_one_member():
    model, h = OffsetEnsemble(3), 4
    actions = torch.zeros(1, 2, h, 1)
    actions[0, 1] = 1.0  # candidate 1 adds 1 per step
    out = imagine(
        model,
        torch.zeros(1, 1),
        actions,
        RolloutConfig(particles=6, propagation="tsinf"),
        reward_is_next_state,
    )
    # Particle on member e, candidate c: states (c+e)*t for t=1..h, return (c+e)*h(h+1)/2.
    per_particle = out.particle_returns[0]  # P x K
    expected_members = torch.arange(6) % 3
    for c in range(2):
        torch.testing.assert_close(
            per_particle[c], (c + expected_members).float() * h * (h + 1) / 2
        )
    torch.testing.assert_close(out.returns[0], per_particle.mean(-1))
    assert out.model_rows == h * 2 * 6


def test_ts1_mixes_members_but_keeps_the_average_and_particle_identity():
    model, h = OffsetEnsemble(4), 5
    actions = torch.zeros(2, 3, h, 1)
    actions[:, 1] = 10.0  # candidate 1 adds 10 per step: its particles must keep its actions
    out = imagine(
        model,
        torch.zeros(2, 1),
        actions,
        RolloutConfig(particles=8, propagation="ts1"),
        reward_is_next_state,
        generator=torch.Generator().manual_seed(0),
    )
    # Every step each member gets exactly a quarter of the rows, so the average increment over
    # all particles is (0+1+2+3)/4 = 1.5 per step; returns average 1.5 * h(h+1)/2.
    triangle = h * (h + 1) / 2
    per_candidate = out.particle_returns.mean(dim=(0, 2))  # P
    torch.testing.assert_close(per_candidate, torch.tensor([1.5, 11.5, 1.5]) * triangle)
    assert out.particle_returns[:, 0].std() > 0  # different particles drew different members
    # A particle's final state is the sum of its own actions and member offsets (0-3 a step).
    increments = out.final_state[..., 0] - 10.0 * h * (torch.arange(3) == 1).view(1, 3, 1)
    assert ((increments >= 0) & (increments <= 3 * h)).all()
    # Under tsinf, no particle mixes: every particle's increment is h x its member's offset.
    fixed = imagine(
        model,
        torch.zeros(2, 1),
        actions,
        RolloutConfig(particles=8, propagation="tsinf"),
        reward_is_next_state,
    )
    assert set(fixed.final_state[:, 0, :, 0].flatten().tolist()) == {0.0, 5.0, 10.0, 15.0}
    assert len(set(out.final_state[:, 0, :, 0].flatten().tolist()) - {0.0, 5.0, 10.0, 15.0}) > 0


def test_mean_propagation_averages_members():
    model = OffsetEnsemble(5)
    out = imagine(
        model,
        torch.zeros(1, 1),
        torch.zeros(1, 1, 3, 1),
        RolloutConfig(particles=1, propagation="mean"),
        reward_is_next_state,
    )
    torch.testing.assert_close(out.returns, torch.tensor([[2.0 + 4.0 + 6.0]]))


def test_no_reward_after_predicted_termination():
    model = OffsetEnsemble(1)
    actions = torch.ones(1, 1, 10, 1)

    def plus_one(obs, action, next_obs):
        return torch.ones(next_obs.shape[:-1])

    def ends_past_three(next_obs):
        return next_obs[..., 0] >= 3

    out = imagine(
        model, torch.zeros(1, 1), actions, RolloutConfig(particles=1), plus_one, ends_past_three
    )
    assert out.returns.item() == 3.0  # steps reaching 1, 2 and 3 pay; the episode ends at 3


def test_particles_must_divide_among_members():
    with pytest.raises(ConfigError, match=r"rollout\.particles"):
        RolloutConfig(particles=7).validate(ensemble_size=5)


def test_epistemic_is_member_disagreement_and_penalty_and_threshold_use_it():
    model, h = OffsetEnsemble(3), 3
    actions = torch.zeros(1, 1, h, 1)
    out = imagine(
        model, torch.zeros(1, 1), actions, RolloutConfig(particles=3), reward_is_next_state
    )
    # Members move by 0, 1, 2 per step: particle states after t steps are 0, t, 2t.
    spread = torch.tensor([0.0, 1.0, 2.0])
    expected = torch.stack([(spread * t).std(unbiased=False) for t in (1, 2, 3)])
    torch.testing.assert_close(out.epistemic[0, 0], expected)
    penalised = out.scores(RolloutConfig(particles=3, uncertainty_penalty=0.5))
    torch.testing.assert_close(penalised, out.returns - 0.5 * expected.sum())

    # Trust ends once the spread passes 1.0 (after step 1): later rewards become the worst
    # reward seen at that step (the particle on member 0 gets 0, so 0 each).
    cut = imagine(
        model,
        torch.zeros(1, 1),
        actions,
        RolloutConfig(particles=3, disagreement_threshold=1.0),
        reward_is_next_state,
    )
    torch.testing.assert_close(cut.particle_returns[0, 0], torch.tensor([0.0, 1.0, 2.0]))


@pytest.mark.parametrize("propagation", ["ts1", "tsinf", "mean"])
def test_constraint_costs_follow_their_particles(propagation):
    # With the cost equal to the reward and no discount, each particle's summed cost must equal
    # its return, also when TS1 moves particles between members at every step.
    model, h = OffsetEnsemble(3), 5
    actions = torch.rand(2, 4, h, 1, generator=torch.Generator().manual_seed(0))
    config = RolloutConfig(particles=6, propagation=propagation, discount=1.0)
    out = imagine(
        model,
        torch.zeros(2, 1),
        actions,
        config,
        reward_is_next_state,
        generator=torch.Generator().manual_seed(1),
        cost_fn=reward_is_next_state,
    )
    torch.testing.assert_close(out.particle_costs, out.particle_returns)
