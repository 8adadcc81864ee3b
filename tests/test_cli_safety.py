"""The command line against what a user mistypes and what a server sends (issue 16): no
message quotes a value typed for an option (it may be a password in the wrong place),
no control sequence from a page reaches the terminal, and kfp's context file is written
by the session cache's rules. A scripted server stands in for the gateway: no stack."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack.cli import run
from stack.hostile_server import AUTH_QUERY, SESSION_COOKIE, HostileServer, respond, script_login


@pytest.fixture
def srv() -> Iterator[HostileServer]:
    with HostileServer() as s:
        yield s


def shown(r: object) -> str:
    return r.stdout + r.stderr  # type: ignore[attr-defined]


# -- control sequences from a page ---------------------------------------------------------------

HOSTILE_ID = "%1b%5d0;OWNED-TITLE%07%1b%5b2J%1b%5b31mFAKE:%20login%20ok%c2%9b0m"
CONTROLS = ("\x1b", "\x07", "\x9b", "\x7f")


def selection_page(srv: HostileServer) -> None:
    """Dex's selection page offering a connector whose id is a terminal control sequence."""
    srv.route("/pipeline", respond(302, b"", {"Location": f"/dex/auth?{AUTH_QUERY}"}))
    srv.route("/dex/auth", respond(200, f'<a href="/dex/auth/{HOSTILE_ID}?{AUTH_QUERY}">x</a>'))


def dex_error_page(srv: HostileServer) -> None:
    """Dex's error box with raw control bytes in it."""
    script_login(srv)
    box = "<div class='dex-error-box'>\x1b]0;OWNED-TITLE\x07\x1b[2J\x1b[31mFAKE: login ok\x7f</div>"
    srv.route("/dex/auth/local", respond(400, box))


@pytest.mark.parametrize("page", [selection_page, dex_error_page], ids=["connector-link", "dex-error-box"])
@pytest.mark.parametrize("command", ["login", "diagnose"])
def test_control_characters_from_a_page_never_reach_the_terminal(srv: HostileServer, tmp_path: Path,
                                                                 page: object, command: str) -> None:
    page(srv)  # type: ignore[operator]
    r = run([command, "--url", srv.url + "/pipeline", "-u", "jane"], tmp_path, password="pw")
    assert r.returncode in (1, 3), shown(r)
    out = shown(r)
    assert "OWNED-TITLE" in out, out  # the text is shown, without its control characters
    assert not [c for c in CONTROLS if c in out], repr(out)
    if command == "diagnose":
        d = run([command, "--url", srv.url + "/pipeline", "-u", "jane", "-o", "json"], tmp_path, password="pw")
        assert not [c for c in CONTROLS if c in json.loads(d.stdout)["verdict"] + "".join(json.loads(d.stdout)["connectors"])]


