"""The examples of README.md and of every docs/*.md page run against the local stack, so they cannot rot.

Which fenced blocks run, by their tag:

- `python`: run, in a fresh interpreter;
- `bash`: run, with `bash -euo pipefail`;
- `py`: Python that is not run, because it needs what the local stack lacks
  (a pod's token file, a token the gateway accepts, a remote Kubeflow);
- `sh`: shell commands that are not run (installs, builds, fuzzing);
- `text`: sample output, not run.

Every fenced block must carry one of these tags, so a misspelt or missing tag
cannot silently drop an example. Two URLs are rewritten: the Kubeflow gateway
http://localhost:8080/pipeline becomes the stack's, and the standalone KFP at
http://localhost:3000 (a port-forward to ml-pipeline-ui) becomes the stack's
KFP API server with no gateway. The credentials in the examples are the
stack's static user already. Bash blocks get the password from
$KFP_AUTH_PASSWORD, as the CLI page says the CLI can.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stack import PASSWORD, Stack

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
RUN = ("python", "bash")
NOT_RUN = ("py", "sh", "text")
KUBEFLOW_URL = "http://localhost:8080/pipeline"
STANDALONE_URL = "http://localhost:3000"


def fences(page: Path) -> list[tuple[str, str]]:
    """Every fenced block of a page, as (tag, code), in order."""
    return FENCE.findall(page.read_text())


def name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


# (page, index of the block among the page's blocks, tag, code) for every block that runs.
BLOCKS = [(name(page), i, lang, code) for page in PAGES for i, (lang, code) in enumerate(fences(page)) if lang in RUN]


def test_every_block_is_tagged_to_run_or_not() -> None:
    for page in PAGES:
        text = page.read_text()
        found = fences(page)
        untagged = [lang or "(none)" for lang, _ in found if lang not in RUN + NOT_RUN]
        assert not untagged, f"{name(page)}: fenced blocks tagged {untagged}; use one of {RUN + NOT_RUN}"
        # A fence the pattern misses (indented, or with more backticks) would be an example nobody runs.
        fence_lines = len(re.findall(r"^\s*```", text, re.M))
        assert fence_lines == 2 * len(found), f"{name(page)}: a fenced block is not at the start of its line"


def test_the_pages_have_runnable_examples() -> None:
    assert (ROOT / "docs").is_dir() and len(PAGES) >= 10
    langs = [lang for _, _, lang, _ in BLOCKS]
    assert langs.count("python") >= 6 and langs.count("bash") >= 1
    in_readme = [code for page, _, lang, code in BLOCKS if page == "README.md" and lang == "python"]
    assert len(in_readme) >= 2, "the README's quick start and its no-login example must run"
    assert KUBEFLOW_URL in in_readme[0] and STANDALONE_URL in "".join(in_readme)


def test_no_page_repeats_a_section() -> None:
    # A merge can take a section from each side and keep both; one heading twice is the sign.
    for page in PAGES:
        text = FENCE.sub("", page.read_text())
        headings = re.findall(r"^#+ .*$", text, re.M)
        repeated = sorted({h for h in headings if headings.count(h) > 1})
        assert not repeated, f"{name(page)} repeats {repeated}"
    assert (ROOT / "README.md").read_text().count("<!-- wheels:start -->") == 1


def test_the_readme_links_resolve() -> None:
    # mkdocs --strict checks the links inside docs/; this checks the README's, which it does not read.
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    local = [link for link in links if "://" not in link]
    assert local, "the README links into docs/"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


@pytest.mark.parametrize(
    "page,index,lang,code", BLOCKS, ids=[f"{page}-{index}-{lang}" for page, index, lang, _ in BLOCKS]
)
def test_example(
    kubeflow: Stack, standalone_kfp: str, tmp_path: Path, page: str, index: int, lang: str, code: str
) -> None:
    code = code.replace(KUBEFLOW_URL, kubeflow.api_url).replace(STANDALONE_URL, standalone_kfp)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFP_AUTH_", "KF_PIPELINES_"))}
    env |= {
        "HOME": str(tmp_path),
        "KFP_AUTH_PASSWORD": PASSWORD,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    }
    argv = [sys.executable, "-c", code] if lang == "python" else ["bash", "-euo", "pipefail", "-c", code]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (
        f"{lang} example {index} of {page} failed:\n{code}\n"
        f"--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
    )
