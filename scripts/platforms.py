"""The README's table of wheels and Pythons, generated from what was built and what ran.

Reads the wheels in dist/ and the smoke runs' JUnit files in .cache/smoke (written
by scripts/wheel-smoke.sh). `--write` puts the table between the README's
markers; `--check` fails when the README claims other Pythons or platforms than
the run proved, when a smoke run failed, or when a wheel is over the size aim.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("KFP_AUTH_CACHE", ROOT / ".cache"))
README = ROOT / "README.md"
START, END = "<!-- wheels:start -->", "<!-- wheels:end -->"
CLAIMED = ["3.9", "3.10", "3.11", "3.12", "3.13"]
MAX_WHEEL_BYTES = 4_000_000

# What each wheel's platform tag means for a user, and what proves it.
PLATFORMS = [
    ("manylinux_2_17_x86_64", "Linux x86_64, glibc ≥ 2.17", None),
    (
        "manylinux_2_17_aarch64",
        "Linux aarch64, glibc ≥ 2.17",
        "built by `make wheels` (zig cross-build) and maturin's platform check; "
        "imported under emulation by the release workflow",
    ),
    (
        "musllinux_1_2_x86_64",
        "Linux x86_64, musl ≥ 1.2 (Alpine)",
        "built by `make wheels` (zig cross-build) and maturin's platform check; "
        "imported on Alpine by the release workflow",
    ),
]
ELSEWHERE = [
    ("macOS x86_64 and arm64", "built and smoke-tested (the part without Dex) by the release workflow only"),
    (
        "Windows x86_64",
        "compiles in `make lint` (the GNU target); built and smoke-tested (the part without Dex) by the "
        "release workflow only; no session cache there",
    ),
]


def smoke_results() -> dict[str, tuple[int, int]]:
    """Minor version -> (passed, failed or errored) from each smoke run."""
    out: dict[str, tuple[int, int]] = {}
    for f in sorted((CACHE / "smoke").glob("cpython-*.xml")):
        suite = ET.parse(f).getroot()
        suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
        assert suite is not None
        total, bad = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        out[f.stem.removeprefix("cpython-")] = (total - bad - skipped, bad + skipped)
    return out


def table(results: dict[str, tuple[int, int]]) -> tuple[str, list[str]]:
    problems: list[str] = []
    wheels = {p.name: p for p in (ROOT / "dist").glob("kfp_auth-*.whl")}
    rows = ["| wheel (`cp39-abi3`) | for | size | tested |", "|---|---|---|---|"]
    for tag, who, proof in PLATFORMS:
        found = [p for n, p in wheels.items() if tag in n]
        if len(found) != 1:
            problems.append(f"dist/ has {len(found)} wheels tagged {tag}, not 1 (run make wheels)")
            continue
        size = found[0].stat().st_size
        if size > MAX_WHEEL_BYTES:
            problems.append(f"{found[0].name} is {size} bytes, over the {MAX_WHEEL_BYTES} aim")
        if proof is None:
            ran = [v for v in CLAIMED if v in results and results[v][1] == 0 and results[v][0] > 0]
            proof = (
                "smoke suite against the real Dex and oauth2-proxy on CPython " + ", ".join(ran)
                if ran
                else "nothing ran"
            )
        rows.append(f"| `{tag}` | {who} | {size / 1e6:.1f} MB | {proof} |")
    for who, proof in ELSEWHERE:
        rows.append(f"| — | {who} | — | {proof} |")
    for v in CLAIMED:
        if v not in results:
            problems.append(f"no smoke run for CPython {v}")
        elif results[v][1] or not results[v][0]:
            problems.append(f"the smoke run on CPython {v} did not pass: {results[v]}")
    return "\n".join(rows), problems


def without_sizes(text: str) -> str:
    return re.sub(r"\| [0-9.]+ MB \|", "| _ |", text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--write", action="store_true", help="rewrite the README's table")
    how.add_argument("--check", action="store_true", help="fail unless the README's table is what ran")
    mode = "--write" if ap.parse_args().write else "--check"
    results = smoke_results()
    for v, (ok, bad) in sorted(results.items()):
        print(f"platforms: CPython {v}: {ok} passed, {bad} not passed", file=sys.stderr)
    new, problems = table(results)
    readme = README.read_text()
    m = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), readme, re.S)
    new += "\n"
    if m is None:
        problems.append(f"README.md has no {START} ... {END} block")
    elif mode == "--write":
        README.write_text(readme[: m.start(1)] + new + readme[m.end(1) :])
    elif without_sizes(m.group(1)) != without_sizes(new):
        problems.append("README.md's wheel table is not what ran; `make platforms` rewrites it:\n" + new)
    for p in problems:
        print(f"platforms: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
