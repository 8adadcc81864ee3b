"""Layout B on the real SSO stack: no Kubeflow Dex, oauth2-proxy's provider is the company
IdP itself, and kfp-auth logs in with the device grant at that IdP (`dex_url` pointing at
it, as the IdP's public client). The provider need not be Dex: kfp-auth reads its
discovery document and uses only standard endpoints and grants. The IdP here is a Dex
because that is the OIDC provider this suite can run; nothing Dex-only is used on it (no
connector, no `/dex` path: its issuer is `http://127.0.0.1:<port>/idp`)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from kfp_auth import (
    BearerSession,
    DeviceEvent,
    InvalidArgumentError,
    KFPClientManager,
    LoginRequiredError,
    UnexpectedResponseError,
)
from stack.device_user import User
from stack.sso import IDP_NAMESPACE, IDP_USER, PUBLIC_CLIENT, SsoStack, api_get, jwt_claims, start_sso_stack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoStack]:
    """Layout B with 5 s ID tokens at the IdP, so that refresh happens within a test."""
    with start_sso_stack(tmp_path_factory.mktemp("sso-direct"), direct=True, id_token_expiry="5s") as s:
        assert s.provider_url == s.issuer == s.idp_url and s.connector_id is None
        assert "/dex" not in s.idp_url
        yield s


#: A provider other than Dex may not know Dex's `groups`: the layout-B logins leave it out.
SCOPES = "openid email profile offline_access"


def idp_manager(stack: SsoStack, user: User) -> KFPClientManager:
    return KFPClientManager(stack.api_url, login="device", dex_url=stack.idp_url, prompt=user, scopes=SCOPES)


def test_a_scope_the_provider_does_not_offer_is_an_error_naming_scopes(direct: SsoStack) -> None:
    """Checked against the provider's scopes_supported before anything is shown: the
    provider would refuse it on its own page, which a device login cannot see (it would
    wait for the code to expire)."""
    user = User(direct)
    m = KFPClientManager(
        direct.api_url, login="device", dex_url=direct.idp_url, prompt=user, scopes=f"{SCOPES} nonsense"
    )
    with pytest.raises(InvalidArgumentError) as ei:
        m.get_bearer_token()
    assert ei.value.argument == "scopes" and "`nonsense`" in str(ei.value), str(ei.value)
    assert "pass scopes= without it" in str(ei.value) and "offline_access" in str(ei.value)
    assert user.events == [], "nothing was shown"


def test_without_dex_url_the_error_says_to_pass_it(direct: SsoStack) -> None:
    """The default is Kubeflow's `/dex` on the gateway; this gateway has none."""
    user = User(direct)
    m = KFPClientManager(direct.api_url, login="device", prompt=user)
    with pytest.raises(UnexpectedResponseError) as ei:
        m.get_bearer_token()
    assert "no OpenID discovery document there" in str(ei.value) and "dex_url=" in str(ei.value), str(ei.value)
    assert user.events == [], "nothing was shown: no code was asked for"


class ApprovesThenAnswers(User):
    """Finishes the login in the browser before the prompt returns, then waits so that the
    first poll (3 s later) comes about 4.4 s into the 5 s token's life: past its renewal
    point (3.75 s), not past its expiry. Dex made the token when the user approved."""

    def __call__(self, event: DeviceEvent) -> None:
        self.events.append(event)
        if event["event"] == "code":
            self._walk(event)
            approved = time.time()
            time.sleep(max(0.0, int(approved) + 4.4 - 3.0 - time.time()))


def test_a_login_token_due_for_renewal_on_arrival_is_refreshed_before_it_is_used(direct: SsoStack) -> None:
    """Handed out as it came, it could expire on its way to the gateway (seen in CI)."""
    user = ApprovesThenAnswers(direct)
    b = BearerSession.from_dex_device(
        direct.api_url, dex_url=direct.idp_url, prompt=user, scopes=SCOPES, poll_interval=3.0
    )
    token = b.token()
    assert b.refreshes == 1, "the login's token was handed out without a refresh"
    assert jwt_claims(token)["exp"] - time.time() > 3, "the token handed out is a fresh one"
    assert user.kinds() == ["code", "done"]


def test_the_sdk_logs_in_at_the_idp_and_keeps_working_past_several_lifetimes(direct: SsoStack) -> None:
    user = User(direct)
    m = idp_manager(direct, user)
    before = len(direct.kfp_requests())
    client = m.create_kfp_client()
    client.list_experiments(namespace=IDP_NAMESPACE)
    assert user.kinds() == ["code", "done"]
    code = user.events[0]
    assert code["verification_uri"] == f"{direct.idp_url}/device" and code["connector"] is None
    assert user.walks[0].page.heading == "Login Successful for kfp-auth", user.walks[0].steps
    first = m.get_bearer_token() or ""
    claims = jwt_claims(first)
    assert (claims["iss"], claims["aud"], claims["email"]) == (direct.idp_url, PUBLIC_CLIENT, IDP_USER)
    lifetime = claims["exp"] - claims["iat"]
    assert lifetime == 5

    until = time.time() + 4 * lifetime
    while time.time() < until:
        client.list_experiments(namespace=IDP_NAMESPACE)
        time.sleep(0.5)
    assert user.kinds() == ["code", "done"], "one login, no prompt since"
    assert m.logins == 1 and m.bearer is not None and 3 <= m.bearer.refreshes <= 8, m.bearer
    assert jwt_claims(m.get_bearer_token() or "")["iat"] > claims["iat"]
    api = [r for r in direct.kfp_requests()[before:] if "/apis/" in r["path"]]
    assert len(api) >= 4 * lifetime and {r["user"] for r in api} == {IDP_USER}
    # Refreshed ahead of expiry: the gateway never had to refuse a token.
    assert "token is expired" not in direct.gateway_log()


def test_the_idp_restarted_is_a_login_required_error_then_a_new_login(direct: SsoStack) -> None:
    """The IdP's storage is memory: a restart forgets its refresh tokens (and its keys:
    oauth2-proxy keeps the keys it fetched, so the old tokens still pass until they expire)."""
    user = User(direct)
    m = idp_manager(direct, user)
    client = m.create_kfp_client()
    client.list_experiments(namespace=IDP_NAMESPACE)
    direct.restart("idp")
    with pytest.raises(LoginRequiredError) as ei:
        m.get_bearer_token(force_refresh=True)
    assert str(ei.value).count("log in again") == 1 and "force_login=True" in str(ei.value), str(ei.value)
    assert user.kinds() == ["code", "done"], "no prompt in the middle of a job"
    client = m.create_kfp_client(force_login=True)
    assert user.kinds() == ["code", "done", "code", "done"] and m.logins == 2
    token = m.get_bearer_token() or ""
    # The new token is signed with the IdP's new key, which oauth2-proxy fetches on demand.
    assert api_get(direct.experiments_url, token) == (200, b"{}"), direct.gateway_log()[-2000:]
    client.list_experiments(namespace=IDP_NAMESPACE)
