"""A regular (non-editable) build ships every subpackage: galasim.rl and galasim.gossip included."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_rl_and_gossip(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
         "-w", str(tmp_path), "-q"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("galasim-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("galasim/rl/__init__.py", "galasim/rl/learner.py", "galasim/rl/train.py",
                   "galasim/gossip/__init__.py", "galasim/gossip/buffer.py", "galasim/gossip/shm.py",
                   "galasim/gossip/transport.py", "galasim/cli/train_cmd.py", "galasim/cli/evaluate_cmd.py"):
        assert module in names, module
    # importable from the wheel alone (not the source tree): unpack and import in a clean process
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = "import galasim.rl.train, galasim.gossip.buffer, galasim.gossip.shm; print(galasim.rl.train.__file__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": ""}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith(str(target))
