"""Settings sections ``[rules]`` and ``[report]``: where rule files live and how HTML
reports are written.

Pure pydantic models; :mod:`monitor.config` assembles and loads them.
"""

from __future__ import annotations

from pydantic import Field

from monitor.config.section import Section


class RulesSettings(Section):
    """Where rule files live."""

    dir: str = Field("rules", description="Folder of rules/*.toml files.")


class ReportSettings(Section):
    """HTML reports."""

    dir: str = Field("reports", description="Folder reports are written to.")
    templates_dir: str = Field("", description="Folder whose templates override the built-in "
                               "ones (same file names).")
    thumb_side: int = Field(480, description="Longest side (pixels) of inlined thumbnails.")
