"""Our agents and players under rl-games' algorithm names (apart from ``rlgames_env``, which the
agents build on, so that no module imports its own importers)."""
from __future__ import annotations

from .mixture_agent import MixtureAgent
from .prior_agent import PriorAnchoredAgent, PriorAnchoredContinuousAgent, register as register_prior_networks
from .rlgames_env import (ContinuousAgent, DiscreteAgent, PpoPlayerContinuous, PpoPlayerDiscrete, SACAgent,
                          SACPlayer)


def register_agents(runner) -> None:
    """Our agents and players for every algorithm name, so no rl-games loader runs unchecked."""
    register_prior_networks()
    for name, agent in (("a2c_continuous", ContinuousAgent), ("a2c_discrete", DiscreteAgent),
                        ("hrl_mixture", MixtureAgent), ("hrl_prior_discrete", PriorAnchoredAgent),
                        ("hrl_prior_continuous", PriorAnchoredContinuousAgent), ("sac", SACAgent)):
        runner.algo_factory.register_builder(name, lambda _cls=agent, **kw: _cls(**kw))
    for name, player in (("a2c_continuous", PpoPlayerContinuous), ("a2c_discrete", PpoPlayerDiscrete),
                         ("hrl_mixture", PpoPlayerContinuous), ("hrl_prior_discrete", PpoPlayerDiscrete),
                         ("hrl_prior_continuous", PpoPlayerContinuous), ("sac", SACPlayer)):
        runner.player_factory.register_builder(name, lambda _cls=player, **kw: _cls(**kw))
