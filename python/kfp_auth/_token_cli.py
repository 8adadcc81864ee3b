"""``kfp-auth token``, and what every command shares, with nothing but the core imported.

``kfp-auth token`` runs before every command of a user's script, so it must start about
as fast as the interpreter does: its common forms (``--url``, ``-c``, ``-u``,
``--token-cache``) are parsed here by ``quick``, without argparse, the manager or kfp
(``kfp_auth._entry`` chooses). ``kfp_auth.cli``'s ``token`` command runs the same
``print_token``.
"""

from __future__ import annotations

import sys

from kfp_auth import _native

EXIT_OTHER, EXIT_USAGE, EXIT_CREDENTIALS, EXIT_UNREACHABLE, EXIT_TLS, EXIT_CACHE = 1, 2, 3, 4, 5, 6
ENV_URL = "KF_PIPELINES_ENDPOINT"  # kfp's own name for the API endpoint
ENV_CONNECTOR = "KFP_AUTH_CONNECTOR"


def exit_code(e: BaseException) -> int:
    if isinstance(
        e,
        (
            _native.InvalidCredentialsError,
            _native.UnknownConnectorError,
            _native.LoginRequiredError,
            _native.DeviceLoginError,
        ),
    ):
        return EXIT_CREDENTIALS
    if isinstance(e, (_native.ConnectError, _native.IncompleteBodyError, _native.LoginTimeoutError)):
        return EXIT_UNREACHABLE
    if isinstance(e, _native.TLSError):
        return EXIT_TLS
    if isinstance(e, _native.SessionCacheError):
        return EXIT_CACHE
    return EXIT_OTHER


def print_token(
    url: str | None,
    *,
    token_cache: str | None = None,
    keyring: bool = False,
    client_id: str | None = None,
    dex_url: str | None = None,
    connector: str | None = None,
    user: str | None = None,
    skip_tls_verify: bool = False,
    ssl_ca_cert: str | None = None,
    timeout: float = 30.0,
) -> tuple[int, str]:
    """Print the ID token of the SSO login saved for `url` (refreshed when needed) on stdout;
    (the exit code, the message for stderr when it is not 0). Never asks the user."""
    if not url:
        return EXIT_USAGE, f"no API URL: pass --url or set {ENV_URL}"
    if token_cache is None:
        token_cache = _native.default_token_cache()
        if token_cache is None:
            return EXIT_USAGE, "there is no default token cache without $HOME or $XDG_CACHE_HOME: pass --token-cache"
    try:
        store = None
        if keyring:
            from kfp_auth._keyring import KeyringStore

            store = KeyringStore()
        bearer = _native.BearerSession.from_token_cache(
            url,
            token_cache=token_cache,
            client_id=client_id or "kfp-auth",
            dex_url=dex_url,
            connector=connector,
            user=user,
            skip_tls_verify=skip_tls_verify,
            ssl_ca_cert=ssl_ca_cert,
            timeout=timeout,
            secret_store=store,
        )
        token = bearer.token()
    except _native.InvalidArgumentError as e:
        return EXIT_USAGE, str(e)
    except _native.KFPAuthError as e:
        return exit_code(e), str(e)
    sys.stdout.write(token + "\n")
    return 0, ""


# The options the quick path takes, by their destination; each takes a value.
_QUICK = {
    "--url": "url",
    "-c": "connector",
    "--connector": "connector",
    "-u": "user",
    "--user": "user",
    "--token-cache": "token_cache",
}


def quick(args: list[str]) -> dict[str, str] | None:
    """The options of a common `kfp-auth token`, or `None` when the full parser must see them."""
    opts: dict[str, str] = {}
    it = iter(args)
    for a in it:
        name, eq, value = a.partition("=")
        if name not in _QUICK or (not eq and a != name):
            return None
        if not eq:
            nxt = next(it, None)
            if nxt is None or nxt.startswith("-"):
                return None
            value = nxt
        opts[_QUICK[name]] = value
    return opts
