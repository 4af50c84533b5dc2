"""``galasim evaluate``: play a trained learner and report true episode scores (unclipped, all lives)."""
from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from galasim._validation import integer
from galasim.rl import checkpoint
from galasim.rl.config import MAX_THREADS, TrainConfig

MAX_EPISODES = 10_000  # Atari papers report 30 to 200 games; 10,000 games of Pong take days on a CPU
MAX_STEPS = 1_000_000  # agent steps: the safety bound of one evaluation (an agent may never end a game)


@dataclass
class EvalResult:
    """True scores of ``episodes`` finished games."""

    returns: list[float]
    lengths: list[int]

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns)) if self.returns else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.returns)) if self.returns else math.nan


def evaluate(run_dir: str | Path, episodes: int = 10, learner: int = 0, seed: int = 12345,
             video: str | Path | None = None, deterministic: bool = False,
             max_steps: int = MAX_STEPS, progress: bool = False, threads: int = 1) -> EvalResult:
    """Play ``episodes`` games with learner ``learner`` of the run in ``run_dir``.

    Parameters
    ----------
    run_dir : str or Path
        A ``galasim train`` run folder (``config.json`` and ``checkpoints/``).
    episodes : int
        Games to finish (several simulators play in parallel; the first ``episodes`` to end count).
    learner : int
        Which learner's parameters to play.
    seed : int
        Seed of the evaluation simulators and action sampling (not the training seed).
    video : path, optional
        Write what the agent sees (the newest frame of its observation) of simulator 0 to this .mp4.
    deterministic : bool
        Greedy actions instead of sampling from the policy.
    max_steps : int
        Safety bound on agent steps (each steps all simulators); ``returns`` then holds fewer than
        ``episodes`` games.
    progress : bool
        Show a progress bar of finished games.
    threads : int
        torch threads while playing (restored afterwards). One, as a learner's default: with two,
        a Pong evaluation beside a training run on a 2-core machine was 25x slower per step.
    """
    from galasim.rl.envs import VecEnv
    from galasim.rl.learner import torch_threads
    from galasim.rl.model import make_model

    run_dir = Path(run_dir)
    episodes = integer("episodes", episodes, 1, MAX_EPISODES)
    config = run_dir / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a galasim run folder (no config.json)")
    cfg = TrainConfig.from_dict(json.loads(config.read_text()))
    learner = integer("learner", learner, 0, cfg.learners - 1)
    threads = integer("threads", threads, 1, MAX_THREADS)
    state = checkpoint.load_learner(run_dir, learner)
    num_envs = min(episodes, 8)
    envs = VecEnv(cfg.env, num_envs, seed, cfg.sticky_actions, max_episode_frames=cfg.max_episode_frames)
    model, params = make_model(envs.observation_space.shape, envs.action_space.n, cfg.seed, cfg.hidden,
                               precision=cfg.precision)
    with torch.no_grad():
        params.copy_(state["learner"]["params"])
    generator = torch.Generator().manual_seed(seed)
    video_path = _video_path(video, envs) if video else None
    writer = bar = None
    returns: list[float] = []
    lengths: list[int] = []
    completed = False
    try:
        with torch_threads(threads):
            if video_path is not None:
                writer = _open_video(video_path)
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=episodes, unit="game", dynamic_ncols=True, desc=f"learner {learner}")
            obs = envs.reset()
            for _ in range(max_steps):
                with torch.no_grad():
                    logits, _ = model(torch.as_tensor(obs))
                if deterministic:
                    action = logits.argmax(-1)
                else:
                    action = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(1)
                obs, _, _, done_games = envs.step(action.numpy())
                if writer is not None:
                    writer.write(_frame(obs[0]))
                for ret, length in done_games:
                    returns.append(ret)
                    lengths.append(length)
                if bar is not None and done_games:
                    bar.update(min(len(done_games), episodes - bar.n))
                if len(returns) >= episodes:
                    break
            completed = True
    finally:
        envs.close()
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.release()
        if video_path is not None:
            _finish_video(video_path, keep=completed)
    return EvalResult(returns[:episodes], lengths[:episodes])


def _frame(obs: np.ndarray) -> np.ndarray:
    import cv2

    frame = obs[-1] if obs.ndim == 3 else obs  # newest of the stacked 84x84 gray frames
    frame = cv2.resize(frame.astype(np.uint8), (336, 336), interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


# The video is written beside its path and renamed onto it once complete, so an interrupted
# evaluation leaves no truncated file (and keeps an older one).
def _video_path(path: str | Path, envs) -> Path:
    """``path`` checked (an .mp4 of an Atari run), its folder created."""
    if envs.spec.kind != "atari":
        raise ValueError("--video records Atari observations; this run's environment has no frames")
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"--video must be an .mp4 path, got {str(path)!r}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--video {str(path)!r}: cannot create its folder ({exc.strerror})") from None
    return path


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial.mp4")  # cv2 picks the codec by the suffix


def _open_video(path: Path):
    import cv2

    writer = cv2.VideoWriter(str(_partial(path)), cv2.VideoWriter_fourcc(*"mp4v"), 15, (336, 336))
    if not writer.isOpened():
        raise ValueError(f"--video {str(path)!r}: cannot write there")
    return writer


def _finish_video(path: Path, keep: bool) -> None:
    if keep:
        os.replace(_partial(path), path)
    else:
        with contextlib.suppress(OSError):
            _partial(path).unlink()
