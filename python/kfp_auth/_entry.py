"""The ``kfp-auth`` command's entry point: the common forms of ``kfp-auth token`` run
without loading the full command line (see ``_token_cli``); anything else (other
commands and options, ``--help``, a mistake) goes to ``kfp_auth.cli``.
"""

from __future__ import annotations

import os
import sys

from kfp_auth._token_cli import ENV_CONNECTOR, ENV_URL, print_token, quick


def main() -> None:
    argv = sys.argv[1:]
    opts = quick(argv[1:]) if argv[:1] == ["token"] else None
    keyring = os.environ.get("KFP_AUTH_TOKEN_CACHE", "").strip().lower()
    if opts is not None and (
        keyring not in ("", "file", "keyring") or (keyring == "keyring" and "token_cache" in opts)
    ):
        opts = None  # the full parser says what is wrong
    if opts is None:
        from kfp_auth.cli import main as full

        full()
        return
    code, message = print_token(
        opts.get("url") or os.environ.get(ENV_URL),
        token_cache=opts.get("token_cache"),
        keyring=keyring == "keyring",
        connector=opts.get("connector") or os.environ.get(ENV_CONNECTOR),
        user=opts.get("user"),
    )
    if message:
        print(f"kfp-auth: {message}", file=sys.stderr)
    raise SystemExit(code)
