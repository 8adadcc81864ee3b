"""Connect the Kubeflow Pipelines SDK to a Kubeflow Pipelines API, however it is guarded.

``from kfp_auth import KFPClientManager`` replaces the class copied from the
Kubeflow docs. The login itself runs in the Rust core (``kfp_auth._native``).
Importing this package does not import ``kfp``, and the manager and the device prompt
(with the modules they need) are imported on first use, so that ``kfp-auth token``,
which runs before every command of a script, starts fast.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kfp_auth._manager import IN_CLUSTER_URL, KFPClientManager
    from kfp_auth._prompt import DevicePrompt

from kfp_auth._errors import (
    BrowserLoginError,
    BrowserLoginRefusedError,
    BrowserStateMismatchError,
    BrowserTimeoutError,
    ConnectError,
    DeviceLoginError,
    IncompleteBodyError,
    InvalidArgumentError,
    InvalidCredentialsError,
    KeyringError,
    KFPAuthError,
    KFPAuthWarning,
    KFPVersionError,
    LoginRequiredError,
    LoginStep,
    LoginTimeoutError,
    LoopbackPortInUseError,
    PermissionDeniedError,
    SessionCacheError,
    TLSError,
    TokenError,
    UnexpectedResponseError,
    UnknownConnectorError,
)
from kfp_auth._native import BearerSession, DexSession, __version__
from kfp_auth._types import AuthKind, BearerKind, CachedLogin, DeviceEvent, Diagnosis, RBACDenial, TokenClaims

__all__ = [
    "AuthKind",
    "BearerKind",
    "BearerSession",
    "BrowserLoginError",
    "BrowserLoginRefusedError",
    "BrowserStateMismatchError",
    "BrowserTimeoutError",
    "CachedLogin",
    "ConnectError",
    "DeviceEvent",
    "DeviceLoginError",
    "DevicePrompt",
    "DexSession",
    "Diagnosis",
    "IN_CLUSTER_URL",
    "IncompleteBodyError",
    "InvalidArgumentError",
    "InvalidCredentialsError",
    "KFPAuthError",
    "KFPAuthWarning",
    "KFPVersionError",
    "KFPClientManager",
    "LoginRequiredError",
    "LoginStep",
    "LoginTimeoutError",
    "LoopbackPortInUseError",
    "PermissionDeniedError",
    "RBACDenial",
    "KeyringError",
    "SessionCacheError",
    "TLSError",
    "TokenClaims",
    "TokenError",
    "UnexpectedResponseError",
    "UnknownConnectorError",
    "__version__",
]

_LAZY = {
    "IN_CLUSTER_URL": "kfp_auth._manager",
    "KFPClientManager": "kfp_auth._manager",
    "DevicePrompt": "kfp_auth._prompt",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kfp_auth' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
