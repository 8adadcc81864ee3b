"""The ``kfp-auth`` command line: log in, print the session, or hand it to kfp's own CLI.

Exit codes: 0 ok, 2 usage, 3 credentials rejected (or unknown connector, or an SSO
login needed), 4 gateway unreachable or too slow, 5 TLS, 6 session or token cache
unusable, 1 anything else.

``kfp-auth token`` runs before every command of a user's script, so the kfp-auth modules
it needs (the native core and the manager, never kfp) are imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from kfp_auth import _native
from kfp_auth._token_cli import (
    ENV_CONNECTOR,
    ENV_URL,
    EXIT_CACHE,
    EXIT_CREDENTIALS,
    EXIT_OTHER,
    EXIT_USAGE,
    exit_code,
    print_token,
)

if TYPE_CHECKING:
    from kfp_auth._keyring import KeyringStore
    from kfp_auth._manager import KFPClientManager

ENV_USER = "KFP_AUTH_USERNAME"
ENV_PASSWORD = "KFP_AUTH_PASSWORD"
ENV_CLIENT_SECRET = "KFP_AUTH_CLIENT_SECRET"

# Where kfp keeps its context (kfp.Client._LOCAL_KFP_CONTEXT).
KFP_CONTEXT = Path("~/.config/kfp/context.json")


# Values typed for these options, by option: no message quotes them (one may be a password
# typed in the wrong place), as the parser does not quote arguments it does not know. A path
# that names an existing file is quoted: it is what it should be.
_NOT_QUOTED = {
    "password_file": "--password-file",
    "ca_cert": "--ca-cert",
    "context_file": "--context-file",
    "file": "--file",
    "token_file": "--token-file",
    "dex_url": "--dex-url",
    "dex_client_id": "--dex-client-id",
}
_PATHS = {"password_file", "ca_cert", "context_file", "file", "token_file"}
_typed: dict[str, str] = {}


def _unquoted(message: str) -> str:
    """`message` with each value typed for an option in `_NOT_QUOTED` replaced by the option's name."""
    for value, option in sorted(_typed.items(), key=lambda kv: -len(kv[0])):
        # Whole words only: a short value must not eat letters out of the message.
        message = re.sub(rf"(?<![\w./~-]){re.escape(value)}(?![\w./~-])", f"<the {option} value>", message)
    return message


def _fail(code: int, message: str) -> NoReturn:
    print(f"kfp-auth: {_unquoted(message)}", file=sys.stderr)
    raise SystemExit(code)


_exit_code = exit_code


def _login_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("login")
    g.add_argument(
        "--url",
        default=os.environ.get(ENV_URL),
        help=f"the Kubeflow Pipelines API URL, e.g. http://localhost:8080/pipeline (env {ENV_URL})",
    )
    g.add_argument("-u", "--username", default=os.environ.get(ENV_USER, ""), help=f"the Dex username (env {ENV_USER})")
    g.add_argument(
        "-c",
        "--connector",
        default=os.environ.get(ENV_CONNECTOR),
        help=f"the Dex connector id, e.g. local or ldap (env {ENV_CONNECTOR}; default local; with --device or "
        "--browser, none: Dex shows its choice)",
    )
    src = g.add_mutually_exclusive_group()
    src.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    src.add_argument("--password-file", type=Path, metavar="PATH", help="read the password from a file")
    src.add_argument(
        "--password-env",
        metavar="NAME",
        default=ENV_PASSWORD,
        help=f"read the password from this environment variable (default {ENV_PASSWORD})",
    )
    g.add_argument("--skip-tls-verify", action="store_true", help="do not verify the gateway's TLS certificate")
    g.add_argument("--ca-cert", type=Path, metavar="PATH", help="trust this PEM CA bundle for the gateway")
    g.add_argument(
        "--timeout", type=float, default=30.0, help="seconds a login may take, all its requests together (default 30)"
    )
    g.add_argument(
        "--session-cache",
        action="store_true",
        help="reuse a valid session from, and save it to, ~/.cache/kfp-auth/sessions.json",
    )
    g.add_argument(
        "--dex-client-id",
        metavar="ID",
        help="log in with Dex's password grant as this OAuth2 client and use its ID token as a "
        f"bearer token; the client secret is read from ${ENV_CLIENT_SECRET}",
    )
    g.add_argument(
        "--dex-url",
        metavar="URL",
        help="Dex's URL: with --dex-client-id, where to ask for the grant (default: /dex on --url's "
        "host); otherwise the only origin the password may go to (default: any, with a "
        "warning when it is not --url's)",
    )


