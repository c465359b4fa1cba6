"""Jinja2 environment shared by reports, mail and takedown drafts, with user overrides.

Templates are looked up in ``report.templates_dir`` first (when set), then in
the package's ``monitor/outcome/templates``: a user copies a built-in template there
under the same name and edits it. HTML templates (names containing ``.html``)
are autoescaped; plain-text ones (mail text part, takedown notice) are not.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import jinja2

from monitor.config import Settings
from monitor.errors import ConfigError
from monitor.outcome.items import as_utc

TEMPLATES = Path(__file__).resolve().parent / "templates"
"""The built-in templates."""


def when(value: datetime | None) -> str:
    """``YYYY-mm-dd HH:MM:SS UTC``, or a dash for None."""
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def href(url: str | None) -> str | None:
    """``url`` when it is http(s) and safe to link, else None (shown as text)."""
    return url if url and urlsplit(url).scheme.lower() in ("http", "https") else None


def _autoescape(name: str | None) -> bool:
    return name is None or ".html" in name or ".htm" in name


def template_dirs(settings: Settings) -> list[Path]:
    """Folders searched for templates, user folder (``report.templates_dir``) first."""
    user = settings.report.templates_dir
    return ([settings.path(user)] if user else []) + [TEMPLATES]


def environment(settings: Settings) -> jinja2.Environment:
    """A Jinja2 environment with a ChoiceLoader (user folder, then built-in) and filters.

    Filters: ``when`` (UTC timestamp text) and ``href`` (only http(s) URLs are linked).
    Undefined names raise, so a typo in a user template fails loudly.
    """
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(d) for d in template_dirs(settings)])
    env = jinja2.Environment(loader=loader, autoescape=_autoescape,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["when"] = when
    env.filters["href"] = href
    return env


def render(settings: Settings, name: str, **context: object) -> str:
    """Render template ``name`` (user override first) with ``context``.

    Raises:
        ConfigError: the template is missing, malformed or uses an unknown name;
            the message names the template (user templates are configuration).
    """
    try:
        return environment(settings).get_template(name).render(**context)
    except jinja2.TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}" if getattr(exc, "lineno", None) else name
        raise ConfigError(f"template {where}: {exc}") from exc
