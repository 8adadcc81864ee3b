"""Showing an SSO login to the user: on stderr in a terminal, or in Jupyter as a
clickable link that is updated when the login ends; and opening the browser."""

from __future__ import annotations

import html
import importlib
import sys
import webbrowser
from typing import Any, TextIO

from kfp_auth._types import DeviceEvent


def _jupyter_display() -> Any | None:
    """IPython's display module when a kernel is running here, else ``None``. IPython is
    not imported for this: a running kernel has imported it already."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        shell = ipython.get_ipython()
        if shell is None or getattr(shell, "kernel", None) is None:
            return None
        return importlib.import_module("IPython.display")
    except (AttributeError, ImportError):
        return None


def open_browser(url: str) -> bool:
    """The browser login's default opener: ``webbrowser.open``, so ``$BROWSER`` is honoured.
    False (a device login then runs instead) when no browser can be started here."""
    return webbrowser.open(url)


class DevicePrompt:
    """The default prompt of the device and browser logins. Called from kfp-auth's own
    thread with each ``DeviceEvent``; it must not block."""

    def __init__(self, stream: TextIO | None = None) -> None:
        """:param stream: where a terminal prompt goes (default ``sys.stderr`` at each event)"""
        self._stream = stream
        self._handle: Any = None
        self._code: DeviceEvent | None = None

    def __call__(self, event: DeviceEvent) -> None:
        display = _jupyter_display() if self._stream is None else None
        if event["event"] in ("code", "browser"):
            self._code = event
            if display is not None:
                self._handle = display.display(display.HTML(self._html(event, None)), display_id=True)
                return
            self._write(self._text(event))
            return
        outcome = {
            "done": "Logged in.",
            "failed": f"The login failed: {event['message']}",
            "cancelled": "The login was cancelled.",
        }[event["event"]]
        if self._handle is not None and self._code is not None and display is not None:
            self._handle.update(display.HTML(self._html(self._code, outcome)))
            return
        self._write(f"kfp-auth: {outcome}")

    def _write(self, text: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        print(text, file=stream, flush=True)

    @staticmethod
    def _text(e: DeviceEvent) -> str:
        if e["event"] == "browser":
            return (
                "kfp-auth: logging in with your browser. If no browser window appeared, open this page "
                f"on this machine:\n    {e['verification_uri']}"
            )
        lines = [
            "kfp-auth: to log in, open this page in a browser:",
            f"    {e['verification_uri_complete'] or e['verification_uri']}",
            f"  and check that it shows the code {e['user_code']}"
            if e["verification_uri_complete"]
            else f"  and enter the code {e['user_code']}",
        ]
        if e["connector"]:
            lines.append(f"  Choose the connector `{e['connector']}` if Dex asks.")
        if e["expires_in"]:
            lines.append(f"  The code is valid for {int(e['expires_in'] // 60)} min {int(e['expires_in'] % 60)} s.")
        return "\n".join(lines)

    @staticmethod
    def _html(e: DeviceEvent, outcome: str | None) -> str:
        url = html.escape(e["verification_uri_complete"] or e["verification_uri"] or "", quote=True)
        status = html.escape(outcome) if outcome else "Waiting for the login…"
        if e["event"] == "browser":
            return (
                f'<div class="kfp-auth-browser-login"><p>kfp-auth: logging in with your browser. If no '
                f'window appeared, open <a href="{url}" target="_blank" rel="noopener">the login page</a> '
                f"on this machine.</p><p><i>{status}</i></p></div>"
            )
        code = html.escape(e["user_code"] or "")
        connector = f" Choose <code>{html.escape(e['connector'])}</code> if Dex asks." if e["connector"] else ""
        return (
            f'<div class="kfp-auth-device-login"><p>kfp-auth: to log in, open '
            f'<a href="{url}" target="_blank" rel="noopener">{url}</a> and check the code '
            f"<b><code>{code}</code></b>.{connector}</p><p><i>{status}</i></p></div>"
        )
