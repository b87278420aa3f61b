"""Sphinx configuration: MyST Markdown pages, furo theme, API reference from docstrings."""

from __future__ import annotations

from flatjobs import _meta

project = "flatjobs"
author = "The flatjobs developers"
copyright = "2026, the flatjobs developers"
release = _meta.version()

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = "flatjobs"
exclude_patterns = ["_build"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False
# No intersphinx: the build must work offline, so Python references stay plain text.
