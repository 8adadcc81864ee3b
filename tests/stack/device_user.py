"""The user at a device login, for tests: a `prompt` that records each event and, when
the code is shown, walks the real pages with tests/stack/browser.py in a thread, as a
person in another window would."""

from __future__ import annotations

import threading
import time
from typing import Any

from kfp_auth import DeviceEvent

from .browser import Browser
from .sso import SsoStack


class User:
    """The prompt of the tests: records each event and, on the code, has the user walk the
    real pages in a thread (as a person in another window would)."""

    def __init__(self, stack: SsoStack | None, *, delay: float = 0.0, walk: bool = True) -> None:
        self.stack, self.delay, self.walk = stack, delay, walk
        self.events: list[DeviceEvent] = []
        self.walks: list[Any] = []
        self.threads: list[threading.Thread] = []
        self.code_shown = threading.Event()

    def __call__(self, event: DeviceEvent) -> None:
        self.events.append(event)
        if event["event"] != "code":
            return
        self.code_shown.set()
        if self.walk and self.stack is not None:
            t = threading.Thread(target=self._walk, args=(event,), daemon=True)
            t.start()
            self.threads.append(t)

    def _walk(self, event: DeviceEvent) -> None:
        assert self.stack is not None
        time.sleep(self.delay)
        url = event["verification_uri_complete"]
        assert url is not None
        self.walks.append(Browser(self.stack.user, self.stack.password, connector=self.stack.connector_id).walk(url))

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events]
