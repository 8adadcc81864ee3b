"""mkdocs hook: pages of the site that live outside docs/.

CHANGELOG.md and the last benchmark run (bench/RESULTS.md and its chart) are
kept where the project keeps them; the site serves them from those files, so
they are not copied into docs/. A missing file fails the build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]

# Where each file appears on the site: its source, relative to the repository.
PAGES = {
    "changelog.md": "CHANGELOG.md",
    "bench/RESULTS.md": "bench/RESULTS.md",
    "bench/ratios.png": "bench/ratios.png",
}


def on_files(files: Files, config: Any) -> Files:
    for uri, source in PAGES.items():
        path = ROOT / source
        if not path.is_file():
            raise PluginError(f"{source} is missing: the site's page {uri} is made from it")
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
