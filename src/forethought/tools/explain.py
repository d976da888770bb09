"""`forethought explain RUN_DIR --step T`: why an MPC run took the action it took at step T.

    rebuild   the episode that holds step T from the transition log, and the model and planner
              random state it started with (snapshots/episode_K.pt)
    replay    the agent over the logged observations up to T: every action must equal the
              logged one (same model, same seed), so the plan at T is the one the run made
    explain   the chosen plan and the best runners-up of the planner's last iteration, imagined
              by every ensemble member (spread = epistemic), with the predicted noise (aleatoric)
              and per-step rewards; then the chosen plan executed in the real environment from
              the same state, next to the prediction

Writes explain_step_T.json and explain_step_T.png into the run directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import tyro

from forethought.agents.build import build_mpc_agent
from forethought.agents.mpc import MPCAgent
from forethought.agents.tree import TreeSearchAgent
from forethought.config import TrainConfig
from forethought.errors import ConfigError, DataError, require
from forethought.models import DynamicsModel
from forethought.models.uncertainty import member_variance, normalised_std
from forethought.rollout import CostFn
from forethought.runtime import configure_cpu
from forethought.storage import atomic_write_text, load_torch
from forethought.tasks import TaskSpec, make_env, vector_actions
from forethought.tasks.constraints import CONSTRAINTS
from forethought.tools import explain_tree
from forethought.trainers.pets import TRAIN_SEED_STRIDE
from forethought.trainers.run_dir import RunDir


@dataclass(frozen=True)
class ExplainArgs:
    """Explain one decision of an --algo mpc run: the futures the planner imagined at that step, what it expected each to earn, how sure the model was, and what happened when the chosen plan was executed."""

    run_dir: tyro.conf.Positional[Path]
    """Run directory written by `forethought train`."""
    step: int = 0
    """Environment step to explain, counted over the whole run from 0 (the run's first transition)."""
    top_k: int = 4
    """Runners-up shown next to the chosen plan: the best candidates of the planner's last iteration."""


@dataclass
class Explanation:
    step: int
    episode: int
    t: int
    reproduced: bool  # the replayed agent chose exactly the action the run logged
    action: list[float]
    logged_action: list[float]
    json_path: Path
    plot_path: Path
    report: dict[str, Any]
    summary: str  # one line for the console


def explain(args: ExplainArgs) -> Explanation:
    require(args.top_k >= 0, "top_k", "must be 0 or more")
    run, config = RunDir.open(args.run_dir, flag="RUN_DIR")
    try:
        return _explain(args, run, config)
    finally:
        run.close()


def _explain(args: ExplainArgs, run: RunDir, config: TrainConfig) -> Explanation:
    if config.algo == "mbpo":
        return _explain_mbpo(args, run, config)
    require(
        config.algo == "mpc",
        "RUN_DIR",
        f"{args.run_dir} is an --algo {config.algo} run; explain needs the model of an --algo "
        "mpc or mbpo run",
    )
    configure_cpu(config.threads)
    env = vector_actions(make_env(config.env, **config.make_kwargs()))
    task, model, agent = build_mpc_agent(config, env)
    episode, t, records = _locate(args, run, config, model)
    _load_snapshot(run, episode, model, agent)
    obs = records[:, 2 : 2 + model.obs_dim].astype(np.float32)  # the episode's observations
    actions = records[:, 2 + model.obs_dim : 2 + model.obs_dim + model.action_dim]
    if isinstance(agent, TreeSearchAgent):
        report = {"run_dir": str(args.run_dir), "env": config.env, "step": args.step}
        report |= {"episode": episode, "t": t, **explain_tree.decision(agent, obs, actions, t)}
        summary = explain_tree.summary(report)
        return _explanation(run, report, {}, explain_tree.plot, summary, episode, t)
    action, plan, candidates = _replay(agent, obs, actions.astype(np.float32), t)

    top = np.argsort(-candidates["scores"])[: min(args.top_k, candidates["scores"].shape[0])]
    sequences = torch.cat([plan.unsqueeze(0), candidates["actions"][top]])  # (1 + k) x H x A
    cost_fn = CONSTRAINTS[config.safety.constraint].cost_fn if config.safety.constraint else None
    imagined = imagine_per_member(model, task, torch.as_tensor(obs[t]), sequences, cost_fn)
    report = {
        "run_dir": str(args.run_dir),
        "env": config.env,
        "step": args.step,
        "episode": episode,
        "t": t,
        "state": obs[t].tolist(),
        "logged_action": actions[t].tolist(),
        "action": action.tolist(),
        "reproduced": bool(np.array_equal(action, actions[t].astype(np.float32))),
        "chosen": _summary(imagined, 0, plan),
        "runners_up": [
            {**_summary(imagined, i + 1, sequences[i + 1]), "planner_score": float(score)}
            for i, score in enumerate(candidates["scores"][top])
        ],
        "real": _execute_in_real_env(config, episode, actions[:t], plan.numpy(), obs[t]),
        "units": "epistemic and aleatoric: normalised std (divided by the model's target std)",
    }
    if cost_fn is not None:
        _mark_vetoes(report, imagined, config.safety)
    if agent.values_horizon():
        _mark_horizon_values(report, imagined, agent, task)
    return _explanation(run, report, imagined, _plot, _mpc_summary(report), episode, t)


def _mpc_summary(report: dict[str, Any]) -> str:
    verdict = "the action the run took" if report["reproduced"] else "NOT the action the run took"
    chosen = report["chosen"]
    beyond = (
        f" (+ {chosen['value_at_horizon']:.1f} valued beyond its horizon)"
        if "value_at_horizon" in chosen
        else ""
    )
    return (
        f"step {report['step']} (episode {report['episode']}, t={report['t']}): replayed action "
        f"{[round(a, 4) for a in report['action']]}, {verdict}; predicted return of the plan "
        f"{chosen['predicted_return']:.1f}{beyond}, real {report['real']['return']:.1f}"
    )


def _explanation(run, report, imagined, draw, summary, episode, t) -> Explanation:
    """Write the report (JSON) and its figure into the run directory."""
    json_path = run.path / f"explain_step_{report['step']}.json"
    plot_path = run.path / f"explain_step_{report['step']}.png"
    atomic_write_text(json_path, json.dumps(report, indent=1))
    draw(report, imagined, plot_path)
    mbpo = "policy_action" in report
    return Explanation(
        step=report["step"],
        episode=episode,
        t=t,
        reproduced=True if mbpo else report["reproduced"],  # MBPO: nothing is replayed
        action=report["guided"]["action"] if mbpo else report["action"],
        logged_action=report["policy_action"] if mbpo else report["logged_action"],
        json_path=json_path,
        plot_path=plot_path,
        report=report,
        summary=summary,
    )


# -- rebuilding the decision -------------------------------------------------------------------
def _locate(args, run: RunDir, config: TrainConfig, model: DynamicsModel):
    """(episode, t within it, the episode's counted log records) of run-wide step `args.step`."""
    checkpoint = run.load_checkpoint()
    if checkpoint is None:
        raise ConfigError(
            "RUN_DIR", f"{args.run_dir} has no checkpoint yet; let it finish an episode"
        )
    progress = checkpoint["progress"]
    log = run.transition_log(model.obs_dim, model.action_dim)
    raw = log.records(0, progress["log_records"])
    keep = np.ones(len(raw), bool)
    for begin, end in progress["abandoned"]:
        keep[begin:end] = False
    counted = raw[keep]
    log.close()
    require(
        0 <= args.step < len(counted),
        "step",
        f"{args.step} is outside the run's log, which holds steps 0 to {len(counted) - 1}",
    )
    episode, t = int(counted[args.step, 0]), int(counted[args.step, 1])
    require(
        episode >= config.warmup_episodes,
        "step",
        f"{args.step} is in warm-up episode {episode}, where actions were random and nothing "
        "was planned; choose a later step",
    )
    return episode, t, counted[counted[:, 0] == episode]


def _load_snapshot(run: RunDir, episode: int, model: DynamicsModel, agent: MPCAgent) -> None:
    path = run.snapshot_path(episode)
    if not path.exists():
        raise DataError(
            f"{path} is missing: the run kept no snapshot of the model episode {episode} started "
            "with (runs written before snapshots existed cannot be explained)"
        )
    snapshot = load_torch(path)
    model.load_state_dict(snapshot["model"])
    agent.generator.set_state(snapshot["planner"])
    if agent.state_value is not None and "value" in snapshot:  # the value of that episode
        agent.state_value.load_state_dict(snapshot["value"])
    if "tree_discount" in snapshot:  # --mcts.adaptive-horizon: the discount of that episode
        agent.set_discount(snapshot["tree_discount"])
    agent.reset()


def _replay(agent: MPCAgent, obs: np.ndarray, actions: np.ndarray, t: int):
    """Act on the logged observations up to step t, recording the planner's work at step t."""
    for i in range(t):
        acted = agent.act(obs[i][None])[0]
        if not np.array_equal(acted, actions[i]):
            raise DataError(
                f"replaying the episode from its snapshot gives another action at its step {i} "
                "than the run took: the model was refitted during the episode (the drift "
                "monitor), and explain can replay only the steps before such a refit"
            )
    recorded: dict[str, Any] = {}
    plan_fn, objective_fn = agent.planner.plan, agent.objective

    def recording_objective(obs_t):
        score = objective_fn(obs_t)

        def scored(candidates):
            scores = score(candidates)
            recorded["actions"], recorded["scores"] = candidates[0].clone(), scores[0].clone()
            return scores

        return scored

    def recording_plan(*a, **kw):
        recorded["plan"] = plan_fn(*a, **kw)
        return recorded["plan"]

    agent.objective, agent.planner.plan = recording_objective, recording_plan
    try:
        action = agent.act(obs[t][None])[0]
    finally:
        del agent.objective, agent.planner.plan  # back to the class's methods
    last = {"actions": recorded["actions"].cpu(), "scores": recorded["scores"].cpu().numpy()}
    return action, recorded["plan"].actions[0].cpu(), last


@torch.no_grad()
def imagine_per_member(
    model: DynamicsModel,
    task: TaskSpec,
    start: torch.Tensor,
    sequences: torch.Tensor,
    cost_fn: CostFn | None = None,
) -> dict[str, np.ndarray]:
    """Every member's own trajectory (its mean prediction, no sampling) for S action sequences
    of length H from one start state: states E x S x (H+1) x O, rewards E x S x H, and per step
    the members' disagreement (epistemic) and predicted noise (aleatoric), S x H."""
    e, (s, h, _) = model.ensemble_size, sequences.shape
    device = model.input_mean.device
    state = start.to(device).expand(e, s, -1)  # E x S x O
    actions = sequences.to(device).expand(e, s, h, -1)
    scale = model.target_std[: model.obs_dim] ** 2
    states, rewards, epistemic, aleatoric, costs = [state], [], [], [], []
    for k in range(h):
        pred = model.predict(state, actions[:, :, k])
        nxt = pred.next_obs_mean
        if task.reward_fn is not None:
            rewards.append(task.reward_fn(state, actions[:, :, k], nxt))
        else:
            rewards.append(pred.reward)
        if cost_fn is not None:
            costs.append(cost_fn(state, actions[:, :, k], nxt))
        epistemic.append(normalised_std(member_variance(nxt), scale))
        aleatoric.append(normalised_std(pred.next_obs_var.mean(0), scale))
        states.append(nxt)
        state = nxt
    extra = {} if cost_fn is None else {"costs": torch.stack(costs, 2).cpu().numpy()}  # E x S x H
    return {
        **extra,
        "states": torch.stack(states, 2).cpu().numpy(),
        "rewards": torch.stack(rewards, 2).cpu().numpy(),
        "epistemic": torch.stack(epistemic, 1).cpu().numpy(),
        "aleatoric": torch.stack(aleatoric, 1).cpu().numpy(),
    }


def _execute_in_real_env(config, episode, past_actions, plan, expected_obs) -> dict[str, Any]:
    """The chosen plan run open-loop in the real environment from the step's state, reached by
    replaying the episode's reset seed and logged actions."""
    env = vector_actions(make_env(config.env, **config.make_kwargs()))
    obs, _ = env.reset(seed=TRAIN_SEED_STRIDE * config.seed + episode)
    for action in past_actions:
        obs, *_ = env.step(action.astype(np.float32))
    same_state = bool(np.allclose(obs, expected_obs, atol=1e-5))
    states, rewards = [np.asarray(obs, np.float64)], []
    for action in plan:
        obs, reward, terminated, truncated, _ = env.step(action)
        states.append(np.asarray(obs, np.float64))
        rewards.append(float(reward))
        if terminated or truncated:
            break
    env.close()
    return {
        "reached_the_logged_state": same_state,  # False where the dynamics drifted mid-run
        "states": np.array(states).tolist(),
        "rewards": rewards,
        "return": float(sum(rewards)),
    }


# -- MBPO: what each controller of the finished run would do at a state it visited -----------
def _explain_mbpo(args: ExplainArgs, run: RunDir, config: TrainConfig) -> Explanation:
    """At the real state of step T: the final SAC policy's action and its critic's value, the
    ensemble's disagreement about that action against the switching threshold, and the plans of
    policy-guided and plain MPC as every member imagines them."""
    from forethought.agents.guided import SwitchingAgent, one_step_disagreement
    from forethought.tools.evaluate import EvaluateArgs, build_controllers, load_mbpo

    parts = load_mbpo(args.run_dir, config)
    obs = _visited_state(parts.real_obs, args.step)
    controllers = build_controllers(
        EvaluateArgs(run_dir=args.run_dir, controllers=("mpc", "switch")), config, parts
    )
    switch: SwitchingAgent = controllers["switch"]
    with torch.inference_mode():
        policy_action = switch.prior.act(obs[None])
        value = float(switch.prior.value(obs[None])[0])
        disagreement = float(one_step_disagreement(parts.model, obs[None], policy_action)[0])
    plans = {
        name: _plan_of(agent, obs)
        for name, agent in (("guided", switch.planner), ("mpc", controllers["mpc"]))
    }
    model, task = parts.model, parts.task
    imagined = imagine_per_member(
        model,
        task,
        obs,
        torch.stack([plans["guided"][1], plans["mpc"][1][: len(plans["guided"][1])]]),
    )
    report = {
        "run_dir": str(args.run_dir),
        "env": config.env,
        "step": args.step,
        "state": obs.tolist(),
        "policy_action": policy_action[0].tolist(),
        "critic_value": value,
        "disagreement_on_policy_action": disagreement,
        "switching_threshold": switch.threshold,
        "switch_hands_to_planner": disagreement > switch.threshold,
        "guided": {
            **_summary(imagined, 0, plans["guided"][1]),
            "action": plans["guided"][0].tolist(),
        },
        "mpc": {
            "action": plans["mpc"][0].tolist(),
            "first_steps_predicted_return": _summary(imagined, 1, plans["mpc"][1])[
                "predicted_return"
            ],
        },
        "units": "disagreement: normalised std, as the switching hybrid measures it",
    }
    return _explanation(run, report, imagined, _plot_mbpo, _mbpo_summary(report), -1, args.step)


def _visited_state(real_obs: np.ndarray, step: int) -> torch.Tensor:
    """The real state of run-wide step `step`."""
    require(
        0 <= step < len(real_obs),
        "step",
        f"{step} is outside the run's replay buffer, which holds steps 0 to {len(real_obs) - 1}",
    )
    return torch.as_tensor(real_obs[step], dtype=torch.float32)


def _mbpo_summary(report: dict[str, Any]) -> str:
    hands = report["switch_hands_to_planner"]
    return (
        f"step {report['step']}: policy action {np.round(report['policy_action'], 4).tolist()} "
        f"(critic value {report['critic_value']:.1f}), guided MPC "
        f"{np.round(report['guided']['action'], 4).tolist()}, plain MPC "
        f"{np.round(report['mpc']['action'], 4).tolist()}; the switching hybrid "
        f"{'hands this state to the planner' if hands else 'lets the policy act'}"
    )


def _plan_of(agent: MPCAgent, obs: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """The action an MPC agent takes at `obs` and the plan (H x A) it came from."""
    recorded = {}
    plan_fn = agent.planner.plan

    def recording_plan(*a, **kw):
        recorded["plan"] = plan_fn(*a, **kw)
        return recorded["plan"]

    agent.planner.plan = recording_plan
    try:
        agent.reset()
        action = agent.act(obs[None].numpy())[0]
    finally:
        del agent.planner.plan
    return action, recorded["plan"].actions[0].cpu()


def _plot_mbpo(report: dict[str, Any], imagined: dict[str, np.ndarray], path: Path) -> None:
    states = imagined["states"]  # E x 2 x (H+1) x O: guided plan, plain MPC plan
    e, _, h1, o = states.shape
    fig, axes = plt.subplots(1, o, figsize=(3.2 * o, 3.2), squeeze=False)
    for d, ax in enumerate(axes[0]):
        ax.plot(np.arange(h1), states[:, 1, :, d].mean(0), color="0.6", ls="--", label="plain MPC")
        for m in range(e):
            ax.plot(np.arange(h1), states[m, 0, :, d], color="tab:blue", lw=0.8, alpha=0.7)
        ax.set_title(f"state[{d}]")
        ax.set_xlabel("steps ahead")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(
        f"{report['env']} step {report['step']}: policy action "
        f"{np.round(report['policy_action'], 3).tolist()} (critic {report['critic_value']:.1f}), "
        f"guided MPC {np.round(report['guided']['action'], 3).tolist()}, plain MPC "
        f"{np.round(report['mpc']['action'], 3).tolist()}; disagreement "
        f"{report['disagreement_on_policy_action']:.3f} vs threshold "
        f"{report['switching_threshold']:.3f}; blue: guided plan per member",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- reporting ---------------------------------------------------------------------------------
def _summary(imagined: dict[str, np.ndarray], i: int, sequence: torch.Tensor) -> dict[str, Any]:
    member_returns = imagined["rewards"][:, i].sum(-1)  # E
    return {
        "first_action": sequence[0].tolist(),
        "actions": sequence.tolist(),
        "predicted_return": float(member_returns.mean()),
        "member_returns": member_returns.tolist(),
        "predicted_rewards": imagined["rewards"][:, i].mean(0).tolist(),
        "epistemic": imagined["epistemic"][i].tolist(),
        "aleatoric": imagined["aleatoric"][i].tolist(),
    }


@torch.no_grad()
def _mark_horizon_values(report: dict[str, Any], imagined, agent: MPCAgent, task: TaskSpec) -> None:
    """Each shown plan's learned value past its horizon, as the planner adds it to the plan's
    score: discount^H x V(final state), zero for a member whose imagined episode ended, then
    the members' mean (per member under "member_values_at_horizon")."""
    states = torch.as_tensor(imagined["states"])  # E x S x (H+1) x O
    alive = torch.ones(states.shape[:2], dtype=torch.bool)
    if task.termination_fn is not None:
        alive = ~task.termination_fn(states[:, :, 1:]).any(dim=-1)
    device = agent.model.input_mean.device
    final = states[:, :, -1].to(device)
    horizon = states.shape[2] - 1
    values = agent.value_discount**horizon * agent.horizon_value(final).cpu() * alive  # E x S
    for i, plan in enumerate([report["chosen"], *report["runners_up"]]):
        plan["value_at_horizon"] = float(values[:, i].mean())
        plan["member_values_at_horizon"] = values[:, i].tolist()


def _mark_vetoes(report: dict[str, Any], imagined: dict[str, np.ndarray], safety) -> None:
    """Each shown plan's imagined constraint cost per member, and whether the members' share
    over the limit is above delta: the veto rule, with the members standing in for particles."""
    plans = [report["chosen"], *report["runners_up"]]
    for i, plan in enumerate(plans):
        member_costs = imagined["costs"][:, i].sum(-1)  # E
        over = float((member_costs > safety.plan_cost_limit).mean())
        plan.update(
            member_costs=member_costs.tolist(),
            share_over_limit=over,
            vetoed=over > safety.delta,
            veto_reason=(
                f"{safety.constraint}: {over:.0%} of members over the plan cost limit "
                f"{safety.plan_cost_limit:g} (delta {safety.delta:g})"
                if over > safety.delta
                else None
            ),
        )


def _plot(report: dict[str, Any], imagined: dict[str, np.ndarray], path: Path) -> None:
    states = imagined["states"]  # E x S x (H+1) x O
    e, s, h1, o = states.shape
    real = np.asarray(report["real"]["states"])
    fig, axes = plt.subplots(1, o + 2, figsize=(3.2 * (o + 2), 3.2), squeeze=False)
    steps = np.arange(h1)
    for d, ax in enumerate(axes[0, :o]):
        for i in range(1, s):  # runners-up: the ensemble mean
            ax.plot(steps, states[:, i, :, d].mean(0), color="0.7", lw=1, ls="--")
        for m in range(e):  # the chosen plan, one line per member
            ax.plot(steps, states[m, 0, :, d], color="tab:blue", lw=0.8, alpha=0.6)
        ax.plot(np.arange(len(real)), real[:, d], color="black", lw=1.6)
        ax.set_title(f"state[{d}]")
        ax.set_xlabel("steps ahead")
    ax = axes[0, o]
    ax.plot(report["chosen"]["predicted_rewards"], color="tab:blue", label="predicted")
    ax.plot(report["real"]["rewards"], color="black", label="real")
    ax.set_title("reward of the chosen plan")
    ax.legend(fontsize=7)
    ax = axes[0, o + 1]
    ax.plot(report["chosen"]["epistemic"], label="epistemic")
    ax.plot(report["chosen"]["aleatoric"], label="aleatoric")
    ax.set_title("model uncertainty along it")
    ax.legend(fontsize=7)
    chosen = report["chosen"]
    runners = ", ".join(f"{r['predicted_return']:.1f}" for r in report["runners_up"])
    fig.suptitle(
        f"{report['env']} step {report['step']}: action {np.round(report['action'], 3).tolist()} "
        f"(predicted return {chosen['predicted_return']:.1f}, real {report['real']['return']:.1f}; "
        f"runners-up {runners}); blue: each member, grey: runners-up, black: real",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
