"""Repository reads of reports beyond the violation rows: the scans a report covers."""

from __future__ import annotations

from collections.abc import Collection

from sqlmodel import Session, select

from monitor.errors import NotFound
from monitor.store.models import Scan


def report_scans(session: Session, scan_id: int | None,
                 item_scan_ids: Collection[int]) -> list[Scan]:
    """The scans a report covers: the one asked for, else those of its items (by id),
    else the latest scan (none when there is no scan).

    Raises:
        NotFound: ``scan_id`` names no scan.
    """
    if scan_id is not None:
        scan = session.get(Scan, scan_id)
        if scan is None:
            raise NotFound(f"scan {scan_id} not found")
        return [scan]
    if item_scan_ids:
        q = select(Scan).where(Scan.id.in_(list(item_scan_ids))).order_by(Scan.id)
        return list(session.exec(q).all())
    latest = session.exec(select(Scan).order_by(Scan.id.desc())).first()
    return [latest] if latest else []
