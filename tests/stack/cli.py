"""Running the installed `kfp-auth` command as a user would: a clean environment
with its own HOME, the password from KFP_AUTH_PASSWORD."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from . import FAST_PASSWORD

BIN = Path(sys.executable).parent


def run(
    args: list[str],
    home: Path,
    *,
    password: str | None = FAST_PASSWORD,
    stdin: str | None = None,
    extra_env: dict[str, str] | None = None,
    tool: str = "kfp-auth",
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFP_AUTH_", "KF_PIPELINES_", "XDG_"))}
    env["HOME"] = str(home)  # and so the caches are under home/.cache
    if password is not None:
        env["KFP_AUTH_PASSWORD"] = password
    env.update(extra_env or {})
    return subprocess.run(
        [str(BIN / tool), *args], input=stdin, capture_output=True, text=True, env=env, timeout=120, cwd=cwd
    )
