"""The release workflow: actionlint passes on it and catches breaks in it, and it
publishes only on a v* tag, only after every smoke job.

actionlint is built from its Go module by scripts/build-actionlint.sh (`make lint`).
The workflow is read with regular expressions: PyYAML is not in requirements-dev.txt.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
BUILD_SCRIPT = ROOT / "scripts" / "build-actionlint.sh"
BIN = Path(os.environ.get("KFP_AUTH_CACHE", ROOT / ".cache")) / "bin"
ACTIONLINT = BIN / "actionlint"
BUILD_HINT = f"build it with: bash {BUILD_SCRIPT.relative_to(ROOT)} (or: make lint)"


def actionlint_binary() -> Path:
    if not os.access(ACTIONLINT, os.X_OK):
        pytest.fail(f"actionlint is not at {ACTIONLINT}; {BUILD_HINT}", pytrace=False)
    pinned = re.search(r'^ACTIONLINT_VERSION="([^"]+)"', BUILD_SCRIPT.read_text(), re.M)
    assert pinned, f"no ACTIONLINT_VERSION in {BUILD_SCRIPT}"
    stamp = BIN / "actionlint.version"
    built = stamp.read_text().strip() if stamp.exists() else "unknown"
    if built != pinned.group(1):
        pytest.fail(f"{ACTIONLINT} is {built}, the script pins {pinned.group(1)}; {BUILD_HINT}", pytrace=False)
    return ACTIONLINT


def run_actionlint(project: Path) -> tuple[int, list[dict[str, Any]], str]:
    """actionlint on project's .github/workflows/release.yml: exit code, its errors as JSON, stderr."""
    cmd = [str(actionlint_binary()), "-format", "{{json .}}", ".github/workflows/release.yml"]
    r = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=120)
    errors = json.loads(r.stdout) if r.stdout.strip() else []
    return r.returncode, errors, r.stderr


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = WORKFLOW.read_text()
    assert text.count(old) == 1, f"the break needs {old!r} once in {WORKFLOW}"
    dest = tmp_path / ".github" / "workflows" / "release.yml"
    dest.parent.mkdir(parents=True)
    dest.write_text(text.replace(old, new))
    return tmp_path


def describe(errors: list[dict[str, Any]]) -> str:
    return "\n".join(f"{e['filepath']}:{e['line']}:{e['column']}: {e['message']} [{e['kind']}]" for e in errors)


def test_actionlint_passes_on_the_workflow() -> None:
    code, errors, stderr = run_actionlint(ROOT)
    assert (code, errors) == (0, []), (
        f"actionlint failed (exit {code}); run: {ACTIONLINT} {WORKFLOW.relative_to(ROOT)}\n{describe(errors)}\n{stderr}"
    )


def test_actionlint_catches_an_indentation_error(tmp_path: Path) -> None:
    # `steps:` pushed under `runs-on:` is no longer valid YAML.
    project = broken_copy(
        tmp_path,
        "  sdist:\n    runs-on: ubuntu-latest\n    steps:\n",
        "  sdist:\n    runs-on: ubuntu-latest\n      steps:\n",
    )
    code, errors, stderr = run_actionlint(project)
    assert code != 0, f"actionlint passed a workflow with an indentation error\n{stderr}"
    assert any("could not parse as YAML" in e["message"] for e in errors), describe(errors) or stderr


def test_actionlint_catches_an_unknown_key(tmp_path: Path) -> None:
    project = broken_copy(
        tmp_path,
        "  check-version:\n    if: startsWith(github.ref, 'refs/tags/v')\n    runs-on:",
        "  check-version:\n    if: startsWith(github.ref, 'refs/tags/v')\n    runs-onn:",
    )
    code, errors, stderr = run_actionlint(project)
    assert code != 0, f"actionlint passed a workflow with an unknown key\n{stderr}"
    assert any('unexpected key "runs-onn"' in e["message"] for e in errors), describe(errors) or stderr
    assert any('"runs-on" section is missing in job "check-version"' in e["message"] for e in errors), describe(errors)


def test_actionlint_catches_an_unknown_job_in_needs(tmp_path: Path) -> None:
    project = broken_copy(tmp_path, "needs: [check-version, sdist,", "needs: [check-versions, sdist,")
    code, errors, stderr = run_actionlint(project)
    assert code != 0, f"actionlint passed a publish job that needs a job that does not exist\n{stderr}"
    assert any('needs job "check-versions" which does not exist' in e["message"] for e in errors), (
        describe(errors) or stderr
    )


# --- The release policy, read from the workflow's text ---------------------------------


def jobs(text: str) -> dict[str, str]:
    """Each job's id and its block of text (jobs sit at two spaces under `jobs:`)."""
    body = text.split("\njobs:\n", 1)[1]
    found: dict[str, str] = {}
    current = None
    for line in body.splitlines():
        m = re.match(r"^  ([A-Za-z0-9_-]+):\s*$", line)
        if m:
            current = m.group(1)
            found[current] = ""
        elif re.match(r"^\S", line):
            break  # a top-level key after jobs:
        elif current is not None:
            found[current] += line + "\n"
    return found


def needs(block: str) -> set[str]:
    flow = re.search(r"^    needs:\s*\[([^\]]*)\]", block, re.M)
    if flow:
        return {n.strip() for n in flow.group(1).split(",") if n.strip()}
    one = re.search(r"^    needs:\s*([A-Za-z0-9_-]+)\s*$", block, re.M)
    if one:
        return {one.group(1)}
    listed = re.search(r"^    needs:\s*\n((?:      - .*\n)+)", block, re.M)
    if listed:
        return {item.strip()[2:].strip() for item in listed.group(1).splitlines()}
    return set()


