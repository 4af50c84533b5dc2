"""Atari through ale-py's AtariVectorEnv: life loss, true scores, truncation (Breakout has 5 lives)."""
from __future__ import annotations

import numpy as np
import torch

from galasim.rl.config import TrainConfig
from galasim.rl.envs import VecEnv
from galasim.rl.learner import Learner


def test_breakout_life_loss_is_terminal_for_learning_but_the_episode_spans_all_lives():
    env = VecEnv("BreakoutNoFrameskip-v4", 2, seed=3)
    env.reset()
    rng = np.random.default_rng(0)
    dones = [0, 0]
    rewards = [0.0, 0.0]
    steps = [0, 0]
    games = []
    for _ in range(5000):
        _, reward, done, episodes = env.step(rng.integers(0, env.action_space.n, size=2))
        for j in range(2):
            dones[j] += int(done[j])
            rewards[j] += float(reward[j])
            steps[j] += 1
        for ret, length in episodes:
            games.append((ret, length))
        if len(games) >= 2:
            break
    env.close()
    assert len(games) >= 1
    # every game of Breakout is 5 lives: 5 terminal signals for learning, one reported episode
    assert sum(dones) >= 5 * len(games)
    # the reported length is the whole game: much longer than one life (about a fifth of it)
    ret, length = games[0]
    assert length > 100 and ret >= 0 and float(ret).is_integer()


def test_breakout_learner_smoke_true_scores_span_lives():
    cfg = TrainConfig(env="breakout", algo="a2c", agents=1, envs_per_agent=4, out="unused", seed=1)
    torch.set_num_threads(1)
    learner = Learner(cfg, 0, torch.device("cpu"), 4)
    learning_dones = 0
    while not learner.episodes:
        learner.iterate()
        learning_dones += int(learner.storage.dones.sum())
    # learning saw a terminal per life lost; the logged episode (true score, all lives) is one game
    assert learning_dones >= 5
    ret, length, frames = learner.episodes[0]
    assert length * 4 <= frames and length > 100
    assert learner.L > 0
    learner.close()


def test_pong_truncation_ends_the_episode_with_its_unclipped_score():
    env = VecEnv("pong", 2, seed=0, max_episode_frames=400)
    env.reset()
    episodes = []
    for _ in range(200):
        _, reward, done, ended = env.step(np.zeros(2, dtype=np.int64))
        episodes += ended
    env.close()
    assert episodes and all(length <= 100 for _, length in episodes)
