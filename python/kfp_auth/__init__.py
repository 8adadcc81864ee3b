"""Connect the Kubeflow Pipelines SDK to a Kubeflow Pipelines API, however it is guarded.

``from kfp_auth import KFPClientManager`` replaces the class copied from the
Kubeflow docs. The login itself runs in the Rust core (``kfp_auth._native``).
Importing this package does not import ``kfp``.
"""

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
    KFPAuthError,
    KFPAuthWarning,
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
from kfp_auth._manager import IN_CLUSTER_URL, KFPClientManager
from kfp_auth._native import BearerSession, DexSession, __version__
from kfp_auth._prompt import DevicePrompt
from kfp_auth._types import AuthKind, BearerKind, DeviceEvent, Diagnosis, RBACDenial, TokenClaims

__all__ = [
    "AuthKind",
    "BearerKind",
    "BearerSession",
    "BrowserLoginError",
    "BrowserLoginRefusedError",
    "BrowserStateMismatchError",
    "BrowserTimeoutError",
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
    "KFPClientManager",
    "LoginRequiredError",
    "LoginStep",
    "LoginTimeoutError",
    "LoopbackPortInUseError",
    "PermissionDeniedError",
    "RBACDenial",
    "SessionCacheError",
    "TLSError",
    "TokenClaims",
    "TokenError",
    "UnexpectedResponseError",
    "UnknownConnectorError",
    "__version__",
]
