"""The device login in a real Jupyter kernel (nbclient driving ipykernel), on the real SSO
stack: the prompt is an HTML link, updated in place when the login ends, and the docs'
notebook example (docs/examples/sso-device.ipynb) runs as a user would run it.

The user's browser is tests/stack/browser.py in this process: it reads the link from the
kernel's display message, as a person reads it off the notebook, and walks the real pages.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from stack.browser import Browser
from stack.sso import CONNECTOR_ID, IDP_NAMESPACE, IDP_USER, SsoStack, start_sso_stack

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLE = DOCS / "examples" / "sso-device.ipynb"
LINK = re.compile(r'<a href="([^"]+)"')


class Kernel(NotebookClient):
    """nbclient with the user at the screen: records the display messages the kernel sends
    (nbclient itself keeps only the latest form of an updated display), and on the first
    link walks it in a thread, as a person in another window would."""

    def __init__(self, nb: Any, stack: SsoStack, workdir: Path) -> None:
        super().__init__(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
        self.stack = stack
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.walks: list[Any] = []
        self.walkers: list[threading.Thread] = []

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        kind = msg["header"]["msg_type"]
        if kind in ("display_data", "update_display_data", "stream", "error"):
            self.messages.append((kind, msg["content"]))
        if kind == "display_data" and not self.walkers:
            link = LINK.search(msg["content"].get("data", {}).get("text/html", ""))
            if link:
                t = threading.Thread(target=self._walk, args=(html.unescape(link.group(1)),), daemon=True)
                t.start()
                self.walkers.append(t)
        return super().process_message(msg, cell, cell_index)

    def _walk(self, url: str) -> None:
        s = self.stack
        self.walks.append(Browser(s.user, s.password, connector=s.connector_id).walk(url))

    def run(self) -> None:
        self.execute()
        for t in self.walkers:
            t.join(timeout=30)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [c for k, c in self.messages if k == kind]

    def streams(self, name: str = "stdout") -> str:
        return "".join(c["text"] for c in self.of_kind("stream") if c["name"] == name)


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoStack]:
    """Layout A; each test's login replaces the previous one's refresh token (same user)."""
    with start_sso_stack(tmp_path_factory.mktemp("sso")) as s:
        yield s


def experiment_lists(stack: SsoStack, since: int) -> list[dict[str, Any]]:
    return [r for r in stack.kfp_requests()[since:] if r["path"].endswith("/apis/v2beta1/experiments")]


@pytest.mark.stack
def test_the_device_prompt_in_a_kernel_is_a_link_that_says_when_the_login_is_done(
    sso: SsoStack, tmp_path: Path
) -> None:
    code = (
        "from kfp_auth import KFPClientManager\n"
        f"manager = KFPClientManager({sso.api_url!r}, login='device', dex_auth_type={CONNECTOR_ID!r})\n"
        "client = manager.create_kfp_client()\n"
        f"client.list_experiments(namespace={IDP_NAMESPACE!r})\n"
        "print('logins', manager.logins)"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code)]
    before = len(sso.kfp_requests())
    kernel = Kernel(nb, sso, tmp_path)
    kernel.run()

    assert not kernel.of_kind("error"), kernel.of_kind("error")
    # The code is shown once, as HTML with a display id, and never on stderr.
    (shown,) = kernel.of_kind("display_data")
    page = shown["data"]["text/html"]
    display_id = shown["transient"]["display_id"]
    link = html.unescape(LINK.findall(page)[0])
    user_code = re.fullmatch(rf"{re.escape(sso.gateway_url)}/dex/device\?user_code=([A-Z]{{4}}-[A-Z]{{4}})", link)
    assert user_code, link
    assert f"<code>{user_code.group(1)}</code>" in page and "Waiting for the login" in page
    assert f"<code>{CONNECTOR_ID}</code>" in page, "the connector to choose is named"
    assert "kfp-auth:" not in kernel.streams("stderr"), kernel.streams("stderr")
    # The link worked: the browser ended on Dex's success page.
    assert kernel.walks and kernel.walks[0].page.heading == "Login Successful for kfp-auth", kernel.walks
    # The same display is updated to say the login is done, still with the link.
    (updated,) = kernel.of_kind("update_display_data")
    assert updated["transient"]["display_id"] == display_id
    done = updated["data"]["text/html"]
    assert "Logged in." in done and "Waiting" not in done and LINK.findall(done) == LINK.findall(page)
    # The notebook keeps the updated form only, in the cell's one output.
    (output,) = [o for o in nb.cells[0].outputs if o.output_type == "display_data"]
    assert "Logged in." in output.data["text/html"]
    assert kernel.streams().strip() == "logins 1"
    lists = experiment_lists(sso, before)
    assert lists and {r["user"] for r in lists} == {IDP_USER}, lists


@pytest.mark.stack
def test_an_awaited_login_in_a_kernel_keeps_its_loop_turning(sso: SsoStack, tmp_path: Path) -> None:
    """Top-level `await` in a cell runs on the kernel's own event loop: while the login
    waits for the user, other tasks on that loop go on, and the prompt still shows."""
    code = (
        "import asyncio, time\n"
        "from kfp_auth import KFPClientManager\n"
        f"manager = KFPClientManager({sso.api_url!r}, login='device')\n"
        "ticks = 0\n"
        "async def tick():\n"
        "    global ticks\n"
        "    while True:\n"
        "        ticks += 1\n"
        "        await asyncio.sleep(0.05)\n"
        "ticker = asyncio.ensure_future(tick())\n"
        "started = time.monotonic()\n"
        "token = await manager.get_bearer_token_async()\n"
        "took = time.monotonic() - started\n"
        "ticker.cancel()\n"
        "print(manager.logins, round(ticks / (took / 0.05), 1) if took > 0 else 0, round(took))"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code)]
    kernel = Kernel(nb, sso, tmp_path)
    kernel.run()

    assert not kernel.of_kind("error"), kernel.of_kind("error")
    assert kernel.walks and kernel.walks[0].page.heading == "Login Successful for kfp-auth", kernel.walks
    assert len(kernel.of_kind("display_data")) == 1
    assert "Logged in." in kernel.of_kind("update_display_data")[0]["data"]["text/html"]
    logins, share, took = kernel.streams().split()
    # Dex's poll interval is 5 s: the wait is long enough for a blocked loop to show.
    assert logins == "1" and int(took) >= 4, kernel.streams()
    assert float(share) >= 0.5, f"the loop turned {share} of the ticks it would have without the login"


def example_cells() -> list[Any]:
    nb = nbformat.read(EXAMPLE, as_version=4)
    nbformat.validate(nb)
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_docs_show_the_notebook_examples_code() -> None:
    """docs/sso.md carries the example's code as it is in the notebook, and links it."""
    text = (DOCS / "sso.md").read_text()
    section = text[text.index("## In a notebook") :]
    section = section[: section.index("\n## ", 1)]
    assert "(examples/sso-device.ipynb)" in section
    for cell in example_cells():
        assert cell.source in section, cell.source
        assert not cell.outputs, "the notebook is kept without outputs"


@pytest.mark.stack
def test_the_docs_notebook_example_runs_against_the_sso_stack(sso: SsoStack, tmp_path: Path) -> None:
    nb = nbformat.read(EXAMPLE, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    # The parameters cell assigns exactly these; the test gives them the stack's values.
    assert re.findall(r"^(\w+) = ", params.source, re.M) == ["api_url", "namespace"], params.source
    params.source = f"api_url = {sso.api_url!r}\nnamespace = {IDP_NAMESPACE!r}"
    before = len(sso.kfp_requests())
    kernel = Kernel(nb, sso, tmp_path)
    kernel.run()

    assert not kernel.of_kind("error"), kernel.of_kind("error")
    assert kernel.walks and kernel.walks[0].page.heading == "Login Successful for kfp-auth", kernel.walks
    assert "Logged in." in kernel.of_kind("update_display_data")[0]["data"]["text/html"]
    assert kernel.streams().strip() == f"0 experiments in {IDP_NAMESPACE}", kernel.streams()
    lists = experiment_lists(sso, before)
    assert lists and {r["user"] for r in lists} == {IDP_USER}, lists
