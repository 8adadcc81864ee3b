"""skip_tls_verify against an HTTPS endpoint with a certificate made for this run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import kfp_auth
import stack
from kfp_auth import KFPClientManager


@pytest.fixture(scope="module")
def https_kfp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d: Path = tmp_path_factory.mktemp("https")
    proc, url = stack.start_kfp_api(d, require_auth=False, tls=stack.self_signed_cert(d))
    try:
        yield url + "/pipeline"
    finally:
        proc.stop()


def test_self_signed_certificate_fails_with_the_tls_error(https_kfp: str) -> None:
    with pytest.raises(kfp_auth.TLSError) as ei:
        KFPClientManager(https_kfp, "u", "p").get_session_cookies()
    msg = str(ei.value)
    assert "certificate" in msg.lower()
    assert "skip_tls_verify=True" in msg and "ssl_ca_cert=" in msg


def test_skip_tls_verify_covers_the_login_and_the_client(https_kfp: str) -> None:
    m = KFPClientManager(https_kfp, "u", "p", skip_tls_verify=True)
    assert m.get_session_cookies() == ""
    client = m.create_kfp_client()
    assert client._existing_config.verify_ssl is False
    with pytest.warns(Warning, match="Unverified HTTPS request"):  # urllib3's warning is left on
        client.create_experiment(name="over-https")
    assert client.list_experiments().experiments[0].display_name == "over-https"


def test_a_private_ca_is_trusted_through_ssl_ca_cert(private_ca_kfp: tuple[str, Path], recwarn) -> None:
    url, ca = private_ca_kfp
    with pytest.raises(kfp_auth.TLSError, match="unknown CA|does not trust"):
        KFPClientManager(url, "u", "p").get_session_cookies()

    m = KFPClientManager(url, "u", "p", ssl_ca_cert=ca)
    assert m.get_session_cookies() == ""
    client = m.create_kfp_client()
    assert client._existing_config.verify_ssl is True
    assert client._existing_config.ssl_ca_cert == str(ca)
    client.create_experiment(name="verified")
    assert client.list_experiments().experiments[0].display_name == "verified"
    assert not [w for w in recwarn if "Unverified HTTPS" in str(w.message)]


def test_unusable_ca_bundles_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ssl_ca_cert.*cannot read"):
        KFPClientManager("https://127.0.0.1:1/", "u", "p", ssl_ca_cert=tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ValueError, match="ssl_ca_cert"):
        KFPClientManager("https://127.0.0.1:1/", "u", "p", ssl_ca_cert=junk)
