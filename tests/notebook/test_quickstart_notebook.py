"""A notebook user's path: the README's quick start, run in a real Jupyter kernel.

scripts/notebook-smoke.sh makes a clean venv, installs the built wheel with
`pip install <wheel> kfp ipykernel` (and nbclient to drive the kernel), and runs
this file there. The quick start's cell is executed by nbclient in an IPython
kernel against the real Dex and oauth2-proxy.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from stack import USER, Stack

README = Path(__file__).resolve().parents[2] / "README.md"


def quick_start() -> str:
    text = README.read_text()
    section = text[text.index("## Quick start") :]
    m = re.search(r"^```python\n(.*?)^```", section, re.M | re.S)
    assert m, "the README's quick start has no python block"
    return m.group(1)


def test_the_readme_quick_start_runs_in_a_jupyter_kernel(kubeflow: Stack, tmp_path: Path) -> None:
    direct = json.loads(metadata.distribution("kfp-auth").read_text("direct_url.json") or "{}")
    assert direct.get("url", "").endswith(".whl"), f"kfp-auth is not installed from a wheel: {direct}"

    code = quick_start().replace("http://localhost:8080/pipeline", kubeflow.api_url)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code), nbformat.v4.new_code_cell("print(type(kfp_client).__module__)")]
    before = len(kubeflow.kfp_requests())
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for cell in nb.cells for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"], outputs
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "kfp.client" in printed, printed
    seen = kubeflow.kfp_requests()[before:]
    # The kernel's client listed experiments as the logged-in user, through the gateway.
    assert any(r["user"] == USER and r["path"].endswith("/apis/v2beta1/experiments") for r in seen), seen
