"""Bearer tokens for the tests: ServiceAccount-shaped JWTs, a projected token
volume that rotates as the kubelet's does, and the KFP API test server's log."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

from . import SA_IDENTITY


def sa_token(serial: int, *, exp_in: float = 3600) -> str:
    """A token shaped like a projected ServiceAccount token (the test server compares it, and
    our code only decodes it: the signature is never checked locally)."""
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    now = int(time.time())
    claims = {
        "aud": ["pipelines.kubeflow.org"],
        "exp": now + int(exp_in),
        "iat": now,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": SA_IDENTITY,
        "serial": serial,
    }
    return f"{enc({'alg': 'RS256', 'kid': 'test'})}.{enc(claims)}.c2lnbmF0dXJl"


class TokenVolume:
    """A projected token volume laid out as the kubelet does it: `token` is a link to
    `..data/token`, and a rotation writes a new timestamped folder and swaps `..data`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.serial = 0
        root.mkdir(parents=True)
        (root / "token").symlink_to("..data/token")
        self.rotate()

    @property
    def path(self) -> Path:
        return self.root / "token"

    def rotate(self) -> str:
        self.serial += 1
        token = sa_token(self.serial)
        d = self.root / f"..2026_11_28_{self.serial:04d}"
        d.mkdir()
        (d / "token").write_text(token)
        link = self.root / "..data_tmp"
        link.symlink_to(d.name)
        os.replace(link, self.root / "..data")
        return token


def api_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if '"/_test/' not in line]
