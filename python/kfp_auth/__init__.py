"""Connect the Kubeflow Pipelines SDK to a Kubeflow Pipelines API, however it is guarded.

``from kfp_auth import KFPClientManager`` replaces the class copied from the
Kubeflow docs. The login itself runs in the Rust core (``kfp_auth._native``).
Importing this package does not import ``kfp``.
"""

from kfp_auth._manager import KFPClientManager
from kfp_auth._native import (
    ConnectError,
    DexSession,
    InvalidCredentialsError,
    KFPAuthError,
    LoginTimeoutError,
    SessionCacheError,
    TLSError,
    TokenError,
    UnexpectedResponseError,
    UnknownConnectorError,
    __version__,
)

__all__ = [
    "ConnectError",
    "DexSession",
    "InvalidCredentialsError",
    "KFPAuthError",
    "KFPClientManager",
    "LoginTimeoutError",
    "SessionCacheError",
    "TLSError",
    "TokenError",
    "UnexpectedResponseError",
    "UnknownConnectorError",
    "__version__",
]