def _sso_options(p: argparse.ArgumentParser | argparse._ArgumentGroup, *, login: bool = False) -> None:
    """The options of the SSO commands: which saved login, and how to reach Dex."""
    g = p if login or not isinstance(p, argparse.ArgumentParser) else p.add_argument_group("login")
    if not login:
        g.add_argument(
            "--url",
            default=os.environ.get(ENV_URL),
            help=f"the Kubeflow Pipelines API URL the login was made for (env {ENV_URL})",
        )
        g.add_argument(
            "-c", "--connector", default=os.environ.get(ENV_CONNECTOR), help="only a login made with this connector"
        )
        g.add_argument("-u", "--user", help="only this user's login (their email)")
        g.add_argument("--dex-client-id", metavar="ID", help="the Dex client of the login (default kfp-auth)")
        g.add_argument("--dex-url", metavar="URL", help="Dex's URL, when not /dex on --url's host")
        g.add_argument("--skip-tls-verify", action="store_true", help="do not verify the gateway's TLS certificate")
        g.add_argument("--ca-cert", type=Path, metavar="PATH", help="trust this PEM CA bundle for the gateway")
        g.add_argument("--timeout", type=float, default=30.0, help="seconds a refresh may take (default 30)")
    g.add_argument(
        "--token-cache",
        type=Path,
        metavar="PATH",
        help="the token cache file (default ~/.cache/kfp-auth/tokens.json; $XDG_CACHE_HOME is honoured)",
    )
    g.add_argument(
        "--keyring",
        action="store_true",
        default=None,
        help="keep the login's tokens in the OS keyring, the default token cache file keeping the rest "
        '(needs `pip install "kfp-auth[keyring]"`; env KFP_AUTH_TOKEN_CACHE=keyring)',
    )


