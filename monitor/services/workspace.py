"""A deployment opened for work: settings, database, rules, engine and folders.

The first use of any command in an empty folder creates the embedded defaults
there (``data/monitor.db``, ``data/indices``, ``reports/``); nothing else is
needed to run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import numpy as np
from sqlmodel import Session

from monitor.config import Settings
from monitor.errors import BlobNotFound
from monitor.imaging.budget import MIB, MemoryBudget
from monitor.imaging.decode import DecodedImage, DecodeLimits, decode_bytes, decode_file
from monitor.matching.engine import Engine, GalleryEntry, working_side
from monitor.matching.rules import RuleSet, load_rules
from monitor.store import Store
from monitor.store import gallery as gallery_repo
from monitor.store.models import Collection, ProtectedImage

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "defaults" / "rules.toml"
"""The packaged rules file, used when ``rules.dir`` holds none (``monitor init`` copies it)."""

CLIP_BATCH = 32
"""Gallery images embedded per call when CLIP or SSCD vectors of the current model are
missing (each batch is decoded, embedded and stored before the next)."""


class Workspace(Store):
    """A :class:`~monitor.store.Store` opened for checking: adds decode limits and the
    decode memory budget, rules, the matching engine and the fetcher (the last three
    loaded lazily from :class:`Settings`).

    Attributes:
        limits: decode limits of candidates (untrusted input).
        gallery_limits: the same with ``decode.gallery_max_pixels`` (protected images are
            added by their owner: a higher pixel cap).
        decode_budget: what every decode of this workspace claims memory from
            (``decode.memory_budget_mb`` MiB, :mod:`monitor.imaging.budget`): a daemon's
            queue workers, ``/v1/search`` and scans share it.
        blobs: the blob store of uploads and stored gallery copies (created at first use).

    Raises:
        StoreError: the database cannot be opened.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.limits = DecodeLimits(settings.decode.max_bytes, settings.decode.max_pixels,
                                   working_side(settings))
        self.gallery_limits = replace(self.limits, max_bytes=settings.decode.gallery_max_bytes,
                                      max_pixels=settings.decode.gallery_max_pixels)
        self.decode_budget = MemoryBudget(settings.decode.memory_budget_mb * MIB)
        self._engine: Engine | None = None
        self._info: dict[int, tuple[str, str, dict]] | None = None

    # -- rules -----------------------------------------------------------------
    @cached_property
    def rules(self) -> RuleSet:
        """Rules from ``rules/*.toml``; the packaged default when the folder has none.

        Raises:
            RuleError: a rule file is invalid (names file and key).
        """
        folder = self.settings.path(self.settings.rules.dir)
        rules = load_rules(folder)
        return RuleSet(rules or load_rules(DEFAULT_RULES.parent))

    # -- engine ----------------------------------------------------------------
    def engine(self, progress: Callable[[int], None] | None = None) -> Engine:
        """The engine with its saved indices reconciled against the database (loaded once).

        Only the live ids are read at start-up; rows are fetched for images the indices
        lack (:func:`monitor.matching.persist.load`), with SSCD and CLIP vectors of the
        current models computed and stored for those that have none. ``progress`` gets
        the count of images added to an index.

        Raises:
            StageUnavailable: CLIP cannot load and ``clip.required`` is true.
        """
        if self._engine is None:
            engine = Engine(self.settings)
            if engine.load(self.index_dir, self.live_ids(),
                           lambda ids: self.fetch_entries(engine, ids), progress):
                engine.save(self.index_dir)
            self._engine = engine
        return self._engine

    def live_ids(self) -> np.ndarray:
        """``(N,) int64`` ids of every live protected image, ascending (one narrow read)."""
        with self.session() as s:
            return np.asarray(gallery_repo.all_live_ids(s), np.int64)

    def fetch_entries(self, engine: Engine, ids: list[int]) -> list[GalleryEntry]:
        """The :class:`GalleryEntry` of those of ``ids`` that are live protected images,
        SSCD and CLIP vectors of ``engine``'s models computed and stored where missing."""
        models = self._models(engine)
        with self.session() as s:
            rows = [r for r in gallery_repo.images_by_id(s, ids) if r.archived_at is None]
        entries = [self._entry(r, models) for r in rows]
        entries = self._backfill(engine, entries, "clip")
        return self._backfill(engine, entries, "descriptor")

    def _backfill(self, engine: Engine, entries: list[GalleryEntry],
                  kind: str) -> list[GalleryEntry]:
        """Embed gallery images that lack a vector of the current ``kind`` model (``clip``
        or ``descriptor``; batches of :data:`CLIP_BATCH`), store the vectors and return
        ``entries`` with them filled in (no second read of the table); ``entries`` itself
        when nothing was missing or the stage cannot run."""
        missing = [i for i, e in enumerate(entries) if getattr(e, kind) is None]
        ready = engine.clip_ready if kind == "clip" else engine.descriptor_ready
        if not missing or not ready():
            return entries
        entries = list(entries)
        embed, store = ((engine.embed, gallery_repo.set_clip_vectors) if kind == "clip"
                        else (engine.describe, gallery_repo.set_descriptor_vectors))
        model = getattr(engine, kind).fingerprint
        for start in range(0, len(missing), CLIP_BATCH):
            batch = missing[start:start + CLIP_BATCH]
            vectors = [v.tobytes() for v in embed([entries[i].load() for i in batch])]
            with self.session() as s:
                store(s, [(entries[i].gallery_id, v) for i, v in zip(batch, vectors, strict=True)],
                      model)
                s.commit()
            for i, v in zip(batch, vectors, strict=True):
                entries[i] = replace(entries[i], **{kind: np.frombuffer(v, np.float32).copy()})
        return entries

    @staticmethod
    def _models(engine: Engine) -> tuple[str | None, str | None]:
        """Fingerprints of the engine's CLIP and descriptor models (None: stage off)."""
        return (engine.clip.fingerprint if engine.clip else None,
                engine.descriptor.fingerprint if engine.descriptor else None)

    def gallery_entry(self, row: ProtectedImage) -> GalleryEntry:
        """The :class:`GalleryEntry` of one protected image row for the loaded engine (its
        CLIP vector only when of the engine's model).

        Raises:
            StageUnavailable: CLIP cannot load and ``clip.required`` is true.
        """
        return self._entry(row, self._models(self.engine()))

    def _entry(self, row: ProtectedImage, models: tuple[str | None, str | None]) -> GalleryEntry:
        clip = descriptor = None
        if row.clip_vector is not None and row.clip_model == models[0]:
            clip = np.frombuffer(row.clip_vector, np.float32).copy()
        if row.descriptor_vector is not None and row.descriptor_model == models[1]:
            descriptor = np.frombuffer(row.descriptor_vector, np.float32).copy()
        codes = np.frombuffer(bytes.fromhex(row.phash), np.uint8).reshape(-1, 8)
        return GalleryEntry(row.id, codes, clip, lambda k=row.stored_path: self.load_blob(k),
                            descriptor)

    def load_blob(self, key: str) -> DecodedImage:
        """Decode the stored gallery copy ``key`` (``gallery/ab/abcd….jpeg``) from the
        blob store with the gallery's limits: from its file when the store is a folder
        (no copy), else from the bytes fetched.

        Raises:
            BlobNotFound: no such object.
            StoreError: the blob store cannot be read.
            DecodeError: the stored bytes are unreadable or over the limits.
        """
        path = self.blobs.local_path(key)
        if path is None:
            return decode_bytes(self.blobs.get(key), self.gallery_limits)
        try:
            return decode_file(path, self.gallery_limits)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise BlobNotFound(f"blob store {self.blobs.url}: no object {key}") from exc

    # -- look-ups --------------------------------------------------------------
    def collection(self, session: Session, name: str, create: bool = False) -> Collection | None:
        """The collection called ``name`` (created when ``create``); see
        :func:`monitor.store.gallery.find_collection`, which new code should call."""
        return gallery_repo.find_collection(session, name, create)

    def gallery_sizes(self) -> dict[str, int]:
        """``{collection: live protected images}``, for ``doctor`` (one grouped count)."""
        with self.session() as s:
            return gallery_repo.collection_sizes(s)

    def gallery_info(self) -> dict[int, tuple[str, str, dict]]:
        """``{gallery_id: (path, collection name, metadata)}`` for every protected image,
        archived ones included (reports of their old violations still name them).

        Read once and cached like the engine; :meth:`gallery_changed` drops it.
        """
        if self._info is None:
            with self.session() as s:
                rows = gallery_repo.labels(s)
            self._info = {gid: (path, name, json.loads(meta)) for gid, path, name, meta in rows}
        return self._info

    def gallery_changed(self) -> None:
        """Forget cached gallery facts after images were added or removed here."""
        self._info = None

    # -- fetching --------------------------------------------------------------
    @cached_property
    def fetcher(self):
        """The shared :class:`monitor.intake.fetcher.Fetcher`: one set of per-host limits and
        robots.txt cache per workspace; validators for conditional requests in ``FetchCache``.
        """
        from monitor.intake.fetcher import Fetcher
        from monitor.store.fetch_cache import DbValidatorCache

        return Fetcher(self.settings.fetch, max_bytes=self.limits.max_bytes,
                       cache=DbValidatorCache(self.session),
                       allow_networks=self.settings.fetch.allow_networks)
