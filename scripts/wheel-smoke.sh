#!/usr/bin/env bash
# Install the built manylinux x86_64 wheel into a clean venv for every claimed
# CPython, with no Rust toolchain on PATH, and run tests/wheel against the real
# stack in each. Results (JUnit XML) go to $cache/smoke, where
# scripts/platforms.py reads what ran.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${KFP_AUTH_CACHE:-$root/.cache}"
pythons="${KFP_AUTH_SMOKE_PYTHONS:-3.9 3.10 3.11 3.12 3.13}"
cd "$root"

shopt -s nullglob
wheels=(dist/kfp_auth-*-cp39-abi3-*manylinux_2_17_x86_64*.whl)
if (( ${#wheels[@]} != 1 )); then
  echo "wheel-smoke: expected one manylinux_2_17 x86_64 wheel in dist/ (run make wheels), found ${#wheels[@]}" >&2
  exit 1
fi
wheel="$root/${wheels[0]}"

# PATH without any folder that holds cargo or rustc: a wheel must install and
# run where no Rust toolchain exists.
norust=""
IFS=: read -ra dirs <<< "$PATH"
for d in "${dirs[@]}"; do
  [[ -x "$d/cargo" || -x "$d/rustc" ]] && continue
  norust="${norust:+$norust:}$d"
done

pyenv_root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
rm -rf "$cache/smoke" && mkdir -p "$cache/smoke"
for v in $pythons; do
  cands=("$pyenv_root"/versions/"$v".*/bin/python"$v")
  if (( ${#cands[@]} == 0 )); then
    echo "wheel-smoke: no CPython $v under $pyenv_root/versions (pyenv install $v)" >&2
    exit 1
  fi
  py="$(printf '%s\n' "${cands[@]}" | sort -V | tail -1)"
  venv="$cache/venv-smoke-$v"
  want="$("$py" -VV | head -1) $(sha256sum requirements-smoke.txt | cut -c1-16)"
  if [[ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]]; then
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements-smoke.txt
    echo "$want" > "$venv/.installed"
  fi
  # Only the wheel, never a source build of it.
  "$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps \
    --no-index --only-binary :all: "$wheel"
  echo "wheel-smoke: CPython $("$venv/bin/python" -c 'import platform; print(platform.python_version())') with $(basename "$wheel")" >&2
  PATH="$venv/bin:$norust" bash -c '! command -v cargo && ! command -v rustc' >/dev/null || {
    echo "wheel-smoke: a Rust toolchain is still on PATH" >&2; exit 1; }
  PATH="$venv/bin:$norust" "$venv/bin/python" -m pytest tests/wheel -p no:cacheprovider -q \
    --junitxml="$cache/smoke/cpython-$v.xml"
done
