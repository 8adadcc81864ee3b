"""``kfp-auth kfp``: the stock kfp CLI (kfp 2.x or 1.8), run in this process, with its client
built by kfp-auth for one endpoint.

kfp's CLI builds its client in its group callback, from a name looked up when the callback
runs: ``client.Client`` in ``kfp.cli.cli`` (kfp 2.x), ``Client`` there (kfp 1.8). That one
name, in that one module, is replaced for this process, which exists only to run the CLI: no
file is written and no other process sees a change. The client it gets sends kfp-auth's
credentials (cookies or bearer token, renewed when the gateway asks) to kfp-auth's endpoint
only, never kfp's context cookie.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

from kfp_auth._native import redact_url

# kfp's own default for -n/--namespace: a client given it keeps the context file's namespace.
_KFP_DEFAULT_NAMESPACE = "kubeflow"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def same_endpoint(a: str, b: str) -> bool:
    """Whether two API URLs name the same endpoint: scheme, host, port and path (no trailing
    slash); the query and fragment are not part of where kfp sends its requests."""
    x, y = urlsplit(a.strip()), urlsplit(b.strip())
    try:
        px = x.port or _DEFAULT_PORTS.get(x.scheme.lower())
        py = y.port or _DEFAULT_PORTS.get(y.scheme.lower())
    except ValueError:
        return False
    return (x.scheme.lower(), (x.hostname or "").lower(), px, x.path.rstrip("/")) == (
        y.scheme.lower(),
        (y.hostname or "").lower(),
        py,
        y.path.rstrip("/"),
    )


class _ClientModule:
    """``kfp.client`` as kfp 2.x's CLI module sees it: ``Client`` is kfp-auth's, the rest kfp's."""

    def __init__(self, module: Any, client: Callable[..., Any]) -> None:
        self._kfp_auth_module = module
        self.Client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kfp_auth_module, name)


def run_kfp_cli(
    kfp_args: Sequence[str],
    make_client: Callable[[str | None, str | None, str], Any],
    fail: Callable[[int, str], NoReturn],
) -> int:
    """Run kfp's CLI on `kfp_args`; its client is `make_client(endpoint, existing_token, namespace)`
    (kfp's --endpoint and --existing-token, `None` when not given). Returns kfp's exit code."""
    try:
        cli_mod = importlib.import_module("kfp.cli.cli")
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.split(".")[0] not in ("kfp", "click", "typer"):
            raise
        fail(
            2,
            "`kfp-auth kfp` runs the kfp CLI, which is not installed here: run `pip install kfp` "
            '(or `pip install "kfp-auth[kfp]"`)',
        )

    def client(
        host: str | None = None,
        client_id: str | None = None,
        namespace: str = _KFP_DEFAULT_NAMESPACE,
        other_client_id: str | None = None,
        other_client_secret: str | None = None,
        existing_token: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if client_id or other_client_id or other_client_secret:
            fail(
                2,
                "--iap-client-id, --other-client-id and --other-client-secret are Google IAP's login; "
                "under `kfp-auth kfp` the credentials are kfp-auth's: drop them",
            )
        return make_client(host, existing_token, namespace)

    if hasattr(cli_mod, "client"):  # kfp 2.x: `from kfp import client` ... `client.Client(...)`
        setattr(cli_mod, "client", _ClientModule(getattr(cli_mod, "client"), client))  # noqa: B009, B010
        main = importlib.import_module("kfp.cli.__main__").main
    else:  # kfp 1.8: `from kfp._client import Client` ... `Client(...)`
        setattr(cli_mod, "Client", client)  # noqa: B010
        main = cli_mod.main
    sys.argv = ["kfp", *kfp_args]
    try:
        main()
    except SystemExit as e:
        code = e.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    return 0


def endpoint_for(url: str | None, endpoint: str | None, fail: Callable[[int, str], NoReturn]) -> str:
    """The one endpoint the credentials go to: kfp-auth's --url, or kfp's --endpoint when only
    that is given; both, naming different endpoints, is refused."""
    if url and endpoint and not same_endpoint(url, endpoint):
        fail(
            2,
            f"kfp's --endpoint {redact_url(endpoint)} is not kfp-auth's --url {redact_url(url)}: "
            "kfp-auth sends its credentials to that one endpoint only. Drop kfp's --endpoint, "
            "or run `kfp-auth kfp` with --url for the other endpoint",
        )
    target = url or endpoint
    if not target:
        fail(2, "no API URL: pass --url, set KF_PIPELINES_ENDPOINT, or give kfp --endpoint")
    return target
