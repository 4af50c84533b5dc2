"""Vectorised environments with one interface for the learner, and galasim's true episode scores.

* Atari ids (``PongNoFrameskip-v4``, ``ALE/Pong-v5``, ``pong``) run on ale-py's native
  :class:`ale_py.vector_env.AtariVectorEnv` (C++ threads) with the DeepMind settings: frameskip 4 with
  max-pool, 84x84 gray, 4-frame stack, up to 30 no-op resets, fire reset, sticky actions 0 by default.
  Its traps, handled here: ``reward_clipping=False`` (the learner clips; scores stay true),
  ``life_loss_info=True`` (a life loss is *terminal for learning* while the game goes on;
  ``episodic_life=True`` would reset the whole game on every life loss, so it is never used), no
  episode statistics (we sum the unclipped rewards over all lives ourselves) and same-step autoreset
  (so every transition the learner sees is a real one: no reset step with an ignored action).
* Any other gymnasium id runs on gymnasium's synchronous vector env, also with same-step autoreset.

:meth:`VecEnv.step` returns ``obs, reward, done, episodes`` where ``done`` ends the bootstrap (a
life loss, a game over or a time limit) and ``episodes`` lists the ``(true_return, length)`` of
every *game* that ended on this step (all lives).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import numpy as np

ATARI_FRAMESKIP = 4


@dataclass(frozen=True)
class EnvSpec:
    """A resolved environment id: ``kind`` is ``atari`` (``game`` is the ROM) or ``gym``."""

    kind: str
    name: str
    frameskip: int = 1

    @property
    def game(self) -> str:
        return self.name


def _atari_games() -> list[str]:
    from ale_py import roms

    return sorted(roms.get_all_rom_ids())


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def resolve_env(env_id: str) -> EnvSpec:
    """Resolve ``env_id`` to an Atari game or a gymnasium id; unknown ids list close matches.

    Examples
    --------
    >>> resolve_env("PongNoFrameskip-v4"), resolve_env("ALE/MsPacman-v5").name, resolve_env("pong").name
    (EnvSpec(kind='atari', name='pong', frameskip=4), 'ms_pacman', 'pong')
    >>> resolve_env("CartPole-v1").kind
    'gym'
    """
    if not isinstance(env_id, str) or not env_id.strip():
        raise ValueError(f"env must be a non-empty environment id, got {env_id!r}")
    games = _atari_games()
    stem = env_id.strip()
    match = re.fullmatch(r"(?:ALE/)?([A-Za-z0-9_]+?)(?:NoFrameskip|Deterministic)?(?:-v\d+)?", stem)
    if match:
        game = _snake(match.group(1))
        if game in games:
            return EnvSpec("atari", game, ATARI_FRAMESKIP)
    import gymnasium as gym

    if stem in gym.registry:
        return EnvSpec("gym", stem, 1)
    known = sorted(set(gym.registry) | set(games))
    close = difflib.get_close_matches(stem, known, n=5, cutoff=0.6)
    close += [g for g in difflib.get_close_matches(_snake(stem.split("/")[-1].split("-")[0]), games, n=3)
              if g not in close]
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise ValueError(f"unknown environment {env_id!r}{hint} (any gymnasium id or Atari game works, "
                     "e.g. CartPole-v1, PongNoFrameskip-v4, ALE/Breakout-v5, pong)")


class VecEnv:
    """A batch of ``num_envs`` environments; tracks true episode returns and lengths.

    Parameters
    ----------
    env_id : str
        Atari or gymnasium id (see :func:`resolve_env`).
    num_envs : int
        Simulators.
    seed : int
        Seed of the first simulator; simulator ``j`` gets ``seed + j`` (the caller derives ``seed``
        per learner with :func:`galasim.sim.rng.stream_key`, so learners never share streams).
    sticky_actions : float
        Atari repeat-action probability.
    render : bool
        gymnasium envs: create them with ``render_mode="rgb_array"``.
    max_episode_frames : int
        Atari: truncate a game after this many frames.
    """

    def __init__(self, env_id: str, num_envs: int, seed: int, sticky_actions: float = 0.0,
                 render: bool = False, max_episode_frames: int = 108_000):
        self.spec = resolve_env(env_id)
        self.num_envs = int(num_envs)
        seed = int(seed) % (2**31 - num_envs)  # ALE and gymnasium take 31-bit seeds
        if self.spec.kind == "atari":
            from ale_py.vector_env import AtariVectorEnv

            self.env = AtariVectorEnv(
                self.spec.game, self.num_envs, num_threads=min(self.num_envs, 4),
                repeat_action_probability=float(sticky_actions), frameskip=ATARI_FRAMESKIP,
                noop_max=30, use_fire_reset=True, episodic_life=False, life_loss_info=True,
                reward_clipping=False, autoreset_mode="SameStep",
                max_num_frames_per_episode=int(max_episode_frames),
            )
        else:
            import gymnasium as gym

            self.env = gym.make_vec(
                self.spec.name, num_envs=self.num_envs, vectorization_mode="sync",
                vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
                render_mode="rgb_array" if render else None,
            )
        self.observation_space = self.env.single_observation_space
        self.action_space = self.env.single_action_space
        if not hasattr(self.action_space, "n"):
            raise ValueError(f"environment {env_id!r} has a {type(self.action_space).__name__} action "
                             "space; galasim's A2C supports discrete actions only")
        self.seed = seed
        self.returns = np.zeros(self.num_envs)
        self.lengths = np.zeros(self.num_envs, dtype=np.int64)
        self.lives = np.zeros(self.num_envs, dtype=np.int64)

    @property
    def frameskip(self) -> int:
        """Emulator frames per agent step (4 for Atari, 1 otherwise)."""
        return self.spec.frameskip

    def reset(self) -> np.ndarray:
        obs, info = self.env.reset(seed=self.seed)
        self.returns[:] = 0
        self.lengths[:] = 0
        if self.spec.kind == "atari":
            self.lives[:] = info["lives"]
        return obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[float, int]]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        reward = np.asarray(reward, dtype=np.float64)
        done = np.logical_or(terminated, truncated)
        self.returns += reward
        self.lengths += 1
        if self.spec.kind == "atari":
            # With life_loss_info a life loss is `terminated` while the game goes on (lives drop);
            # at a game over the same-step reset reports the new game's lives (>= the old count).
            lives = np.asarray(info["lives"], dtype=np.int64)
            game_over = np.logical_or(truncated, np.logical_and(terminated, lives >= self.lives))
            self.lives[:] = lives
        else:
            game_over = done
        episodes = []
        for j in np.flatnonzero(game_over):
            episodes.append((float(self.returns[j]), int(self.lengths[j])))
            self.returns[j] = 0
            self.lengths[j] = 0
        return obs, reward, done, episodes

    def close(self) -> None:
        self.env.close()
