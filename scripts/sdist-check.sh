#!/usr/bin/env bash
# The two fall-backs pip takes: on a platform with no wheel it builds the sdist
# (which must need only a Rust toolchain and a C compiler), and on a Python
# below the floor it must refuse the package rather than install one that
# breaks at import.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${KFP_AUTH_CACHE:-$root/.cache}"
cd "$root"
shopt -s nullglob
sdists=(dist/kfp_auth-*.tar.gz)
(( ${#sdists[@]} == 1 )) || { echo "sdist-check: expected one sdist in dist/ (run make wheels)" >&2; exit 1; }

# pip builds the sdist in isolation with maturin from PyPI, as on a user's machine.
# The target folder is kept so that a warm run only re-links.
out="$cache/sdist-wheel"
rm -rf "$out"
CARGO_TARGET_DIR="$root/target/sdist" "${PYTHON:-python3}" -m pip wheel --quiet --disable-pip-version-check \
  --no-deps --no-binary kfp-auth -w "$out" "${sdists[0]}"
built=("$out"/kfp_auth-*.whl)
(( ${#built[@]} == 1 )) || { echo "sdist-check: the sdist built no wheel" >&2; exit 1; }
echo "sdist-check: the sdist builds: $(basename "${built[0]}")" >&2

# CPython 3.8, below requires-python: pip must refuse the package, as it does on
# PyPI, whose index pages carry each file's Requires-Python. A local PEP 503
# index of dist/ carries it the same way (read from the built metadata).
pyenv_root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
old=("$pyenv_root"/versions/3.8.*/bin/python3.8)
(( ${#old[@]} >= 1 )) || { echo "sdist-check: no CPython 3.8 under $pyenv_root/versions" >&2; exit 1; }
index="$cache/simple"
rm -rf "$index" && mkdir -p "$index/kfp-auth"
requires="$(tar -xzOf "${sdists[0]}" --wildcards '*/PKG-INFO' | sed -n 's/^Requires-Python: //p')"
[[ -n "$requires" ]] || { echo "sdist-check: the sdist's PKG-INFO has no Requires-Python" >&2; exit 1; }
escaped="$(sed 's/&/\&amp;/g; s/>/\&gt;/g; s/</\&lt;/g' <<< "$requires")"
{
  echo "<!DOCTYPE html><html><body>"
  for f in dist/*; do
    echo "<a href=\"file://$root/$f\" data-requires-python=\"$escaped\">$(basename "$f")</a>"
  done
  echo "</body></html>"
} > "$index/kfp-auth/index.html"
venv="$cache/venv-py38"
[[ -x "$venv/bin/python" ]] || "${old[-1]}" -m venv "$venv"
if log="$(PIP_FIND_LINKS= "$venv/bin/pip" install --disable-pip-version-check --index-url "file://$index" kfp-auth 2>&1)"; then
  echo "sdist-check: pip installed kfp-auth on CPython 3.8:" >&2; echo "$log" >&2; exit 1
fi
grep -q "Requires-Python $requires" <<< "$log" || {
  echo "sdist-check: pip refused, but not for Requires-Python:" >&2; echo "$log" >&2; exit 1; }
echo "sdist-check: CPython 3.8 is refused (Requires-Python $requires)" >&2
