"""THE BASELINE, not kfp-auth: the pure-Python approach the benchmarks compare against.

A straightforward `requests` implementation of the login the Kubeflow docs
describe ("Connect the Pipelines SDK to Kubeflow Pipelines", the
`KFPClientManager` users copy), written for this benchmark: the same steps
and the same library choices, so the figures say what changes when the Rust
core does the work.

1. GET `api_url`, following every redirect. A 403 is oauth2-proxy's sign-in
   page: GET `/oauth2/start?rd=<path>`, following every redirect.
2. No redirect on the way: the endpoint is unsecured, no cookies.
3. At Dex's `/auth` (several connectors), go to `/auth/<auth_type>`; unless at
   `/auth/<id>/login` already, GET it, following every redirect.
4. POST `login` and `password` there, following every redirect. No redirect
   means the credentials were refused.
5. At Dex's `/approval`, POST `approval=approve`, following every redirect.
6. The cookies are every cookie the session holds, `name=value; ...`.

`create_kfp_client()` logs in every time, as the documented class does. The
documented class also patches `kfp.Client._load_config` for the whole process
(for `skip_tls_verify`); that is left out here because the benchmark runs over
plain http and the patch would reach kfp-auth's clients in the same process.
`kfp` is imported when a client is made, so a login-only worker holds just
`requests` (the baseline's own imports are measured separately, in B4).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

# The documented class's module imports, for the import-cost figure (B4).
DOCUMENTED_IMPORTS = (
    "import re; from urllib.parse import urlsplit, urlencode; import kfp; import requests; import urllib3"
)


class BaselineLoginError(RuntimeError):
    pass


def session_cookies(api_url: str, username: str, password: str, auth_type: str = "local", verify: bool = True) -> str:
    """Log in through Dex as the documented steps do; the `Cookie` header for `api_url`."""
    with requests.Session() as s:
        resp = s.get(api_url, allow_redirects=True, verify=verify)
        if resp.status_code == 403:
            start = urlsplit(resp.url)
            start = start._replace(path="/oauth2/start", query=urlencode({"rd": start.path}))
            resp = s.get(start.geturl(), allow_redirects=True, verify=verify)
        elif resp.status_code != 200:
            raise BaselineLoginError(f"HTTP {resp.status_code} for GET {api_url}")
        if not resp.history:
            return ""

        at = urlsplit(resp.url)
        if re.search(r"/auth$", at.path):
            at = at._replace(path=re.sub(r"/auth$", f"/auth/{auth_type}", at.path))
        if re.search(r"/auth/.*/login$", at.path):
            login_url = at.geturl()
        else:
            resp = s.get(at.geturl(), allow_redirects=True, verify=verify)
            if resp.status_code != 200:
                raise BaselineLoginError(f"HTTP {resp.status_code} for GET {at.geturl()}")
            login_url = resp.url

        resp = s.post(login_url, data={"login": username, "password": password}, allow_redirects=True, verify=verify)
        if resp.status_code != 200:
            raise BaselineLoginError(f"HTTP {resp.status_code} for POST to the login form")
        if not resp.history:
            raise BaselineLoginError("no redirect after the login form: the credentials were probably refused")

        if re.search(r"/approval$", urlsplit(resp.url).path):
            resp = s.post(resp.url, data={"approval": "approve"}, allow_redirects=True, verify=verify)
            if resp.status_code != 200:
                raise BaselineLoginError(f"HTTP {resp.status_code} for POST to the approval form")
        return "; ".join(f"{c.name}={c.value}" for c in s.cookies)


class BaselineClientManager:
    """The documented class's shape: every `create_kfp_client()` logs in again."""

    def __init__(
        self,
        api_url: str,
        dex_username: str,
        dex_password: str,
        dex_auth_type: str = "local",
        skip_tls_verify: bool = False,
    ) -> None:
        self._api_url = api_url
        self._username = dex_username
        self._password = dex_password
        self._auth_type = dex_auth_type
        self._verify = not skip_tls_verify

    def _get_session_cookies(self) -> str:
        return session_cookies(self._api_url, self._username, self._password, self._auth_type, self._verify)

    def create_kfp_client(self) -> Any:
        import kfp

        return kfp.Client(host=self._api_url, cookies=self._get_session_cookies())
