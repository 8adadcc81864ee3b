"""Building a ``kfp.Client`` for kfp 1.8 and 2.x, without patching ``kfp`` itself."""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any


def import_kfp() -> Any:
    """Import ``kfp`` on first use, with an error that names the package when it is missing."""
    try:
        return importlib.import_module("kfp")
    except ModuleNotFoundError as e:
        if e.name != "kfp":
            raise
        raise ModuleNotFoundError(
            "kfp-auth needs the Kubeflow Pipelines SDK to build a client, and the `kfp` "
            "package is not installed: run `pip install kfp` (or `pip install kfp-auth[kfp]`)",
            name="kfp",
        ) from e


@functools.lru_cache(maxsize=None)
def _takes_verify_ssl(client_cls: type) -> bool:
    return "verify_ssl" in inspect.signature(client_cls.__init__).parameters


@functools.lru_cache(maxsize=None)
def _unverified_subclass(client_cls: type) -> type:
    """kfp 1.8 has no ``verify_ssl``: a subclass turns verification off for its own instances only."""

    class UnverifiedClient(client_cls):  # type: ignore[misc, valid-type]
        def _load_config(self, *args: Any, **kwargs: Any) -> Any:
            config = super()._load_config(*args, **kwargs)
            config.verify_ssl = False
            return config

    UnverifiedClient.__name__ = UnverifiedClient.__qualname__ = "Client"
    UnverifiedClient.__module__ = __name__
    return UnverifiedClient


def build_client(host: str, cookies: str, skip_tls_verify: bool) -> Any:
    kfp = import_kfp()
    client_cls = kfp.Client
    kwargs: dict[str, Any] = {"host": host, "cookies": cookies}
    if skip_tls_verify:
        if _takes_verify_ssl(client_cls):
            kwargs["verify_ssl"] = False
        else:
            client_cls = _unverified_subclass(client_cls)
    return client_cls(**kwargs)
