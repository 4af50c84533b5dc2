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

    With ``keep_graph`` the log-probabilities, values and entropies are kept *with their autograd
    graph* from acting, so the update needs no second forward pass over the rollout. Without it the
    learner acts without a graph, the buffer keeps the observations and actions, and
    :meth:`samples` runs the model once over the whole rollout (one batched backward instead of one
    per step: faster with few simulators, see ``TrainConfig.acting_graph``).
    """

    def __init__(self, n_steps: int, num_envs: int, device: torch.device, keep_graph: bool = True,
                 obs_shape: tuple[int, ...] = (), obs_dtype: torch.dtype = torch.float32):
        self.n_steps, self.num_envs, self.keep_graph = n_steps, num_envs, keep_graph
        self.rewards = torch.zeros(n_steps, num_envs, device=device)
        self.dones = torch.zeros(n_steps, num_envs, device=device)
        if not keep_graph:
            self.obs = torch.zeros((n_steps, num_envs, *obs_shape), dtype=obs_dtype, device=device)
            self.actions = torch.zeros((n_steps, num_envs), dtype=torch.int64, device=device)
        self.reset()

    def reset(self) -> None:
        self.log_probs: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.entropy: list[torch.Tensor] = []

    def add(self, t: int, obs: torch.Tensor, action: torch.Tensor, dist: torch.distributions.Categorical,
            value: torch.Tensor, reward: torch.Tensor, done: torch.Tensor) -> None:
        """Transition ``t``: the policy ``dist`` and ``value`` computed from ``obs``, and ``action``."""
        if self.keep_graph:
            self.log_probs.append(dist.log_prob(action))
            self.values.append(value)
            self.entropy.append(dist.entropy())
        else:
            self.obs[t] = obs
            self.actions[t] = action
        self.rewards[t] = reward
        self.dones[t] = done

    def samples(self, next_value: torch.Tensor, gamma: float, gae: bool = False,
                gae_lambda: float = 0.95, model: torch.nn.Module | None = None) -> RolloutSamples:
        """The update's batch; without ``keep_graph``, ``model`` recomputes it from the observations."""
        if self.keep_graph:
            values = torch.stack(self.values)
            log_probs, entropy = torch.stack(self.log_probs), torch.stack(self.entropy)
        else:
            logits, values = model(self.obs.flatten(0, 1))
            dist = torch.distributions.Categorical(logits=logits)
            log_probs, entropy = dist.log_prob(self.actions.flatten()), dist.entropy()
            values = values.view(self.n_steps, self.num_envs)
        advantages, returns = compute_targets(self.rewards, self.dones, values.detach(), next_value,
                                              gamma, gae, gae_lambda)
        return RolloutSamples(log_probs.reshape(-1), values.reshape(-1), entropy.reshape(-1),
                              advantages.reshape(-1), returns.reshape(-1))


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
