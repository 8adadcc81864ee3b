#!/usr/bin/env bash
# A notebook user's path: a clean venv, `pip install <wheel> kfp ipykernel`,
# then the README's quick start in a real Jupyter kernel (tests/notebook).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${KFP_AUTH_CACHE:-$root/.cache}"
python="${PYTHON:-python3}"
cd "$root"

shopt -s nullglob
wheels=(dist/kfp_auth-*-cp39-abi3-*manylinux_2_17_x86_64*.whl)
(( ${#wheels[@]} == 1 )) || { echo "notebook-smoke: expected one manylinux_2_17 x86_64 wheel in dist/ (run make wheels)" >&2; exit 1; }

venv="$cache/venv-notebook"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "${wheels[0]}" -r requirements-notebook.txt
"$venv/bin/python" -m pytest tests/notebook -p no:cacheprovider -q