def _password(args: argparse.Namespace) -> str:
    """From stdin, a file, the environment, or a prompt; never from the command line."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if args.password_file:
        path: Path = args.password_file
        try:
            return path.read_text().rstrip("\r\n")
        except OSError as e:
            _fail(EXIT_USAGE, f"cannot read the file given to --password-file (not shown): {e.strerror}")
    if args.password_env in os.environ:
        return os.environ[args.password_env]
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"Password for {args.username or 'Dex'}: ")
    return ""  # fine for an unsecured endpoint; Dex will say if it is not


def _manager(args: argparse.Namespace) -> KFPClientManager:
    if not args.url:
        _fail(EXIT_USAGE, f"no API URL: pass --url or set {ENV_URL}")
    grant: dict[str, Any] = {"dex_url": args.dex_url}
    if args.dex_client_id:
        secret = os.environ.get(ENV_CLIENT_SECRET)
        if secret is None:
            _fail(EXIT_USAGE, f"--dex-client-id needs the client secret in ${ENV_CLIENT_SECRET}")
        grant |= {"dex_client_id": args.dex_client_id, "dex_client_secret": secret}
    from kfp_auth._manager import KFPClientManager

    try:
        return KFPClientManager(
            args.url,
            args.username,
            _password(args),
            args.connector or "local",
            skip_tls_verify=args.skip_tls_verify,
            ssl_ca_cert=args.ca_cert,
            timeout=args.timeout,
            session_cache=args.session_cache,
            **grant,
        )
    except (ValueError, _native.TokenError) as e:
        _fail(EXIT_USAGE, str(e))


def _cookies(m: KFPClientManager) -> str:
    try:
        return m.get_session_cookies()
    except _native.KFPAuthError as e:
        _fail(_exit_code(e), str(e))


def _token(m: KFPClientManager) -> str:
    try:
        return m.get_bearer_token() or ""
    except _native.KFPAuthError as e:
        _fail(_exit_code(e), str(e))


def _keyring(args: argparse.Namespace) -> bool:
    """--keyring, else $KFP_AUTH_TOKEN_CACHE."""
    from kfp_auth._keyring import wanted_by_env

    try:
        keyring = bool(args.keyring) or wanted_by_env()
    except ValueError as e:
        _fail(EXIT_USAGE, str(e))
    if keyring and args.token_cache is not None:
        _fail(EXIT_USAGE, "--keyring keeps the logins' metadata in the default token cache file: drop --token-cache")
    return keyring


def _keyring_store() -> KeyringStore:
    from kfp_auth._keyring import KeyringStore

    try:
        return KeyringStore()
    except _native.KeyringError as e:
        _fail(EXIT_CACHE, str(e))


def _token_cache(args: argparse.Namespace) -> str:
    if args.token_cache is not None:
        return str(args.token_cache)
    path = _native.default_token_cache()
    if path is None:
        _fail(EXIT_USAGE, "there is no default token cache without $HOME or $XDG_CACHE_HOME: pass --token-cache")
    return path


def _sso_login(args: argparse.Namespace) -> None:
    """`login --device` / `--browser`: a new SSO login, saved in the token cache; nothing on stdout."""
    mode = "device" if args.device else "browser"
    if not args.url:
        _fail(EXIT_USAGE, f"no API URL: pass --url or set {ENV_URL}")
    if args.dex_client_id is not None and os.environ.get(ENV_CLIENT_SECRET):
        _fail(EXIT_USAGE, f"--{mode} logs in as a public client: unset ${ENV_CLIENT_SECRET}")
    keyring = _keyring(args)
    cache = _token_cache(args)
    from kfp_auth._manager import KFPClientManager

    try:
        m = KFPClientManager(
            args.url,
            dex_auth_type=args.connector,
            skip_tls_verify=args.skip_tls_verify,
            ssl_ca_cert=args.ca_cert,
            timeout=args.timeout,
            dex_url=args.dex_url,
            dex_client_id=args.dex_client_id,
            login=mode,  # type: ignore[arg-type]
            token_cache="keyring" if keyring else cache,
        )
    except (ValueError, _native.TokenError) as e:
        _fail(EXIT_USAGE, f"--{mode}: {e}")
    except _native.KeyringError as e:
        _fail(EXIT_CACHE, str(e))
    assert m.bearer is not None  # an SSO login
    try:
        m.bearer.login()
    except _native.KFPAuthError as e:
        _fail(_exit_code(e), str(e))
    saved = _native.token_cache_logins(cache, url=args.url, client_id=args.dex_client_id or "kfp-auth")
    who = f" as {saved[0]['user']}" if saved else ""
    where = f"{cache}, its tokens in the OS keyring" if keyring else cache
    print(
        f"kfp-auth: logged in to {_native.redact_url(args.url)}{who}; the login is saved in {where}. "
        f"`kfp-auth token --url {shlex.quote(args.url)}` prints its token",
        file=sys.stderr,
    )


def cmd_login(args: argparse.Namespace) -> None:
    if args.device or args.browser:
        return _sso_login(args)
    m = _manager(args)
    if m.auth_kind == "dex-password-grant":
        token = _token(m)
        claims = m.token_claims()
        if args.output == "json":
            expires = None if claims is None else claims["expires"]
            print(json.dumps({"api_url": args.url, "bearer_token": token, "expires": expires}))
        elif args.output == "export":
            print(f"export {ENV_URL}={shlex.quote(args.url)}")
            print(f"export KFP_AUTH_TOKEN={shlex.quote(token)}")
        else:
            print(token)
        return
    cookies = _cookies(m)
    if args.output == "json":
        print(json.dumps({"api_url": args.url, "cookie": cookies, "unsecured": cookies == ""}))
    elif args.output == "export":
        print(f"export {ENV_URL}={shlex.quote(args.url)}")
        print(f"export KFP_AUTH_COOKIE={shlex.quote(cookies)}")
    else:
        print(cookies)


def write_private_json(path: Path, data: dict[str, object]) -> None:
    """Replace `path` atomically with `data`, mode 0600, by the session cache's rules: a private
    folder under folders others cannot write, reached without following a link."""
    _native.write_private_file(path, json.dumps(data, indent=2).encode())


def _cookie_session(args: argparse.Namespace) -> KFPClientManager:
    m = _manager(args)
    if m.auth_kind != "dex-login":
        _fail(EXIT_USAGE, f"`{args.command}` works on Dex logins (cookies); drop --dex-client-id")
    return m


# kfp's context file is tied to no host: kfp sends its cookie wherever a client is pointed.
_ANY_HOST_WARNING = (
    "kfp-auth: WARNING: kfp's context file is not tied to a host. From now on, every kfp.Client(host=...) "
    "and every `kfp --endpoint ...` run as you sends this Kubeflow session cookie to the host it names, "
    "whatever that host is, over plain http too: a mistyped host, or one chosen by a notebook or by "
    "pipeline code, receives your session. `kfp-auth kfp -- ...` runs kfp with the session for one "
    "endpoint only. To take the cookie back out, delete the client_authentication_cookie key from {path}."
)


def cmd_context(args: argparse.Namespace) -> None:
    if not args.any_host:
        _fail(
            EXIT_USAGE,
            "`kfp-auth context` puts the session cookie in kfp's context file, and kfp then sends it to "
            "any host a kfp.Client or `kfp --endpoint` names. For the kfp CLI on this endpoint only, run "
            "`kfp-auth kfp [login options] -- experiment list`. To write the file anyway, add --any-host",
        )
    m = _cookie_session(args)
    cookies = _cookies(m)
    path = Path(os.path.expanduser(str(args.context_file)))
    # The file kfp wrote (0644) is read, kept by the same rules as what we write.
    try:
        raw = _native.read_private_file(path)
        data = {} if raw is None else json.loads(raw)
    except _native.SessionCacheError as e:
        _fail(EXIT_CACHE, f"cannot use kfp's context file: {e}")
    except (OSError, ValueError) as e:
        _fail(
            EXIT_OTHER,
            f"cannot read the context file (--context-file) ({getattr(e, 'strerror', None) or e}); fix or delete it",
        )
    if not isinstance(data, dict):
        _fail(EXIT_OTHER, f"{path} does not hold a JSON object; fix or delete it")
    data["client_authentication_cookie"] = cookies
    if args.namespace:
        data["namespace"] = args.namespace
    else:
        # kfp's constructor reads this key without a default: its own file always has it ('' when unset).
        data.setdefault("namespace", "")
    try:
        write_private_json(path, data)
    except _native.SessionCacheError as e:
        _fail(EXIT_CACHE, f"cannot use kfp's context file: {e}")
    print(
        f"kfp-auth: wrote the session for {_native.redact_url(args.url)} to {path}"
        + (f" (namespace {args.namespace})" if args.namespace else ""),
        file=sys.stderr,
    )
    print(_ANY_HOST_WARNING.format(path=path), file=sys.stderr)


def _kfp_manager(args: argparse.Namespace, url: str, existing_token: str | None) -> KFPClientManager:
    """The manager of `kfp-auth kfp`'s one endpoint, in the mode its options name."""
    from kfp_auth._manager import KFPClientManager

    tls: dict[str, Any] = {
        "skip_tls_verify": args.skip_tls_verify,
        "ssl_ca_cert": args.ca_cert,
        "timeout": args.timeout,
    }
    # --token-file, --device and --browser exclude each other in the parser; with --device or
    # --browser, --dex-client-id names the public client, otherwise it is the password grant.
    modes = [
        name
        for name, given in (
            ("--token-file", args.token_file is not None),
            ("--device", args.device),
            ("--browser", args.browser),
            ("--dex-client-id", args.dex_client_id is not None and not (args.device or args.browser)),
        )
        if given
    ]
    if len(modes) > 1:
        _fail(EXIT_USAGE, f"{modes[0]} and {modes[1]} are two ways to log in: pick one")
    args.url = url
    try:
        if existing_token is not None:
            if modes:
                _fail(EXIT_USAGE, f"kfp's --existing-token is the credential already: drop {modes[0]}")
            return KFPClientManager(url, existing_token=existing_token, **tls)
        if args.token_file is not None:
            return KFPClientManager(url, token_path=args.token_file, **tls)
        if args.device or args.browser:
            mode = "device" if args.device else "browser"
            if args.dex_client_id is not None and os.environ.get(ENV_CLIENT_SECRET):
                _fail(EXIT_USAGE, f"--{mode} logs in as a public client: unset ${ENV_CLIENT_SECRET}")
            keyring = _keyring(args)
            return KFPClientManager(
                url,
                dex_auth_type=args.connector,
                dex_url=args.dex_url,
                dex_client_id=args.dex_client_id,
                login=mode,  # type: ignore[arg-type]
                token_cache="keyring" if keyring else _token_cache(args),
                **tls,
            )
    except (ValueError, _native.TokenError) as e:
        _fail(EXIT_USAGE, str(e))
    except _native.KeyringError as e:
        _fail(EXIT_CACHE, str(e))
    return _manager(args)


