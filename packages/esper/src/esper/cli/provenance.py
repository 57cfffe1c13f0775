"""Where a run came from (TRAINING_STARTED's `provenance`): the code's git commit, the command, the versions and the
machine."""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import torch

from esper.leyline import Provenance

_CODE_DIR = Path(__file__).resolve().parent


def _git(*args: str) -> str | None:
    """git's output for the checkout holding this code; None when there is no git or no checkout (a wheel)."""
    git = shutil.which("git")
    if git is None:
        return None
    done = subprocess.run([git, "-C", str(_CODE_DIR), *args], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def provenance() -> Provenance:
    """Read now, in the process that trains. The commit is the checkout's that holds the esper code that runs (an
    editable install from the repository); `git_dirty` counts changes to tracked files only."""
    commit = _git("rev-parse", "HEAD")
    status = None if commit is None else _git("status", "--porcelain", "--untracked-files=no")
    return Provenance(
        git_commit=commit,
        git_dirty=None if status is None else status != "",
        command_line=tuple(sys.argv),
        esper_version=importlib.metadata.version("esper"),
        torch_version=torch.__version__,
        python_version=platform.python_version(),
        host_name=socket.gethostname(),
        platform=platform.platform(),
    )
