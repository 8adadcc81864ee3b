"""The README's examples run against the local stack, so they cannot rot.

Fenced blocks tagged `python` or `bash` are run; `sh` and `text` blocks are
not (set-up commands and sample output). The README's URL
(http://localhost:8080/pipeline) becomes the stack's, and its credentials are
the stack's static user already. Bash blocks get the password from
$KFP_AUTH_PASSWORD, as the README says the CLI can.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from stack import PASSWORD, Stack

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```(python|bash)\n(.*?)^```", README.read_text(), re.M | re.S)


def test_the_readme_has_runnable_examples() -> None:
    langs = [lang for lang, _ in BLOCKS]
    assert langs.count("python") >= 3 and langs.count("bash") >= 1


@pytest.mark.parametrize("lang,code", BLOCKS, ids=[f"{i}-{lang}" for i, (lang, _) in enumerate(BLOCKS)])
def test_readme_example(kubeflow: Stack, tmp_path: Path, lang: str, code: str) -> None:
    code = code.replace("http://localhost:8080/pipeline", kubeflow.api_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFP_AUTH_", "KF_PIPELINES_"))}
    env |= {"HOME": str(tmp_path), "KFP_AUTH_PASSWORD": PASSWORD,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    argv = [sys.executable, "-c", code] if lang == "python" else ["bash", "-euo", "pipefail", "-c", code]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{lang} example failed:\n{code}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
