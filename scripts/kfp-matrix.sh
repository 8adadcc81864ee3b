#!/usr/bin/env bash
# The kfp version matrix: for each kfp version given (make kfp-matrix passes one per
# requirements-kfp-<version>.txt), install the built manylinux x86_64 wheel into its venv
# (.cache/venv-kfp-<version>, made by the Makefile) and run tests/kfp_matrix there against
# the real stack. Every version runs, even after one fails, so the table shows them all;
# the script fails if any did. Results (JUnit XML) go to $cache/kfp-matrix, where
# scripts/kfp_versions.py reads what ran.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${KFP_AUTH_CACHE:-$root/.cache}"
cd "$root"
(( $# > 0 )) || { echo "usage: $0 KFP_VERSION..." >&2; exit 2; }

shopt -s nullglob
wheels=(dist/kfp_auth-*-cp39-abi3-*manylinux_2_17_x86_64*.whl)
if (( ${#wheels[@]} != 1 )); then
  echo "kfp-matrix: expected one manylinux_2_17 x86_64 wheel in dist/ (run make wheels), found ${#wheels[@]}" >&2
  exit 1
fi
wheel="$root/${wheels[0]}"

rm -rf "$cache/kfp-matrix" && mkdir -p "$cache/kfp-matrix"
failed=()
for v in $(printf '%s\n' "$@" | sort -V); do
  venv="$cache/venv-kfp-$v"
  [[ -x "$venv/bin/python" ]] || { echo "kfp-matrix: no venv at $venv (make kfp-matrix makes it)" >&2; exit 1; }
  # Only the wheel, never a source build of it; kfp and the runner are the venv's own.
  "$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps \
    --no-index --only-binary :all: "$wheel"
  echo "kfp-matrix: kfp $v with $(basename "$wheel")" >&2
  KFP_MATRIX_KFP="$v" "$venv/bin/python" -m pytest tests/kfp_matrix -p no:cacheprovider -q \
    --junitxml="$cache/kfp-matrix/kfp-$v.xml" || failed+=("$v")
done
if (( ${#failed[@]} )); then
  echo "kfp-matrix: failed on kfp ${failed[*]}" >&2
  exit 1
fi
