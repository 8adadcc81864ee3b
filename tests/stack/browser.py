#!/usr/bin/env python3
"""A test browser: urllib, a cookie jar and html.parser, walking the real pages of Dex
and oauth2-proxy as a user would. OUR OWN code, no browser engine: it runs no script
and renders nothing. It follows redirects, and on each page does what a user does:

- Dex's device page: submits the user code (prefilled from `?user_code=`, or given);
- Dex's connector choice: follows the "Log in with …" link of the chosen connector;
- a password form (Dex's `login`/`password`): posts the credentials, once;
- Dex's approval screen: grants (or cancels) access;
- anything else (the device flow's "Login Successful", an error, an unknown page): stops.

A walk that starts at an authorization URL stops at the redirect to that URL's
`redirect_uri` (the loopback address of a CLI), and fetches it only when asked, as
a real browser would.

As `$BROWSER` (`python tests/stack/browser.py URL`, or the wrapper `browser_command`
writes, since Python's webbrowser runs $BROWSER as one executable): credentials from
TEST_BROWSER_USERNAME / TEST_BROWSER_PASSWORD, optional TEST_BROWSER_CONNECTOR (connector
id), TEST_BROWSER_APPROVE=0 to cancel at the approval screen, TEST_BROWSER_RESULT (a
file that gets the outcome as JSON: paths and statuses, no query strings), and
TEST_BROWSER_DETACH=1 to return at once and walk in the background (webbrowser.open
waits for $BROWSER to exit). It fetches the loopback redirect, and exits 0 when the
walk ends on a 2xx page.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from pathlib import Path


class BrowserError(RuntimeError):
    """The walk cannot go on: no connector chosen, no credentials, too many steps."""


@dataclass
class Form:
    action: str  # resolved against the page's URL; a form without action posts to the page
    method: str
    fields: dict[str, str] = field(default_factory=dict)  # named inputs and their values

    def submit(self, **values: str) -> tuple[str, dict[str, str] | None]:
        """(URL, form data to post, or None for a GET with the fields in the query)."""
        data = {**self.fields, **values}
        if self.method == "post":
            return self.action, data
        return f"{self.action.split('?', 1)[0]}?{urllib.parse.urlencode(data)}", None


@dataclass
class Page:
    url: str
    status: int
    headers: dict[str, str]
    body: str
    forms: list[Form] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (resolved href, text)
    heading: str = ""  # the first <h2>, as Dex titles its pages
    error: str = ""  # Dex's error box (`#login-error`) or error page message

    @property
    def location(self) -> str | None:
        loc = self.headers.get("location")
        return urllib.parse.urljoin(self.url, loc) if loc else None


class _Parser(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.forms: list[Form] = []
        self.links: list[tuple[str, str]] = []
        self.heading = ""
        self.paragraph = ""  # the first <p>: the message on Dex's error page
        self.error = ""
        self._form: Form | None = None
        self._link: list | None = None
        self._capture: str | None = None  # "heading" or "error", while inside one
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = {k: (v or "") for k, v in attrs}
        if self._capture and tag == "div":
            self._depth += 1
        if tag == "form":
            action = urllib.parse.urljoin(self.base, a["action"]) if a.get("action") else self.base
            self._form = Form(action, a.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and a.get("name"):
            # Named submit buttons are not sent: Dex's forms carry their choice in hidden inputs.
            if a.get("type", "text").lower() not in ("submit", "button", "image"):
                self._form.fields[a["name"]] = a.get("value", "")
        elif tag == "a" and a.get("href"):
            self._link = [urllib.parse.urljoin(self.base, a["href"]), ""]
        elif tag == "h2" and not self.heading:
            self._capture = "heading"
        elif tag == "p" and not self.paragraph and not self._capture:
            self._capture = "paragraph"
        elif tag == "div" and (a.get("id") == "login-error" or "dex-error-box" in a.get("class", "")):
            self._capture, self._depth = "error", 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "a" and self._link is not None:
            self.links.append((self._link[0], " ".join(self._link[1].split())))
            self._link = None
        elif (tag, self._capture) in (("h2", "heading"), ("p", "paragraph")):
            self._capture = None
        elif tag == "div" and self._capture == "error":
            self._depth -= 1
            if self._depth == 0:
                self._capture = None

    def handle_data(self, data: str) -> None:
        if self._link is not None:
            self._link[1] += data
        if self._capture == "heading":
            self.heading = " ".join(f"{self.heading} {data}".split())
        elif self._capture == "paragraph":
            self.paragraph = " ".join(f"{self.paragraph} {data}".split())
        elif self._capture == "error":
            self.error = " ".join(f"{self.error} {data}".split())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass
class Walk:
    """How a walk ended. `redirect` is the URL of the final redirect to the authorization
    request's `redirect_uri` (None if the walk never got there); `page` is the last page
    fetched (the loopback page itself, when it was fetched)."""

    page: Page | None
    redirect: str | None = None
    steps: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status)

    @property
    def query(self) -> dict[str, str]:
        """The final redirect's query (code, state, or error), when there was one."""
        q = urllib.parse.urlsplit(self.redirect or "").query
        return dict(urllib.parse.parse_qsl(q))