def job_if(block: str) -> str:
    m = re.search(r"^    if:\s*(.+)$", block, re.M)
    return m.group(1) if m else ""


def policy_problems(text: str) -> list[str]:
    """Why this workflow text could publish when it should not (empty when it cannot)."""
    problems = []
    all_jobs = jobs(text)
    publishers = [j for j, b in all_jobs.items() if "pypa/gh-action-pypi-publish@" in b]
    if publishers != ["publish"]:
        return [f"PyPI is published by {publishers or 'no job'}, not by the publish job alone"]
    publish = all_jobs["publish"]
    smoke = {j for j in all_jobs if j.startswith("smoke-")}
    if len(smoke) < 4:
        problems.append(f"expected smoke jobs for Linux, macOS, Windows and the emulated wheels, found {sorted(smoke)}")
    missing = (smoke | {"check-version", "sdist"}) - needs(publish)
    if missing:
        problems.append(f"publish does not wait for {sorted(missing)}")
    cond = job_if(publish)
    if "startsWith(github.ref, 'refs/tags/v')" not in cond or "github.event_name == 'push'" not in cond:
        problems.append(f"publish runs on more than a pushed v* tag: if: {cond!r}")
    if "always()" in cond or "failure()" in cond or "cancelled()" in cond:
        problems.append(f"publish can run after a failed job: if: {cond!r}")
    if not re.search(r"^    permissions:\n      (#.*\n      )*id-token: write\n", publish, re.M):
        problems.append("publish lacks `permissions: id-token: write` (trusted publishing)")
    if not re.search(r"^    environment:\n      name: pypi\n", publish, re.M):
        problems.append("publish is not in the `pypi` environment")
    if not re.search(r"^permissions:\n  contents: read\n", text, re.M):
        problems.append("the workflow's default permissions are not `contents: read`")
    if "id-token: write" in text.replace(publish, ""):
        problems.append("a job other than publish can mint an OIDC token")
    if not re.search(r"^  push:\n(    .*\n)*?    tags: \[\"v\*\"\]\n", text, re.M):
        problems.append('the workflow does not run on pushed v* tags (`tags: ["v*"]`)')
    check = all_jobs.get("check-version", "")
    if "Cargo.toml" not in check or '"v$version"' not in check:
        problems.append("check-version does not compare the tag with Cargo.toml's version")
    for job in sorted(smoke):
        block = all_jobs[job]
        build = needs(block)
        if not build or not build <= set(all_jobs) - smoke:
            problems.append(f"{job} does not need a build job (needs: {sorted(build)})")
        if "--no-index --find-links" not in block:
            problems.append(f"{job} does not install the built wheel from dist/ alone")
    return problems


def test_publishes_only_on_tags_after_every_smoke_job() -> None:
    problems = policy_problems(WORKFLOW.read_text())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "smoke-windows, smoke-linux-emulated]",
            "smoke-linux-emulated]",
            "publish does not wait for ['smoke-windows']",
        ),
        (
            "if: github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')",
            "if: always() && github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')",
            "publish can run after a failed job",
        ),
        (
            "if: github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')",
            "if: github.event_name == 'push'",
            "publish runs on more than a pushed v* tag",
        ),
        ("      id-token: write\n", "      contents: read\n", "publish lacks `permissions: id-token: write`"),
        ('    tags: ["v*"]\n', "", "the workflow does not run on pushed v* tags"),
    ],
)
def test_policy_check_sees_a_break(old: str, new: str, expected: str) -> None:
    # The reading above is by regex: make sure it notices what it is there to notice.
    text = WORKFLOW.read_text()
    assert text.count(old) == 1, f"{old!r} should be in {WORKFLOW} once"
    problems = policy_problems(text.replace(old, new))
    assert any(expected in p for p in problems), problems


def test_maturin_version_matches_requirements_dev() -> None:
    pinned = re.search(r"^maturin==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.M)
    used = re.search(r"^  MATURIN_VERSION: v(\S+)$", WORKFLOW.read_text(), re.M)
    assert pinned and used, "maturin is pinned in requirements-dev.txt and MATURIN_VERSION in the workflow"
    assert used.group(1) == pinned.group(1), (
        f"release.yml builds with maturin {used.group(1)}, requirements-dev.txt pins {pinned.group(1)}"
    )


def test_build_script_builds_only_on_a_version_change(tmp_path: Path) -> None:
    # With the stamp and a binary in place, the script must not call go at all.
    if shutil.which("bash") is None:
        pytest.fail("bash is required to run scripts/build-actionlint.sh", pytrace=False)
    pinned = re.search(r'^ACTIONLINT_VERSION="([^"]+)"', BUILD_SCRIPT.read_text(), re.M)
    assert pinned
    cache = tmp_path / "cache"
    (cache / "bin").mkdir(parents=True)
    fake = cache / "bin" / "actionlint"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    (cache / "bin" / "actionlint.version").write_text(pinned.group(1) + "\n")
    # A `go` on PATH that fails, so a rebuild would show.
    tools = tmp_path / "tools"
    tools.mkdir()
    go = tools / "go"
    go.write_text("#!/bin/sh\necho called >&2\nexit 1\n")
    go.chmod(0o755)
    env = {**os.environ, "KFP_AUTH_CACHE": str(cache), "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run(["bash", str(BUILD_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "building" not in r.stderr, r.stderr
    # A stale stamp makes it rebuild (and here fail, with the fake go).
    (cache / "bin" / "actionlint.version").write_text("v0.0.0\n")
    r = subprocess.run(["bash", str(BUILD_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and f"building actionlint {pinned.group(1)}" in r.stderr, r.stderr
