"""docs/kfp-versions.md's table of kfp versions, generated from what ran.

Reads the kfp versions pinned by requirements-kfp-<version>.txt and the JUnit files that
scripts/kfp-matrix.sh wrote in .cache/kfp-matrix (each records the kfp version its venv
really held). `--write` puts the table between the page's markers; `--check` fails when
the page claims other versions or results than the run proved, when a pinned version did
not run or did not pass, or when a version has no Kubeflow release on record below.
The run times are shown but not compared.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("KFP_AUTH_CACHE", ROOT / ".cache"))
PAGE = ROOT / "docs" / "kfp-versions.md"
START, END = "<!-- kfp-versions:start -->", "<!-- kfp-versions:end -->"

# Which Kubeflow release ships each kfp minor (the KFP in its manifests), and which API the SDK speaks.
SHIPPED_BY = {
    "1.8": "none: the last kfp 1.x SDK, and kfp-auth's floor",
    "2.5": "Kubeflow 1.10 (KFP 2.5.0)",
    "2.15": "Kubeflow 1.11 (KFP 2.15.0)",
    "2.16": "Kubeflow 26.03 (KFP 2.16.0)",
    "2.17": "none yet: the newest kfp",
}


def version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def minor(v: str) -> str:
    return ".".join(v.split(".")[:2])


def pinned() -> list[str]:
    """The kfp versions of the matrix, from their requirements files (each must pin its own version)."""
    out = []
    for f in ROOT.glob("requirements-kfp-[0-9]*.txt"):
        v = f.stem.removeprefix("requirements-kfp-")
        if f"\nkfp=={v}\n" not in f"\n{f.read_text()}":
            raise SystemExit(f"kfp_versions: {f.name} does not pin kfp=={v}")
        out.append(v)
    return sorted(out, key=version_key)


class Run(NamedTuple):
    venv: str  # the version the venv was made for (the JUnit file's name)
    passed: int
    not_passed: int  # failed, errored or skipped
    seconds: float


def results() -> dict[str, Run]:
    """kfp version, as the venv reported it -> its run."""
    out: dict[str, Run] = {}
    for f in sorted((CACHE / "kfp-matrix").glob("kfp-*.xml")):
        suite = ET.parse(f).getroot()
        suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
        assert suite is not None
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        total, bad = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        ran = str(props.get("kfp") or f"? ({f.name} records no kfp version)")
        out[ran] = Run(f.stem.removeprefix("kfp-"), total - bad - skipped, bad + skipped, float(suite.get("time", 0)))
    return out


def table(want: list[str], ran: dict[str, Run]) -> tuple[str, list[str]]:
    problems: list[str] = []
    rows = ["| kfp | shipped by | API | smoke tests passed | run time |", "|---|---|---|---|---|"]
    for v in sorted(ran, key=lambda v: version_key(v) if re.fullmatch(r"[0-9.]+", v) else (999,)):
        r = ran[v]
        if r.venv != v:
            problems.append(f"the venv for kfp {r.venv} holds kfp {v}")
        shipped = SHIPPED_BY.get(minor(v))
        if shipped is None:
            problems.append(f"kfp {v}: say which Kubeflow release ships kfp {minor(v)} in SHIPPED_BY")
        api = "v1beta1" if v.startswith("1.") else "v2beta1"
        total = r.passed + r.not_passed
        rows.append(f"| {v} | {shipped or '?'} | `{api}` | {r.passed} of {total} | {r.seconds:.0f} s |")
    for v in want:
        if v not in ran:
            problems.append(f"no kfp matrix run for kfp {v} (make kfp-matrix)")
        elif ran[v].not_passed or not ran[v].passed:
            problems.append(f"the kfp matrix run for kfp {v} did not pass: {ran[v]}")
    for v in ran:
        if v not in want:
            problems.append(f"kfp {v} ran but no requirements-kfp-{v}.txt pins it")
    return "\n".join(rows), problems


def without_times(text: str) -> str:
    return re.sub(r"\| [0-9]+ s \|", "| _ |", text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--write", action="store_true", help="rewrite docs/kfp-versions.md's table")
    how.add_argument("--check", action="store_true", help="fail unless the page's table is what ran")
    write = ap.parse_args().write
    ran = results()
    for v, r in sorted(ran.items(), key=lambda vr: version_key(vr[0]) if re.fullmatch(r"[0-9.]+", vr[0]) else (999,)):
        print(f"kfp_versions: kfp {v}: {r.passed} passed, {r.not_passed} not passed", file=sys.stderr)
    new, problems = table(pinned(), ran)
    page = PAGE.read_text()
    m = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), page, re.S)
    new += "\n"
    if m is None:
        problems.append(f"{PAGE.name} has no {START} ... {END} block")
    elif write:
        PAGE.write_text(page[: m.start(1)] + new + page[m.end(1) :])
    elif without_times(m.group(1)) != without_times(new):
        problems.append(f"{PAGE.name}'s table is not what ran; `make kfp-versions` rewrites it:\n" + new)
    for p in problems:
        print(f"kfp_versions: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
