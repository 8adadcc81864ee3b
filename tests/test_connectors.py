"""Dex offering two connectors, `local` and `ldap` (a real OpenLDAP slapd), as many
Kubeflow sites run it: each login picks its connector on the same stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import kfp_auth
from kfp_auth import KFPClientManager
from stack import FAST_NAMESPACE, FAST_PASSWORD, FAST_USER, NAMESPACE, Stack
from stack.ldap import LDAP_EMAIL, LDAP_GROUP, LDAP_NAMESPACE, LDAP_PASSWORD, LDAP_USER, PEOPLE


@pytest.fixture(scope="module")
def ldap_kubeflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Kubeflow 1.10's layout with Dex's connector selection page listing `local` and `ldap`."""
    import stack

    with stack.start_kubeflow_stack(tmp_path_factory.mktemp("ldap"), ldap=True) as s:
        yield s


def experiment_users(s: Stack, since: int) -> set[str | None]:
    """Who the KFP API saw on the experiment requests made since request number `since`."""
    return {r["user"] for r in s.kfp_requests()[since:] if "/experiments" in r["path"]}


def slapd_log(s: Stack) -> str:
    return (s.workdir / "slapd.log").read_text(errors="replace")


def test_ldap_user_logs_in_and_lists_experiments(ldap_kubeflow: Stack) -> None:
    from kfp_server_api.exceptions import ApiException

    before = len(ldap_kubeflow.kfp_requests())
    m = KFPClientManager(ldap_kubeflow.api_url, LDAP_USER, LDAP_PASSWORD, dex_auth_type="ldap")
    client = m.create_kfp_client()

    created = client.create_experiment(name="from-ldap", namespace=LDAP_NAMESPACE)
    listed = client.list_experiments(namespace=LDAP_NAMESPACE)
    assert [e.experiment_id for e in listed.experiments] == [created.experiment_id]
    # The API knows the user by the mail slapd holds, and grants it its namespace only.
    with pytest.raises(ApiException) as ei:
        client.list_experiments(namespace=NAMESPACE)
    assert ei.value.status == 403
    assert experiment_users(ldap_kubeflow, before) == {LDAP_EMAIL}

    # Dex logged the user in through slapd: the ldap connector, the mail, the group search.
    dex_log = (ldap_kubeflow.workdir / "dex.log").read_text(errors="replace")
    ok = [line for line in dex_log.splitlines() if 'msg="login successful"' in line and "connector_id=ldap " in line]
    assert len(ok) == 1 and f"email={LDAP_EMAIL} " in ok[0] and f"groups=[{LDAP_GROUP}]" in ok[0]
    # slapd itself accepted the user's bind (its stats log shows the mech only for a successful one).
    assert f'BIND dn="uid={LDAP_USER},{PEOPLE}" mech=SIMPLE' in slapd_log(ldap_kubeflow)


def test_local_user_logs_in_on_the_same_stack(ldap_kubeflow: Stack) -> None:
    before = len(ldap_kubeflow.kfp_requests())
    m = KFPClientManager(ldap_kubeflow.api_url, FAST_USER, FAST_PASSWORD, dex_auth_type="local")
    m.create_kfp_client().list_experiments(namespace=FAST_NAMESPACE)
    assert experiment_users(ldap_kubeflow, before) == {FAST_USER}
    assert ldap_kubeflow.logins_at_dex(FAST_USER) == 1


def test_unknown_connector_lists_local_and_ldap(ldap_kubeflow: Stack) -> None:
    m = KFPClientManager(ldap_kubeflow.api_url, LDAP_USER, LDAP_PASSWORD, dex_auth_type="github")
    with pytest.raises(kfp_auth.UnknownConnectorError) as ei:
        m.get_session_cookies()
    # Read from Dex's connector selection page, in its order.
    assert ei.value.offered == ["local", "ldap"]
    msg = str(ei.value)
    assert "`github`" in msg and "local, ldap" in msg
    assert LDAP_PASSWORD not in msg + repr(ei.value)


def test_wrong_ldap_password(ldap_kubeflow: Stack) -> None:
    m = KFPClientManager(ldap_kubeflow.api_url, LDAP_USER, "wrong-ldap-password", dex_auth_type="ldap")
    with pytest.raises(kfp_auth.InvalidCredentialsError) as ei:
        m.get_session_cookies()
    e = ei.value
    assert e.status == 401
    assert "/dex/auth/ldap/login" in e.url
    assert "wrong-ldap-password" not in str(e) + repr(e)
    assert "connector `ldap`" in str(e)
    # The rejection is slapd's own: invalidCredentials (49) to a bind.
    assert "RESULT tag=97 err=49 " in slapd_log(ldap_kubeflow)