class Browser:
    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        connector: str | None = None,
        approve: bool = True,
        user_code: str | None = None,
        timeout: float = 10.0,
        max_steps: int = 40,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.username, self.password = username, password
        self.connector, self.approve, self.user_code = connector, approve, user_code
        self.timeout, self.max_steps = timeout, max_steps
        self.jar = CookieJar()
        handlers: list = [urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect(), urllib.request.ProxyHandler({})]
        if ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
        self._opener = urllib.request.build_opener(*handlers)

    def fetch(self, url: str, data: dict[str, str] | None = None) -> Page:
        """One request, no redirect followed: GET, or POST of a form when `data` is given."""
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, headers={"Accept": "text/html"})
        try:
            with self._opener.open(req, timeout=self.timeout) as r:
                status, headers, raw = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, headers, raw = e.code, e.headers, e.read()
        text = raw.decode("utf-8", "replace")
        p = _Parser(url)
        if "html" in (headers.get("Content-Type") or ""):
            p.feed(text)
        page = Page(url, status, {k.lower(): v for k, v in headers.items()}, text, p.forms, p.links, p.heading, p.error)
        if status >= 400 and not page.error and "html" in (headers.get("Content-Type") or ""):
            page.error = f"{page.heading}: {p.paragraph}"  # Dex's error page: its type, then its message
        return page

    def walk(self, url: str, *, fetch_redirect: bool = False) -> Walk:
        """Open `url` and act on each page until there is nothing left to do."""
        redirect_uri = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)).get("redirect_uri")
        walk = Walk(None)
        data: dict[str, str] | None = None
        posted: set[str] = set()
        for _ in range(self.max_steps):
            if redirect_uri and walk.steps and _same_endpoint(url, redirect_uri):
                walk.redirect = url
                if fetch_redirect:
                    walk.page = self._step(walk, url, None)
                return walk
            page = walk.page = self._step(walk, url, data)
            data = None
            if 300 <= page.status < 400 and page.location:
                url = page.location
                continue
            if page.status >= 400 or page.error:
                return walk
            action = self._act(page, posted)
            if action is None:
                return walk
            url, data = action
        raise BrowserError(f"no end after {self.max_steps} steps: {[s[1] for s in walk.steps[-6:]]}")

    def _step(self, walk: Walk, url: str, data: dict[str, str] | None) -> Page:
        page = self.fetch(url, data)
        walk.steps.append(("POST" if data is not None else "GET", urllib.parse.urlsplit(url).path, page.status))
        return page

    def _act(self, page: Page, posted: set[str]) -> tuple[str, dict[str, str] | None] | None:
        for form in page.forms:
            if "user_code" in form.fields:
                code = form.fields["user_code"] or self.user_code
                if not code:
                    raise BrowserError("the device page asks for a user code and none was given")
                return form.submit(user_code=code)
            if "login" in form.fields and "password" in form.fields:
                if page.url in posted:
                    return None  # the form again: refused
                if self.username is None or self.password is None:
                    raise BrowserError(f"a password form at {urllib.parse.urlsplit(page.url).path} and no credentials")
                posted.add(page.url)
                return form.submit(login=self.username, password=self.password)
        approvals = [f for f in page.forms if f.fields.get("approval") in ("approve", "rejected") and "req" in f.fields]
        if approvals:
            want = "approve" if self.approve else "rejected"
            form = next(f for f in approvals if f.fields["approval"] == want)
            return form.submit()
        choices = [(href, text[len("Log in with ") :]) for href, text in page.links if text.startswith("Log in with ")]
        if choices:
            ids = {urllib.parse.urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1]: href for href, _ in choices}
            if self.connector is None and len(ids) > 1:
                raise BrowserError(f"Dex offers connectors {sorted(ids)}: say which one")
            chosen = ids.get(self.connector) if self.connector else next(iter(ids.values()))
            if chosen is None:
                raise BrowserError(f"connector {self.connector!r} is not among {sorted(ids)}")
            return chosen, None
        return None


def _same_endpoint(url: str, redirect_uri: str) -> bool:
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(redirect_uri)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)


def browser_command(folder: Path) -> str:
    """An executable that runs this browser with this interpreter, for `$BROWSER`
    (webbrowser takes $BROWSER as one program, not a command line)."""
    exe = folder / "test-browser"
    exe.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{Path(__file__).resolve()}' \"$@\"\n")
    exe.chmod(0o755)
    return str(exe)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: browser.py URL (credentials in TEST_BROWSER_USERNAME / TEST_BROWSER_PASSWORD)", file=sys.stderr)
        return 2
    if os.environ.get("TEST_BROWSER_DETACH") == "1" and os.fork() != 0:
        return 0  # the parent returns to webbrowser.open; the child walks
    env = os.environ.get
    result = env("TEST_BROWSER_RESULT")
    outcome: dict = {"ok": False}
    try:
        b = Browser(
            env("TEST_BROWSER_USERNAME"),
            env("TEST_BROWSER_PASSWORD"),
            connector=env("TEST_BROWSER_CONNECTOR"),
            approve=env("TEST_BROWSER_APPROVE", "1") != "0",
        )
        w = b.walk(argv[1], fetch_redirect=True)
        page = w.page
        outcome = {
            "ok": page is not None and 200 <= page.status < 300,
            "steps": w.steps,
            "reached_redirect": w.redirect is not None,
            "status": page.status if page else None,
            "heading": page.heading if page else "",
            "error": page.error if page else "",
        }
    except (BrowserError, OSError) as e:
        outcome = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    if result:  # whole or not at all: a test may be polling for it
        Path(f"{result}.tmp").write_text(json.dumps(outcome))
        os.replace(f"{result}.tmp", result)
    if not outcome["ok"]:
        print(f"test browser: the walk did not succeed: {outcome}", file=sys.stderr)
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
