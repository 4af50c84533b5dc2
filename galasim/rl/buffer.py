"""Rollout storage on the learner's device, and the n-step / GAE targets (SB3's RolloutBuffer idea)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RolloutSamples:
    """One update's batch, flattened over (steps, envs)."""

    log_probs: torch.Tensor
    values: torch.Tensor  # with the graph (the value loss trains through it)
    entropy: torch.Tensor
    advantages: torch.Tensor  # no graph: targets
    returns: torch.Tensor  # no graph: targets


class RolloutBuffer:
    """``n_steps`` transitions of ``num_envs`` simulators, preallocated on ``device``.

    The log-probabilities, values and entropies are kept *with their autograd graph* from acting, so
    the update needs no second forward pass over the rollout.
    """

    def __init__(self, n_steps: int, num_envs: int, device: torch.device):
        self.n_steps, self.num_envs = n_steps, num_envs
        self.rewards = torch.zeros(n_steps, num_envs, device=device)
        self.dones = torch.zeros(n_steps, num_envs, device=device)
        self.reset()

    def reset(self) -> None:
        self.log_probs: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.entropy: list[torch.Tensor] = []

    def add(self, t: int, log_prob: torch.Tensor, value: torch.Tensor, entropy: torch.Tensor,
            reward: torch.Tensor, done: torch.Tensor) -> None:
        self.log_probs.append(log_prob)
        self.values.append(value)
        self.entropy.append(entropy)
        self.rewards[t] = reward
        self.dones[t] = done

    def samples(self, next_value: torch.Tensor, gamma: float, gae: bool = False,
                gae_lambda: float = 0.95) -> RolloutSamples:
        values = torch.stack(self.values)
        advantages, returns = compute_targets(self.rewards, self.dones, values.detach(), next_value,
                                              gamma, gae, gae_lambda)
        return RolloutSamples(torch.stack(self.log_probs).reshape(-1), values.reshape(-1),
                              torch.stack(self.entropy).reshape(-1), advantages.reshape(-1),
                              returns.reshape(-1))


def compute_targets(rewards: torch.Tensor, dones: torch.Tensor, values: torch.Tensor,
                    next_value: torch.Tensor, gamma: float, gae: bool = False,
                    gae_lambda: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns of a rollout (shape ``(steps, envs)``).

    ``dones[t]`` means transition ``t`` ended the episode (for learning), so nothing is
    bootstrapped through it. n-step: ``R_t = r_t + gamma (1 - d_t) R_{t+1}`` from
    ``R_T = V(s_T)``, advantage ``R_t - V(s_t)``. GAE:
    ``A_t = delta_t + gamma lambda (1 - d_t) A_{t+1}`` with
    ``delta_t = r_t + gamma (1 - d_t) V(s_{t+1}) - V(s_t)``, return ``A_t + V(s_t)``.

    Examples
    --------
    >>> r = torch.tensor([[1.0], [1.0]]); d = torch.tensor([[0.0], [1.0]])
    >>> adv, ret = compute_targets(r, d, torch.zeros(2, 1), torch.tensor([5.0]), gamma=0.5)
    >>> ret.squeeze(1).tolist()  # the done at t=1 cuts the bootstrap of V(s_2) = 5
    [1.5, 1.0]
    """
    steps = rewards.shape[0]
    not_done = 1.0 - dones
    advantages = torch.zeros_like(rewards)
    if gae:
        last = torch.zeros_like(next_value)
        for t in reversed(range(steps)):
            nxt = next_value if t == steps - 1 else values[t + 1]
            delta = rewards[t] + gamma * not_done[t] * nxt - values[t]
            last = delta + gamma * gae_lambda * not_done[t] * last
            advantages[t] = last
        return advantages, advantages + values
    returns = torch.zeros_like(rewards)
    running = next_value
    for t in reversed(range(steps)):
        running = rewards[t] + gamma * not_done[t] * running
        returns[t] = running
    return returns - values, returns
