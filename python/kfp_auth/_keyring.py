"""The OS keyring as the token cache's secret store (``token_cache="keyring"``).

The ``keyring`` package is an optional dependency (``pip install "kfp-auth[keyring]"``):
it is imported here, when a keyring cache is asked for, and never otherwise. Each login's
ID and refresh tokens are one item of the service ``kfp-auth``, named by the login's key
(issuer, client, connector, user); the token cache file keeps the rest of the login.
"""

from __future__ import annotations

import os
from typing import Any

from kfp_auth._errors import InvalidArgumentError, KeyringError

#: The keyring service the items are stored under.
SERVICE = "kfp-auth"
#: ``KFP_AUTH_TOKEN_CACHE=keyring`` makes the keyring the default of the SSO logins and the CLI.
ENV_TOKEN_CACHE = "KFP_AUTH_TOKEN_CACHE"
KEYRING = "keyring"

_ADVICE = 'install it with `pip install "kfp-auth[keyring]"`, or use the file cache (token_cache=True, the default)'


def wanted_by_env() -> bool:
    """Whether ``$KFP_AUTH_TOKEN_CACHE`` asks for the keyring (``keyring``) or not (``file`` or unset)."""
    value = os.environ.get(ENV_TOKEN_CACHE, "").strip().lower()
    if value in ("", "file"):
        return False
    if value == KEYRING:
        return True
    raise InvalidArgumentError(
        f"${ENV_TOKEN_CACHE} is {value!r}; it takes `keyring` or `file`", argument=ENV_TOKEN_CACHE
    )


class KeyringStore:
    """The OS keyring through the ``keyring`` package; fails at construction, with
    ``KeyringError``, when the package or a usable backend is missing."""

    def __init__(self) -> None:
        try:
            import keyring
            import keyring.backends.fail
            import keyring.errors
        except ImportError:
            raise KeyringError(
                f'token_cache="keyring" needs the `keyring` package, which is not installed: {_ADVICE}'
            ) from None
        try:
            backend = keyring.get_keyring()
        except Exception as e:  # a backend named by $PYTHON_KEYRING_BACKEND that cannot load
            raise KeyringError(f"the keyring backend cannot be loaded ({type(e).__name__}): {_ADVICE}") from None
        if isinstance(backend, keyring.backends.fail.Keyring) or _is_null(backend):
            raise KeyringError(
                "the `keyring` package found no keyring backend on this machine (no Secret Service, "
                f"KWallet, macOS Keychain or Windows Credential Locker): {_ADVICE}"
            )
        self._keyring: Any = keyring
        self._errors: Any = keyring.errors
        self.backend = f"{type(backend).__module__}.{type(backend).__name__}"

    def get(self, key: str) -> str | None:
        value: str | None = self._keyring.get_password(SERVICE, key)
        return value

    def set(self, key: str, secret: str) -> None:
        self._keyring.set_password(SERVICE, key, secret)

    def delete(self, key: str) -> None:
        try:
            self._keyring.delete_password(SERVICE, key)
        except self._errors.PasswordDeleteError:
            pass  # already gone

    def __repr__(self) -> str:
        return f"KeyringStore(backend={self.backend!r})"


def _is_null(backend: object) -> bool:
    # keyring's null backend drops what it is given: as good as none.
    try:
        import keyring.backends.null
    except ImportError:
        return False
    return isinstance(backend, keyring.backends.null.Keyring)
