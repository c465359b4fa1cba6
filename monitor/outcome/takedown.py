"""A DMCA-style takedown-notice draft for one violation, from an editable template.

The built-in ``takedown.txt.j2`` follows the six elements of a notification
under 17 U.S.C. § 512(c)(3)(A): (i) signature of a person authorised to act for
the owner; (ii) identification of the copyrighted work; (iii) identification
of the infringing material and where to find it; (iv) contact information of
the complaining party; (v) a good-faith statement that the use is not
authorised; (vi) a statement, under penalty of perjury, that the notice is
accurate and the sender is authorised. Facts come from the store (URLs, both
sha256 digests, first/last seen, the match evidence); what the store cannot
know (name, address, signature) is left as ``[bracketed]`` placeholders, or
taken from the protected image's metadata (``owner``, ``contact_email``,
``contact_address``, ``contact_phone``, ``title``, ``licence``) when present.

It is a draft for a person to review and send, not legal advice.
"""

from __future__ import annotations

from pathlib import Path

from monitor.outcome.items import get_item
from monitor.outcome.stored import location
from monitor.outcome.templating import render
from monitor.store import Store, write_atomic
from monitor.store.models import utcnow

TEMPLATE = "takedown.txt.j2"


def render_takedown(ws: Store, violation_id: int) -> str:
    """The notice text for ``violation_id`` (user template override first).

    Raises:
        NotFound: no violation has this id.
        ConfigError: a user template is malformed, or the blob store cannot be opened.
    """
    with ws.session() as s:
        item = get_item(s, violation_id)
    base = ws.settings.server.base_url.rstrip("/")
    return render(ws.settings, TEMPLATE, item=item, meta=item.meta, today=utcnow(),
                  evidence_file=location(ws, item.evidence_path)
                  if item.evidence_path else None,
                  detail_url=f"{base}/violations/{item.violation_id}" if base else None)


def write_takedown(ws: Store, violation_id: int, out: Path) -> Path:
    """Write the notice for ``violation_id`` to ``out`` (UTF-8); returns ``out``."""
    write_atomic(out, render_takedown(ws, violation_id).encode("utf-8"))
    return out
