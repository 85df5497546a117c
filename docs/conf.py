"""Sphinx settings for mattekit's docs (Markdown pages through MyST).

Built by `make docs` (part of `make test`) with warnings as errors, so a broken link, a missing
page or a malformed table fails the suite.
"""

import sys
from pathlib import Path

# autodoc imports the package from this checkout (docs/reference.md), installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

project = "mattekit"
author = "the mattekit contributors"
copyright = "2026, the mattekit contributors"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
master_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3  # links such as security.md#api-keys
myst_enable_extensions = ["colon_fence"]
html_theme = "alabaster"
html_static_path: list[str] = []

# The reference page (docs/reference.md, autodoc; napoleon reads the docstrings' "Args:" and
# "Returns:" sections): members in the order the source gives them, type hints in the
# description rather than in long signatures (only for the parameters a docstring explains:
# every exception's "message (str)" said nothing), names as imported from `mattekit`.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
add_module_names = False
# Docstrings say "Raises:" as one sentence naming the errors, not napoleon's one-type-per-line
# list: render it as a field like "Returns:".
napoleon_custom_sections = [("Raises", "returns_style")]
