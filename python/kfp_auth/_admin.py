"""What the Kubeflow admin changes for kfp-auth's SSO logins, as one YAML snippet.

``kfp-auth admin-snippet`` prints it; docs/sso.md ("What the admin sets up") shows it
for the default client id, and a test checks that the two agree.
"""

from __future__ import annotations

import re

from kfp_auth._errors import InvalidArgumentError

DEFAULT_CLIENT_ID = "kfp-auth"

# What a Dex client id may be here: it goes into YAML and a command line unquoted.
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

_SNIPPET = """\
# kfp-auth's logins through Dex (device, browser, token exchange, refresh) need
# these changes in Dex's config (in Kubeflow's manifests: the `dex` ConfigMap or
# Secret in the `auth` namespace), and one in oauth2-proxy's where Istio is absent.

# 1. A public client (no secret) beside Kubeflow's own, which is confidential and
#    knows only /oauth2/callback.
staticClients:
  - id: {client_id}
    public: true
    name: Kubeflow Pipelines SDK

# 2. Only if Dex's config lists `oauth2.grantTypes` (without the list, Dex allows
#    them all): keep the grants listed there, and add these.
oauth2:
  grantTypes:
    - authorization_code                              # browser login
    - refresh_token                                   # staying logged in
    - urn:ietf:params:oauth:grant-type:device_code    # device login
    - urn:ietf:params:oauth:grant-type:token-exchange # token exchange (CI)

# 3. The SSO connector, of type `oidc`: `offline_access` in its scopes, or every
#    refresh fails (LoginRequiredError). Token exchange (CI) takes an ID token
#    that this connector's `issuer` signed (e.g. https://token.actions.githubusercontent.com
#    for GitHub Actions); its audience is not checked.
connectors:
  - type: oidc
    id: <your connector id>
    config:
      scopes: [openid, profile, email, offline_access]

# 4. Istio's `dex-jwt` RequestAuthentication (Kubeflow's default) sets no audience
#    and accepts these tokens as they are. Where oauth2-proxy checks bearer tokens
#    itself (no Istio in front), it must also accept the client's audience:
#      oauth2-proxy ... --skip-jwt-bearer-tokens=true --oidc-extra-audience={client_id}
"""


def admin_snippet(client_id: str = DEFAULT_CLIENT_ID) -> str:
    """The admin's changes for the public client ``client_id``, as YAML with comments.

    :raises InvalidArgumentError: when ``client_id`` is not a plain id (letters, digits, ``.``, ``_``, ``-``)
    """
    if not _CLIENT_ID.fullmatch(client_id):
        raise InvalidArgumentError(
            "the client id must be letters, digits, '.', '_' or '-' (at most 128), starting with a letter or digit",
            argument="client_id",
        )
    return _SNIPPET.format(client_id=client_id)
