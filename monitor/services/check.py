"""The one check pipeline: read → sha256 → record pending → decode → match → decide → record.

``monitor check``, ``monitor scan``, the daemon's queue workers and ``POST /v1/search``
all call :func:`check_items` (or :func:`check_one`); the search passes ``record=False``
and nothing is written. Per candidate the bytes are read once, hashed once (the sha256
is handed to the decoder) and decoded once; the store is reached through
:mod:`monitor.store.candidates` with a fixed number of round trips.

Every candidate row is committed as ``pending`` before decoding starts, so a crash
loses nothing; re-checking the same bytes from the same place updates ``last_seen``
and the existing matches instead of duplicating them. Decoding and matching run on a
small thread pool (Pillow, OpenCV and FAISS release the GIL) when more than one
candidate is checked; CLIP runs batched on the calling thread. Each decode first claims
its estimated peak memory from the workspace's ``decode_budget``
(:mod:`monitor.imaging.budget`), so concurrent large decodes wait instead of adding up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from monitor.errors import DecodeError, MonitorError
from monitor.imaging.budget import estimate
from monitor.imaging.decode import DecodedImage, decode_bytes
from monitor.intake.inputs import expand, is_url, read_file
from monitor.matching.rules import overall
from monitor.services.workspace import Workspace
from monitor.store import candidates as repo
from monitor.store.gallery import collection_ids as ids_in
from monitor.store.models import Candidate
from monitor.types import CheckResult, Match, PageContext, RuleOutcome, Verdict

CHUNK = 32
"""Candidates read, recorded and decoded together (one pending-row transaction each)."""


@dataclass
class CandidateInput:
    """One candidate to check, with what is known of where it came from.

    Give ``data`` (bytes already fetched or uploaded) or leave it None to have
    ``location`` read (a file path) or fetched (an http(s) URL). ``error`` set
    means the bytes could not be had; it is recorded as the candidate's state.
    ``sha256`` may be given when the caller hashed the bytes already (an upload);
    otherwise the pipeline computes it once. ``spool`` is the file in the blob store's
    folder that holds ``data`` (a queued upload; None when the store is a bucket): flagged,
    it becomes the evidence by a hard link instead of a second copy. ``sniffed`` says the
    bytes' magic was matched to a raster format at intake (``POST /v1/submissions``), so
    decoding does not sniff again. ``context`` is how the image appears on ``page_url``
    (page title, alt text, caption), stored with the candidate.
    """

    location: str
    data: bytes | None = None
    error: MonitorError | None = None
    page_url: str | None = None
    http_status: int | None = None
    headers: dict[str, str] | None = None
    source_name: str | None = None
    decoded: DecodedImage | None = field(default=None, repr=False)
    candidate_id: int | None = None
    sha256: str | None = None
    evidence_path: str | None = None
    spool: Path | None = None
    sniffed: bool = False
    row: Candidate | None = field(default=None, repr=False)
    context: PageContext | None = None


def check(ws: Workspace, inputs: list[str], collection: str | None = None,
          scan_id: int | None = None, workers: int = 2,
          progress: Callable[[CheckResult], None] | None = None,
          step: Callable[[], None] | None = None) -> Iterator[CheckResult]:
    """Check every input (files, folders, URLs) and yield one result per candidate.

    ``progress`` gets each result as it is yielded (in input order, a chunk at a time);
    ``step`` is called as each candidate finishes matching (for a smooth progress bar).

    Raises:
        StageUnavailable: CLIP cannot load and ``clip.required`` is true.
        NotFound: ``collection`` does not exist.
    """
    items = (CandidateInput(i.location) for i in expand(inputs))
    return check_items(ws, items, collection, scan_id, workers, progress, step=step)


def check_items(ws: Workspace, items: Iterable[CandidateInput], collection: str | None = None,
                scan_id: int | None = None, workers: int = 2,
                progress: Callable[[CheckResult], None] | None = None,
                record: bool = True, step: Callable[[], None] | None = None
                ) -> Iterator[CheckResult]:
    """Check prepared :class:`CandidateInput` items in chunks of :data:`CHUNK`, yielding
    results in input order. With ``record`` false nothing is written (a search).

    Raises:
        NotFound: ``collection`` does not exist (before any item is read).
    """
    pipeline = Pipeline(ws, collection_ids(ws, collection), record, step)
    items = list(items)
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 and len(items) > 1 else None
    try:
        for start in range(0, len(items), CHUNK):
            for result in pipeline.run(items[start:start + CHUNK], scan_id, pool):
                if progress:
                    progress(result)
                yield result
    finally:
        if pool is not None:
            pool.shutdown()


def check_one(ws: Workspace, item: CandidateInput, collection: str | None = None,
              scan_id: int | None = None, record: bool = True) -> CheckResult:
    """Check a single candidate on the calling thread (queue workers, HTTP search).

    Raises:
        NotFound: ``collection`` does not exist.
        MonitorError: with ``record`` false only, the candidate's own error (a
            :class:`DecodeError`, :class:`FetchError`, ...), since nothing records it.
    """
    return next(iter(check_items(ws, [item], collection, scan_id, workers=1, record=record)))


class Pipeline:
    """One chunk at a time through read, hash, record, decode, match, decide, record.

    Attributes:
        ws: the workspace (engine loaded on first use).
        allowed: gallery ids the candidate may match (a collection), or None for all.
        record: write candidates and outcomes to the store (False for a search).
        step: called (from a worker thread) as each candidate finishes matching.
    """

    def __init__(self, ws: Workspace, allowed: set[int] | None, record: bool,
                 step: Callable[[], None] | None = None) -> None:
        self.ws, self.allowed, self.record, self.step = ws, allowed, record, step
        self.engine = ws.engine()
        self.info = ws.gallery_info()

    def run(self, chunk: list[CandidateInput], scan_id: int | None,
            pool: ThreadPoolExecutor | None) -> Iterator[CheckResult]:
        """Yield one :class:`CheckResult` per item of ``chunk``, in order."""
        each = pool.map if pool is not None else map
        list(each(self._read, chunk))
        if self.record:
            self._pending(chunk, scan_id)
        list(each(self._decode, chunk))
        good = [it for it in chunk if it.decoded is not None]
        vectors = self.engine.embed([it.decoded for it in good])
        vec = {id(it): (None if vectors is None else vectors[k]) for k, it in enumerate(good)}
        found = list(each(lambda it: self._match(it, vec.get(id(it))), chunk))
        for it, matches in zip(chunk, found, strict=True):
            result = self._finish(it, matches)
            it.decoded = it.row = None  # free pixels early
            yield result

    def _match(self, item: CandidateInput, vector: np.ndarray | None) -> list[Match]:
        found = (self.engine.match(item.decoded, vector, self.allowed)
                 if item.decoded else [])
        if self.step is not None:
            self.step()
        return found

    def _read(self, item: CandidateInput) -> None:
        if item.data is None and item.error is None:
            try:
                if is_url(item.location):
                    res = self.ws.fetcher.fetch(item.location)
                    item.data, item.http_status, item.headers = res.body, res.status, res.headers
                else:
                    item.data = read_file(item.location, self.ws.limits.max_bytes)
            except MonitorError as exc:
                item.error = exc
        if item.data is not None and item.sha256 is None:
            item.sha256 = hashlib.sha256(item.data).hexdigest()

    def _pending(self, chunk: list[CandidateInput], scan_id: int | None) -> None:
        sightings = [repo.Sighting(it.location, it.sha256 if it.data is not None else None,
                                   len(it.data) if it.data is not None else None, it.page_url,
                                   it.http_status, it.headers, it.source_name,
                                   it.context.as_dict() if it.context else None)
                      for it in chunk]
        with self.ws.session() as s:
            rows = repo.record_pending(s, sightings, scan_id)
        for it, row in zip(chunk, rows, strict=True):
            it.row, it.candidate_id, it.evidence_path = row, row.id, row.evidence_path

    def _decode(self, item: CandidateInput) -> None:
        """Decode ``item.data`` once its estimated peak memory fits the workspace's
        ``decode_budget`` (a refusal becomes ``item.error``)."""
        if item.data is None or item.error is not None:
            return
        limits = self.ws.limits
        try:
            with self.ws.decode_budget.claim(estimate(item.data, limits)):
                item.decoded = decode_bytes(item.data, limits, item.sha256, item.sniffed)
        except DecodeError as exc:
            item.error = exc

    def _finish(self, it: CandidateInput, found: list[Match]) -> CheckResult:
        if it.error is not None:
            if self.record:
                with self.ws.session() as s:
                    repo.record_error(s, it.row, it.error.code, str(it.error))
            elif not self.record:
                raise it.error
            return CheckResult(it.location, it.sha256 if it.data is not None else None,
                               Verdict.ERROR, error=str(it.error),
                               error_code=it.error.code, candidate_id=it.candidate_id)
        outcomes = decide(self.ws, found, self.info, it.location)
        verdict, d = overall(outcomes), it.decoded
        if self.record:
            evidence = self._evidence(it, verdict in repo.FLAGGED)
            checked = repo.Checked(d.width, d.height, d.format, verdict, outcomes, evidence)
            with self.ws.session() as s:
                repo.record_checked(s, it.row, checked, alert_channels(self.ws))
        return CheckResult(it.location, d.sha256, verdict, outcomes,
                           candidate_id=it.candidate_id)

    def _evidence(self, it: CandidateInput, flagged: bool) -> str | None:
        """Archive a flagged candidate's bytes once (chain of custody) in the blob store;
        their key (the relative path ``evidence/ab/abcd….<format>``).

        A queued upload (``it.spool``) in a blob store that is a folder becomes the
        evidence by a hard link (no bytes written); anything else is written
        (:meth:`BlobStore.keep <monitor.store.blobs.BlobStore.keep>`).

        Raises:
            StoreError: the blob store cannot be written.
        """
        if not flagged or it.evidence_path:
            return None
        d = it.decoded
        rel = f"evidence/{d.sha256[:2]}/{d.sha256}.{d.format.lower()}"
        self.ws.blobs.keep(rel, it.spool, it.data)
        return rel



def decide(ws: Workspace, found: list[Match], info: dict[int, tuple[str, str, dict]],
           location: str) -> list[RuleOutcome]:
    """The rules' outcome of each match whose gallery image is still known, in match order
    (``info`` is :meth:`Workspace.gallery_info`: ``{id: (path, collection, metadata)}``)."""
    return [o for m in found if m.gallery_id in info
            and (o := ws.rules.judge(m, info[m.gallery_id][1], location))]


def collection_ids(ws: Workspace, collection: str | None) -> set[int] | None:
    """Ids of the protected images in ``collection``; None (all) when no name is given.

    Raises:
        NotFound: no collection has this name.
    """
    if not collection:
        return None
    with ws.session() as s:
        return ids_in(s, collection)


def alert_channels(ws: Workspace) -> list[tuple[str, str]]:
    """``(kind, recipients)`` of the outbox rows a new violation gets: immediate mail when
    ``alerts.immediate`` (queued even before SMTP is configured: ``alerts send`` delivers
    the backlog once it is; empty recipients mean ``smtp.recipients`` at sending time), the
    outbound webhook when set."""
    alerts, smtp = ws.settings.alerts, ws.settings.smtp
    out = []
    if alerts.immediate:
        out.append(("immediate", ",".join(smtp.recipients)))
    if alerts.webhook_url:
        out.append(("webhook", alerts.webhook_url))
    return out