def cmd_kfp(args: argparse.Namespace) -> None:
    """Run the stock kfp CLI in this process, its client on this login, for one endpoint only."""
    from kfp_auth._kfp_cli import endpoint_for, run_kfp_cli

    def make_client(endpoint: str | None, existing_token: str | None, namespace: str) -> Any:
        m = _kfp_manager(args, endpoint_for(args.url, endpoint, _fail), existing_token)
        try:
            client = m.create_kfp_client()
        except _native.KFPAuthError as e:
            _fail(_exit_code(e), str(e))
        if namespace != "kubeflow":
            # What kfp's own constructor does with a namespace other than its default; kfp's
            # set_user_namespace would also write its context file.
            client._context_setting["namespace"] = namespace
        return client

    raise SystemExit(run_kfp_cli(args.kfp_args, make_client, _fail))


class _Parser(argparse.ArgumentParser):
    """Never echoes arguments it does not know: one may be a password typed in the wrong place.
    Takes no abbreviations, so `--password` cannot stand for `--password-file`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments"):
            message = "unrecognized arguments (not shown, in case one is a password); see --help"
        # `invalid float value: 'x'`, `invalid choice: 'x' (choose from ...)`: the same rule.
        message = re.sub(
            r"(invalid [\w ]*?(?:value|choice)): '.*?'(?= \(choose from|$)",
            r"\1 (not shown, in case it is a password)",
            message,
            flags=re.S,
        )
        super().error(message)


def cmd_diagnose(args: argparse.Namespace) -> None:
    session = _cookie_session(args)._session
    assert session is not None  # a Dex login, checked above
    d = session.diagnose()
    err = d["error"]
    if args.output == "json":
        print(
            json.dumps(
                {k: v for k, v in d.items() if k != "error"} | {"error": None if err is None else type(err).__name__},
                indent=2,
            )
        )
    else:
        print(f"kfp-auth diagnose {d['url']}")
        print(f"  TLS:        {d['tls']}")
        print(f"  gateway:    {d['gateway']}")
        print(f"  connectors: {', '.join(d['connectors']) or 'none seen'}")
        print(f"  Dex:        {d['dex']}")
        print(f"  approval:   {d['approval']}")
        print("  requests:")
        for i, st in enumerate(d["steps"], 1):
            status = st["status"] if st["status"] is not None else "---"
            print(f"    {i:2}  {st['method']:<4} {st['url']}  ->  {status}  ({st['elapsed_ms']} ms)")
        print(f"  verdict:    {d['verdict']}")
    if err is not None:
        raise SystemExit(_exit_code(err))


def _when(ts: float | None) -> str:
    if ts is None:
        return "not given"
    left = ts - time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
    span = f"{int(abs(left)) // 3600}h{int(abs(left)) // 60 % 60:02d}m"
    return f"{stamp} ({'in ' + span if left >= 0 else 'EXPIRED ' + span + ' ago'})"


def cmd_inspect(args: argparse.Namespace) -> None:
    try:
        if args.stdin:
            claims = _native.inspect_token(sys.stdin.read().strip())
            source = "standard input"
        else:
            path = args.file or _native.default_token_path()
            claims = _native.inspect_token_file(path)
            source = str(path)
    except _native.KFPAuthError as e:
        _fail(EXIT_USAGE, str(e))
    if args.output == "json":
        print(json.dumps({"source": source, **claims}))
        return
    print(f"token from {source} (decoded, not verified; the token itself is not shown)")
    print(f"  subject:  {claims['subject'] or 'not given'}")
    print(f"  audience: {', '.join(claims['audience']) or 'not given'}")
    print(f"  issuer:   {claims['issuer'] or 'not given'}")
    print(f"  expires:  {_when(claims['expires'])}")
    if claims["expires"] is not None and claims["expires"] < time.time():
        raise SystemExit(EXIT_CREDENTIALS)


def cmd_token(args: argparse.Namespace) -> None:
    """Print the ID token of the saved SSO login for --url, refreshed when needed; stdout only."""
    if args.file is not None or args.stdin:
        _fail(EXIT_USAGE, "decoding a token moved to `kfp-auth inspect`; `kfp-auth token` prints an SSO login's token")
    code, message = print_token(
        args.url,
        token_cache=None if args.token_cache is None else str(args.token_cache),
        keyring=_keyring(args),
        client_id=args.dex_client_id,
        dex_url=args.dex_url,
        connector=args.connector,
        user=args.user,
        skip_tls_verify=args.skip_tls_verify,
        ssl_ca_cert=None if args.ca_cert is None else str(args.ca_cert),
        timeout=args.timeout,
    )
    if code:
        _fail(code, message)


def cmd_logout(args: argparse.Namespace) -> None:
    """Forget one saved SSO login (by --url, -c, -u), or all of them."""
    _keyring(args)  # the usage checks; the keyring is used when a login to remove is in it
    cache = _token_cache(args)
    try:
        if args.all:
            try:
                held = any(e["keyring"] for e in _native.token_cache_logins(cache))
            except _native.SessionCacheError:
                held = False  # a file that cannot be read is removed all the same
            store = _keyring_store() if held else None
            gone = _native.token_cache_remove(cache, all=True, secret_store=store)
            print(f"kfp-auth: {'removed' if gone else 'there is no'} token cache {cache}", file=sys.stderr)
            return
        if not args.url:
            _fail(EXIT_USAGE, f"which login? pass --url (or set {ENV_URL}), or --all")
        logins = _native.token_cache_logins(
            cache, url=args.url, client_id=args.dex_client_id, connector=args.connector, user=args.user
        )
        if not logins:
            print(f"kfp-auth: no saved login for {_native.redact_url(args.url)} in {cache}", file=sys.stderr)
            return
        if len(logins) > 1:
            users = ", ".join(sorted({f"{e['user']} (connector {e['connector'] or 'not named'})" for e in logins}))
            _fail(EXIT_USAGE, f"several saved logins for {_native.redact_url(args.url)}: {users}; pick one with -u/-c")
        store = _keyring_store() if logins[0]["keyring"] else None
        _native.token_cache_remove(cache, [logins[0]["key"]], secret_store=store)
    except _native.SessionCacheError as e:
        _fail(EXIT_CACHE, str(e))
    print(f"kfp-auth: logged out {logins[0]['user']} from {_native.redact_url(args.url)}", file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="kfp-auth",
        description="Log in to a Kubeflow Pipelines API through Dex (oauth2-proxy or oidc-authservice), "
        "or find that it needs no login.",
        epilog=f"The password is never taken from the command line: use --password-stdin, "
        f"--password-file, ${ENV_PASSWORD}, or the prompt. Exit codes: 0 ok, 2 usage, "
        f"3 credentials rejected, 4 unreachable or timed out, 5 TLS, 6 session cache, 1 other.",
    )
    p.add_argument("--version", action="version", version=f"kfp-auth {_native.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    login = sub.add_parser(
        "login",
        help="log in and print the session's Cookie header or bearer token, or save an SSO login",
        description="Log in and print the session: the Cookie header value "
        "(empty when the endpoint needs no login), or with --dex-client-id "
        "the bearer token from Dex's password grant. With --device (or --browser), log in "
        "through Dex without a password and save the login for `kfp-auth token`.",
    )
    _login_options(login)
    sso = login.add_argument_group("single sign-on (no password)")
    how = sso.add_mutually_exclusive_group()
    how.add_argument(
        "--device",
        action="store_true",
        help="log in through Dex in a browser anywhere with a code (SSO connectors included) and save the "
        "login in the token cache; prints nothing on stdout (then: `kfp-auth token`)",
    )
    how.add_argument(
        "--browser", action="store_true", help="as --device, with this machine's browser and a loopback redirect"
    )
    _sso_options(sso, login=True)
    login.add_argument(
        "-o",
        "--output",
        choices=["plain", "json", "export"],
        default="plain",
        help="plain: the header value or token; json: an object; export: shell export lines",
    )
    login.set_defaults(func=cmd_login)

    diag = sub.add_parser(
        "diagnose",
        help="say what guards a URL and why a login fails",
        description="Log in step by step and report the gateway (oauth2-proxy, "
        "oidc-authservice, none), Dex's connectors, the approval screen, TLS, "
        "each request (query values hidden) and the verdict. Exits like `login`.",
    )
    _login_options(diag)
    diag.add_argument("-o", "--output", choices=["text", "json"], default="text")
    diag.set_defaults(func=cmd_diagnose)

    ins = sub.add_parser(
        "inspect",
        help="show who a bearer token is for and until when",
        description="Decode a JWT bearer token (a ServiceAccount token or one from "
        "`kubectl create token`) and show its subject, audience, issuer and expiry. "
        "The token is never printed. Exits 3 when it has expired.",
    )
    src = ins.add_mutually_exclusive_group()
    src.add_argument(
        "--file",
        type=Path,
        metavar="PATH",
        help=f"the token file (default ${_native.TOKEN_PATH_ENV}, else {_native.DEFAULT_TOKEN_PATH})",
    )
    src.add_argument("--stdin", action="store_true", help="read the token from standard input")
    ins.add_argument("-o", "--output", choices=["text", "json"], default="text")
    ins.set_defaults(func=cmd_inspect)

    tok = sub.add_parser(
        "token",
        help="print a valid ID token of the SSO login saved for --url",
        description="Print the ID token of the SSO login that `kfp-auth login --device` saved for --url "
        "(the most recent one, or -u's), refreshed with its refresh token when it is about to expire. "
        "It never asks the user: without a usable saved login it exits 3 and says to log in. "
        "Only the token goes to stdout, for `Authorization: Bearer $(kfp-auth token)`.",
    )
    _sso_options(tok)
    tok.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    tok.add_argument("--stdin", action="store_true", help=argparse.SUPPRESS)
    tok.set_defaults(func=cmd_token)

    out = sub.add_parser(
        "logout",
        help="forget a saved SSO login, or all of them",
        description="Remove the SSO login saved for --url (with -c and -u when several are saved) "
        "from the token cache, or with --all the whole file; the other logins stay.",
    )
    _sso_options(out)
    out.add_argument("--all", action="store_true", help="remove every saved login (the whole token cache file)")
    out.set_defaults(func=cmd_logout)

    ctx = sub.add_parser(
        "context",
        help="log in and write the session cookie into kfp's context file (opt-in: --any-host)",
        description="Log in and put the session cookie into kfp's own context file. kfp ties that "
        "file to no host: every kfp.Client and `kfp --endpoint` then sends the cookie to whatever "
        "host it names. So this needs --any-host, and warns; `kfp-auth kfp -- ...` runs the kfp CLI "
        "with the session for one endpoint only. Other keys in the file are kept.",
    )
    _login_options(ctx)
    ctx.add_argument(
        "--any-host",
        action="store_true",
        help="required: I accept that kfp sends this session cookie to any host a kfp.Client or `kfp --endpoint` names",
    )
    ctx.add_argument(
        "-n",
        "--namespace",
        help="also set kfp's default namespace (default: the file's, else '' as in kfp's own file)",
    )
    ctx.add_argument(
        "--context-file", type=Path, default=KFP_CONTEXT, help=f"the file to write (default {KFP_CONTEXT})"
    )
    ctx.set_defaults(func=cmd_context)

    kfp = sub.add_parser(
        "kfp",
        help="run the stock kfp CLI with this login, for one endpoint only",
        usage="kfp-auth kfp [login options] -- [kfp arguments]",
        description="Run the stock kfp CLI (kfp 2.x or 1.8) on this login: kfp's client sends the "
        "session cookie or bearer token to --url and nowhere else, and logs in again when the "
        "session ends. Nothing is written to kfp's context file. kfp's arguments follow `--`; "
        "a kfp --endpoint other than --url is refused. kfp's exit code is this command's.",
        epilog="Examples: `kfp-auth kfp -u user@example.com -- experiment list`; "
        "`kfp-auth kfp --device -- run list`; `kfp-auth kfp --token-file /var/run/secrets/"
        "kubeflow/pipelines/token -- pipeline list`.",
    )
    _login_options(kfp)
    kfp_sso = kfp.add_argument_group("bearer tokens and single sign-on")
    kfp_how = kfp_sso.add_mutually_exclusive_group()
    kfp_how.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="send the bearer token in this file (a ServiceAccount token), read again when it is rotated",
    )
    kfp_how.add_argument(
        "--device",
        action="store_true",
        help="use the SSO login saved by `kfp-auth login --device` (or log in that way when there is none)",
    )
    kfp_how.add_argument("--browser", action="store_true", help="as --device, logging in with this machine's browser")
    _sso_options(kfp_sso, login=True)
    kfp.set_defaults(func=cmd_kfp, kfp_args=[])

    snippet = sub.add_parser(
        "admin-snippet",
        help="print what the Kubeflow admin changes in Dex (and oauth2-proxy) for SSO logins",
        description="Print, as YAML with comments, the Dex config an admin adds for kfp-auth's "
        "logins without a password: the public client, the grant types, the SSO connector's "
        "scopes, and oauth2-proxy's audience where Istio is absent. The same as docs/sso.md.",
    )
    snippet.add_argument("--client-id", default="kfp-auth", help="the public client's id in Dex (default kfp-auth)")
    snippet.set_defaults(func=cmd_admin_snippet)
    return p


def cmd_admin_snippet(args: argparse.Namespace) -> None:
    from kfp_auth._admin import admin_snippet

    try:
        text = admin_snippet(args.client_id)
    except _native.InvalidArgumentError as e:
        _fail(EXIT_USAGE, str(e))
    sys.stdout.write(text)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    ours = argv[: argv.index("--")] if argv[:1] == ["kfp"] and "--" in argv else argv
    if any(a in ("-p", "--password") or a.startswith("--password=") for a in ours):
        _fail(
            EXIT_USAGE,
            "there is no --password option: a password on the command line shows in `ps` and "
            f"shell history. Use --password-stdin, --password-file, ${ENV_PASSWORD} or the prompt",
        )
    kfp_args: list[str] | None = None
    if argv[:1] == ["kfp"]:
        # kfp's own arguments follow `--`, untouched: they are kfp's to parse (its -p is not a password).
        if "--" in argv:
            at = argv.index("--")
            argv, kfp_args = argv[:at], argv[at + 1 :]
        elif not any(a in ("-h", "--help") for a in argv):
            _fail(
                EXIT_USAGE,
                "`kfp-auth kfp` takes kfp's arguments after `--`: kfp-auth kfp [login options] -- experiment list",
            )
    args = parser().parse_args(argv)
    if kfp_args is not None:
        args.kfp_args = kfp_args
    _typed.clear()
    explicit = {a.split("=", 1)[0] for a in argv if a.startswith("-")}
    for name, option in _NOT_QUOTED.items():
        value = getattr(args, name, None)
        if value is None or (name == "context_file" and option not in explicit):
            continue
        if name not in _PATHS or not os.path.lexists(os.path.expanduser(str(value))):
            _typed[str(value)] = _typed[os.path.expanduser(str(value))] = option
    try:
        args.func(args)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
