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

TYPED = "Hunter2Secret"  # a password, typed where a value belongs


@pytest.fixture
def srv() -> Iterator[HostileServer]:
    with HostileServer() as s:
        yield s


def shown(r: object) -> str:
    return r.stdout + r.stderr  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "args,names",
    [
        (["login", "--password-file", TYPED], "--password-file"),
        (["login", "--ca-cert", TYPED], "--ca-cert"),
        (["diagnose", "--ca-cert", TYPED], "--ca-cert"),
        (["login", "--timeout", TYPED], "--timeout"),
        (["login", "-o", TYPED], "--output"),
        (["inspect", "--file", TYPED], "--file"),
    ],
    ids=["password-file", "ca-cert", "diagnose-ca-cert", "timeout", "output", "inspect-file"],
)
def test_no_error_quotes_an_option_value(tmp_path: Path, args: list[str], names: str) -> None:
    if args[0] != "inspect":
        args = [*args, "--url", "http://127.0.0.1:9/pipeline", "-u", "jane"]
    r = run(args, tmp_path, password="pw")
    assert r.returncode == 2, shown(r)
    assert TYPED not in shown(r), shown(r)
    assert names in r.stderr, r.stderr


def test_a_context_file_that_cannot_be_used_is_not_quoted(srv: HostileServer, tmp_path: Path) -> None:
    script_login(srv)
    (tmp_path / "notafolder").write_text("")  # where the context file's folder should be
    r = run(
        [
            "context",
            "--any-host",
            "--url",
            srv.url + "/pipeline",
            "-u",
            "jane",
            "--context-file",
            f"notafolder/{TYPED}",
        ],
        tmp_path,
        password="pw",
        cwd=tmp_path,
    )
    assert r.returncode == 6 and "<the --context-file value>" in r.stderr and "not a folder" in r.stderr, shown(r)
    assert TYPED not in shown(r), shown(r)


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
def test_control_characters_from_a_page_never_reach_the_terminal(
    srv: HostileServer, tmp_path: Path, page: object, command: str
) -> None:
    page(srv)  # type: ignore[operator]
    r = run([command, "--url", srv.url + "/pipeline", "-u", "jane"], tmp_path, password="pw")
    assert r.returncode in (1, 3), shown(r)
    out = shown(r)
    assert "OWNED-TITLE" in out, out  # the text is shown, without its control characters
    assert not [c for c in CONTROLS if c in out], repr(out)
    if command == "diagnose":
        d = run([command, "--url", srv.url + "/pipeline", "-u", "jane", "-o", "json"], tmp_path, password="pw")
        assert not [
            c for c in CONTROLS if c in json.loads(d.stdout)["verdict"] + "".join(json.loads(d.stdout)["connectors"])
        ]


# -- kfp's context file, by the session cache's rules ---------------------------------------------


def context(srv: HostileServer, home: Path, ctx: Path) -> object:
    return run(
        ["context", "--any-host", "--url", srv.url + "/pipeline", "-u", "jane", "--context-file", str(ctx)],
        home,
        password="pw",
    )


def test_the_context_file_is_written_privately(srv: HostileServer, tmp_path: Path) -> None:
    script_login(srv)
    ctx = tmp_path / "kfp" / "context.json"
    r = context(srv, tmp_path, ctx)
    assert r.returncode == 0, shown(r)  # type: ignore[attr-defined]
    assert json.loads(ctx.read_text())["client_authentication_cookie"] == f"{SESSION_COOKIE}=s3ss10n"
    assert stat.S_IMODE(ctx.stat().st_mode) == 0o600 and stat.S_IMODE(ctx.parent.stat().st_mode) == 0o700
    # kfp itself writes the file 0644: that one is read and replaced, keeping its keys.
    ctx.write_text(json.dumps({"namespace": "team"}))
    ctx.chmod(0o644)
    assert context(srv, tmp_path, ctx).returncode == 0  # type: ignore[attr-defined]
    data = json.loads(ctx.read_text())
    assert data["namespace"] == "team" and stat.S_IMODE(ctx.stat().st_mode) == 0o600


def test_a_context_file_planted_as_a_link_is_not_followed(srv: HostileServer, tmp_path: Path) -> None:
    script_login(srv)
    theirs = tmp_path / "theirs.json"
    theirs.write_text(json.dumps({"namespace": "theirs"}))
    folder = tmp_path / "kfp"
    folder.mkdir(mode=0o700)
    (folder / "context.json").symlink_to(theirs)
    r = context(srv, tmp_path, folder / "context.json")
    assert r.returncode == 6 and "not a regular file" in r.stderr, shown(r)  # type: ignore[attr-defined]
    assert json.loads(theirs.read_text()) == {"namespace": "theirs"}


@pytest.mark.parametrize("mode", [0o777, 0o770])
def test_a_context_folder_others_can_write_is_refused(srv: HostileServer, tmp_path: Path, mode: int) -> None:
    script_login(srv)
    folder = tmp_path / "kfp"
    folder.mkdir()
    folder.chmod(mode)
    r = context(srv, tmp_path, folder / "context.json")
    assert r.returncode == 6 and "not private" in r.stderr, shown(r)  # type: ignore[attr-defined]
    assert not (folder / "context.json").exists()
    assert os.listdir(folder) == []
