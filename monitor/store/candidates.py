"""Repository of the check pipeline's writes: pending candidates, outcomes, violations, outbox.

Every candidate row is committed as ``pending`` before its bytes are decoded
(:func:`record_pending`), so a crash loses nothing; re-checking the same bytes from
the same place refreshes ``last_seen`` and the existing match rows instead of
duplicating them (unique on ``(source, sha256)`` and ``(candidate, protected image)``).

:func:`record_checked` writes one candidate's outcome in one transaction with a fixed
number of round trips whatever the number of matches: existing match rows, their
violations and the quiet review states of the candidate's place are each read with
one SELECT. New violations get pending :class:`~monitor.store.models.Alert` rows (an
outbox): mail and webhook senders drain them, and the (kind, violation) uniqueness
means a violation is never alerted twice. A new violation for an image at a place
where the same protected image was already *dismissed* or *licensed* inherits that
status and raises no alert.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session, select

from monitor.store.models import (
    Alert,
    Candidate,
    MatchRow,
    Violation,
    ViolationEvent,
    utcnow,
)
from monitor.types import RuleOutcome, Verdict

QUIET_STATUSES = ("dismissed", "licensed")
"""Review states that silence later matches of the same image at the same place."""

FLAGGED = (Verdict.VIOLATION, Verdict.REVIEW)
"""Verdicts that create a violation row (and keep the candidate's bytes as evidence)."""


@dataclass(frozen=True)
class Sighting:
    """What is known of one candidate before it is decoded.

    Attributes:
        source: file path or URL the bytes came from.
        sha256: hex sha256 of the bytes (None when they could not be had).
        size_bytes: length of the bytes, or None.
        page_url, http_status, headers, source_name: where and how it was found.
        context: how it appears on that page (``{"page_title", "alt", "image_title",
            "caption"}``, cleaned plain text), or None when unknown.
    """

    source: str
    sha256: str | None
    size_bytes: int | None
    page_url: str | None = None
    http_status: int | None = None
    headers: dict[str, str] | None = None
    source_name: str | None = None
    context: dict[str, str] | None = None


@dataclass(frozen=True)
class Checked:
    """What the pipeline found for one decoded candidate.

    Attributes:
        width, height: original size in pixels; format: Pillow format name.
        verdict: the rules' overall verdict.
        outcomes: ruled matches, most severe first.
        evidence_path: path of the archived bytes relative to the data folder, when
            the caller stored them (flagged candidates), else None.
    """

    width: int
    height: int
    format: str
    verdict: Verdict
    outcomes: Sequence[RuleOutcome]
    evidence_path: str | None = None


def record_pending(session: Session, sightings: Sequence[Sighting],
                   scan_id: int | None) -> list[Candidate]:
    """Insert or refresh one ``pending`` row per sighting and commit; returns the rows in
    order (detached; ``id`` and ``evidence_path`` are read by the pipeline). Existing rows
    are found with one SELECT for the whole batch. A sighting with a context replaces the
    stored one (the page as last seen); one without keeps it."""
    now = utcnow()
    sources = sorted({s.source for s in sightings})
    existing = {(r.source, r.sha256): r for r in session.exec(
        select(Candidate).where(Candidate.source.in_(sources))).all()} if sources else {}
    rows = []
    for it in sightings:
        row = existing.get((it.source, it.sha256))
        if row is None:
            row = Candidate(source=it.source, sha256=it.sha256, first_seen=now)
            existing[(it.source, it.sha256)] = row
        row.last_seen, row.status, row.scan_id = now, "pending", scan_id or row.scan_id
        row.size_bytes = it.size_bytes
        row.page_url = it.page_url or row.page_url
        row.http_status = it.http_status or row.http_status
        row.headers_json = json.dumps(it.headers) if it.headers else row.headers_json
        row.source_name = it.source_name or row.source_name
        if it.context:
            row.context_json = context_json(it.context)
        session.add(row)
        rows.append(row)
    session.commit()
    return rows


def record_error(session: Session, row: Candidate, code: str, message: str) -> Candidate:
    """Mark the candidate ``row`` (from :func:`record_pending`, detached) as failed with
    ``code`` and ``message``; commits."""
    row.status, row.verdict = "error", Verdict.ERROR.value
    row.error_code, row.error = code, message
    session.add(row)
    session.commit()
    return row


def record_checked(session: Session, row: Candidate, checked: Checked,
                   alert_channels: Sequence[tuple[str, str]]) -> Candidate:
    """Store a checked candidate: its facts and verdict, one match row per outcome, a
    violation for each flagged one and outbox rows for new violations; commits once.
    A flagged match of a protected image that already has a violation through another
    candidate with the same bytes joins that violation (an audit event "seen again via
    …") instead of opening a second one.

    Args:
        row: the candidate's row as :func:`record_pending` returned it (detached; it is
            attached to ``session`` again, so it is not read back).
        alert_channels: ``(kind, recipients)`` of each outbox row a new violation gets
            (``("immediate", "a@x,b@y")``, ``("webhook", url)``); empty: none.
    """
    row.width, row.height, row.format = checked.width, checked.height, checked.format
    row.status, row.verdict, row.checked_at = "checked", checked.verdict.value, utcnow()
    row.error_code = row.error = None
    row.evidence_path = row.evidence_path or checked.evidence_path
    session.add(row)
    if checked.outcomes:
        _store_outcomes(session, row, checked.outcomes, alert_channels)
    session.commit()
    return row


def _store_outcomes(session: Session, cand: Candidate, outcomes: Sequence[RuleOutcome],
                    channels: Sequence[tuple[str, str]]) -> None:
    matches = {m.protected_id: m for m in session.exec(
        select(MatchRow).where(MatchRow.candidate_id == cand.id)).all()}
    rows = [_match_row(matches.get(o.match.gallery_id), cand.id, o) for o in outcomes]
    session.add_all(rows)
    session.flush()
    flagged = [(o, r) for o, r in zip(outcomes, rows, strict=True) if o.verdict in FLAGGED]
    if not flagged:
        return
    violations = {v.match_id: v for v in session.exec(
        select(Violation).where(Violation.match_id.in_([r.id for _, r in flagged]))).all()}
    quiet, same = _earlier(session, cand, [o.match.gallery_id for o, _ in flagged])
    for o, match in flagged:
        v = violations.get(match.id)
        if v is not None:
            v.verdict, v.rule, v.severity, v.updated_at = (o.verdict.value, o.rule, o.severity,
                                                           utcnow())
            session.add(v)
            continue
        if (joined := same.get(o.match.gallery_id)) is not None:
            _join(session, joined, cand)
            continue
        inherited = quiet.get(o.match.gallery_id)
        v = Violation(match_id=match.id, candidate_id=cand.id, protected_id=o.match.gallery_id,
                      verdict=o.verdict.value, rule=o.rule, severity=o.severity,
                      status=inherited or "open",
                      note=f"status inherited from an earlier review of {cand.source}"
                      if inherited else "")
        session.add(v)
        session.flush()
        if not inherited and o.verdict == Verdict.VIOLATION:
            session.add_all([Alert(kind=kind, violation_id=v.id, recipients=to)
                             for kind, to in channels])


def context_json(context: dict[str, str]) -> str:
    """How ``candidate.context_json`` holds a page context: a JSON object, keys sorted."""
    return json.dumps(context, ensure_ascii=False, sort_keys=True)


def _join(session: Session, violation: Violation, cand: Candidate) -> None:
    """Record ``cand`` as another sighting of ``violation`` (same bytes, same protected
    image) instead of opening a second violation: an audit event, no new alert; the
    review state is kept."""
    where = cand.source + (f" on {cand.page_url}" if cand.page_url else "")
    session.add(ViolationEvent(violation_id=violation.id, actor="monitor",
                               from_status=violation.status, to_status=violation.status,
                               note=f"the same image seen again via {where[:1500]} "
                                    f"(candidate {cand.id})"))
    violation.updated_at = utcnow()
    session.add(violation)


def _match_row(row: MatchRow | None, candidate_id: int, o: RuleOutcome) -> MatchRow:
    m = o.match
    row = row or MatchRow(candidate_id=candidate_id, protected_id=m.gallery_id, stage=m.stage,
                          score=m.score)
    row.stage, row.score = m.stage, m.score
    row.distance, row.cosine, row.inliers = m.distance, m.cosine, m.inliers
    row.agreement = m.agreement
    row.similarity, row.normalised = m.similarity, m.normalised
    row.region_json = json.dumps(m.region) if m.region else None
    row.quad_json = json.dumps(m.quad) if m.quad else None
    row.query_overlap, row.target_overlap = m.query_overlap, m.target_overlap
    row.target_region_json = json.dumps(m.target_region) if m.target_region else None
    local = m.evidence("local")
    row.mirrored = bool(local and local.mirrored)
    return row


def _earlier(session: Session, cand: Candidate, protected_ids: list[int]
             ) -> tuple[dict[int, str], dict[int, Violation]]:
    """One read of the earlier violations of these protected images that decide how
    ``cand``'s new ones start (ordered by id, so every database gives the same):

    * ``{protected_id: status}``: quiet reviews (dismissed, licensed) at ``cand``'s place
      (its ``source``), the oldest's status, inherited;
    * ``{protected_id: violation}``: the oldest violation by another candidate with the
      same bytes (``sha256``), when ``cand`` has no web place of its own (an upload over
      the API, a local file): the same found image reached through another intake, which
      joins it. The same bytes at another URL are another publication (another host to
      write to) and keep their own violation.
    """
    same_bytes = bool(cand.sha256) and not cand.source.startswith(("http://", "https://"))
    at_place = (Candidate.source == cand.source) & Violation.status.in_(QUIET_STATUSES)
    cond = (at_place | ((Candidate.sha256 == cand.sha256) & (Candidate.id != cand.id))
            if same_bytes else at_place)
    q = (select(Violation, Candidate.source, Candidate.sha256)
         .join(Candidate, Violation.candidate_id == Candidate.id)
         .where(Violation.protected_id.in_(protected_ids), cond)
         .order_by(Violation.id))
    quiet: dict[int, str] = {}
    same: dict[int, Violation] = {}
    for v, source, sha in session.exec(q).all():
        if source == cand.source and v.status in QUIET_STATUSES:
            quiet.setdefault(v.protected_id, v.status)
        if same_bytes and sha == cand.sha256 and v.candidate_id != cand.id:
            same.setdefault(v.protected_id, v)
    return quiet, same
