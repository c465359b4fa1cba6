"""Database writes of the check pipeline: pending rows, outcomes, violations, outbox.

New violations also get pending :class:`~monitor.store.models.Alert` rows (an
outbox): mail and webhook senders drain them, and the (kind, violation)
uniqueness means a violation is never alerted twice. A new violation for an
image at a place where the same protected image was already *dismissed* or
*licensed* inherits that status and raises no alert.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from monitor.matching.index.base import atomic_write
from monitor.matching.rules import overall
from monitor.services.workspace import Workspace
from monitor.store.models import Alert, Candidate, MatchRow, Violation, utcnow
from monitor.types import CheckResult, Match, RuleOutcome, Verdict

if TYPE_CHECKING:
    from monitor.services.check import CandidateInput

QUIET_STATUSES = ("dismissed", "licensed")
"""Review states that silence later matches of the same image at the same place."""


def record_pending(ws: Workspace, chunk: list[CandidateInput], scan_id: int | None) -> None:
    """Insert or refresh one ``pending`` candidate row per item, committed before work."""
    now = utcnow()
    with ws.session() as s:
        for it in chunk:
            sha = hashlib.sha256(it.data).hexdigest() if it.data is not None else None
            row = s.exec(select(Candidate).where(Candidate.source == it.location,
                                                 Candidate.sha256 == sha)).first()
            if row is None:
                row = Candidate(source=it.location, sha256=sha, first_seen=now)
            row.last_seen, row.status, row.scan_id = now, "pending", scan_id or row.scan_id
            row.size_bytes = len(it.data) if it.data is not None else None
            row.page_url = it.page_url or row.page_url
            row.http_status = it.http_status or row.http_status
            row.headers_json = json.dumps(it.headers) if it.headers else row.headers_json
            row.source_name = it.source_name or row.source_name
            s.add(row)
            s.flush()
            it.candidate_id = row.id
        s.commit()


def finish(ws: Workspace, it: CandidateInput, found: list[Match],
           info: dict[int, tuple[str, str, dict]]) -> CheckResult:
    """Apply the rules to ``found``, store matches and violations, return the result."""
    with ws.session() as s:
        row = s.get(Candidate, it.candidate_id)
        if it.error is not None:
            row.status, row.verdict = "error", Verdict.ERROR.value
            row.error_code, row.error = it.error.code, str(it.error)
            s.add(row)
            s.commit()
            return CheckResult(it.location, row.sha256, Verdict.ERROR, error=str(it.error),
                               error_code=it.error.code, candidate_id=row.id)
        outcomes = [o for m in found if m.gallery_id in info
                    and (o := ws.rules.judge(m, info[m.gallery_id][1], it.location))]
        verdict = overall(outcomes)
        d = it.decoded
        row.width, row.height, row.format = d.width, d.height, d.format
        row.status, row.verdict, row.checked_at = "checked", verdict.value, utcnow()
        row.error_code = row.error = None
        if verdict in (Verdict.VIOLATION, Verdict.REVIEW) and not row.evidence_path:
            rel = f"evidence/{d.sha256[:2]}/{d.sha256}.{d.format.lower()}"
            atomic_write(ws.data_dir / rel, it.data)
            row.evidence_path = rel
        s.add(row)
        for o in outcomes:
            store_outcome(s, ws, row, o)
        s.commit()
    return CheckResult(it.location, d.sha256, verdict, outcomes, candidate_id=row.id)


def store_outcome(s: Session, ws: Workspace, cand: Candidate, o: RuleOutcome) -> None:
    """Upsert the match row; create or update its violation (with outbox rows)."""
    m = o.match
    row = s.exec(select(MatchRow).where(MatchRow.candidate_id == cand.id,
                                        MatchRow.protected_id == m.gallery_id)).first()
    row = row or MatchRow(candidate_id=cand.id, protected_id=m.gallery_id, stage=m.stage,
                          score=m.score)
    row.stage, row.score = m.stage, m.score
    row.distance, row.cosine, row.inliers = m.distance, m.cosine, m.inliers
    row.agreement = m.agreement
    row.region_json = json.dumps(m.region) if m.region else None
    row.quad_json = json.dumps(m.quad) if m.quad else None
    local = m.evidence("local")
    row.mirrored = bool(local and local.mirrored)
    s.add(row)
    s.flush()
    if o.verdict not in (Verdict.VIOLATION, Verdict.REVIEW):
        return
    v = s.exec(select(Violation).where(Violation.match_id == row.id)).first()
    if v is not None:
        v.verdict, v.rule, v.severity, v.updated_at = o.verdict.value, o.rule, o.severity, utcnow()
        s.add(v)
        return
    inherited = _quiet_status(s, cand.source, m.gallery_id)
    v = Violation(match_id=row.id, candidate_id=cand.id, protected_id=m.gallery_id,
                  verdict=o.verdict.value, rule=o.rule, severity=o.severity,
                  status=inherited or "open",
                  note=f"status inherited from an earlier review of {cand.source}"
                  if inherited else "")
    s.add(v)
    s.flush()
    if not inherited and o.verdict == Verdict.VIOLATION:
        _outbox(s, ws, v)


def _quiet_status(s: Session, source: str, protected_id: int) -> str | None:
    q = (select(Violation.status).join(Candidate, Violation.candidate_id == Candidate.id)
         .where(Candidate.source == source, Violation.protected_id == protected_id,
                Violation.status.in_(QUIET_STATUSES)))
    return s.exec(q).first()


def _outbox(s: Session, ws: Workspace, v: Violation) -> None:
    alerts = ws.settings.alerts
    if alerts.immediate and ws.settings.smtp.host:
        s.add(Alert(kind="immediate", violation_id=v.id,
                    recipients=",".join(ws.settings.smtp.recipients)))
    if alerts.webhook_url:
        s.add(Alert(kind="webhook", violation_id=v.id, recipients=alerts.webhook_url))
