"""Sphinx settings for mattekit's docs (Markdown pages through MyST).

Built by `make docs` (part of `make test`) with warnings as errors, so a broken link, a missing
page or a malformed table fails the suite.
"""

project = "mattekit"
author = "the mattekit contributors"
copyright = "2026, the mattekit contributors"

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
master_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3  # links such as security.md#api-keys
myst_enable_extensions = ["colon_fence"]
html_theme = "alabaster"
html_static_path: list[str] = []
