"""`make demo`: start the local stack, run the documented usage end to end, stop the stack.

The stack is the real Dex and the real oauth2-proxy in Kubeflow 1.10's layout,
in front of our own KFP API test server (see tests/stack). Nothing secret is
printed: cookies are shown by name and length only.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import kfp_auth  # noqa: E402
import stack  # noqa: E402


def step(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def main() -> int:
    step("building Dex and oauth2-proxy (cached after the first run)")
    stack.ensure_binaries()
    v = stack.versions()
    step(f"starting Dex {v['dex']}, oauth2-proxy {v['oauth2-proxy']} and the KFP API test server")
    with tempfile.TemporaryDirectory(prefix="kfp-auth-demo-") as d, stack.start_kubeflow_stack(Path(d)) as s:
        print(f"    gateway (oauth2-proxy): {s.gateway_url}")
        print(f"    api_url:                {s.api_url}")

        step("KFPClientManager(...) as in the Kubeflow docs, with one import changed")
        manager = kfp_auth.KFPClientManager(
            api_url=s.api_url,
            dex_username=stack.USER,
            dex_password=stack.PASSWORD,
            dex_auth_type="local",
            skip_tls_verify=False,
        )
        print(f"    {manager!r}")

        step("logging in through oauth2-proxy and Dex")
        t = time.perf_counter()
        cookies = manager.get_session_cookies()
        took = time.perf_counter() - t
        names = [c.split("=", 1)[0] for c in cookies.split("; ")]
        print(f"    got {len(cookies)} bytes of cookies {names} in {took:.2f} s (Dex's bcrypt cost 12 is most of it)")

        step("create_kfp_client()")
        client = manager.create_kfp_client()
        print(f"    {type(client).__module__}.{type(client).__name__} for {s.api_url}")

        step(f"create_experiment and list_experiments in {stack.NAMESPACE}")
        exp = client.create_experiment(name="kfp-auth-demo", namespace=stack.NAMESPACE)
        listed = client.list_experiments(namespace=stack.NAMESPACE)
        for e in listed.experiments:
            print(f"    experiment {e.display_name!r} id={e.experiment_id}")
        assert any(e.experiment_id == exp.experiment_id for e in listed.experiments)

        step("a wrong password gives a typed error")
        try:
            kfp_auth.KFPClientManager(s.api_url, stack.USER, "wrong").get_session_cookies()
        except kfp_auth.InvalidCredentialsError as e:
            print(f"    {type(e).__name__}: {e}")

        step("stopping the stack")
    step("demo finished: login, create_kfp_client and list_experiments all worked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
