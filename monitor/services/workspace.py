"""A deployment opened for work: settings, database, rules, engine and folders.

The first use of any command in an empty folder creates the embedded defaults
there (``data/monitor.db``, ``data/indices``, ``reports/``); nothing else is
needed to run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.imaging.decode import DecodedImage, DecodeLimits, decode_file
from monitor.matching.engine import Engine, GalleryEntry, working_side
from monitor.matching.rules import RuleSet, load_rules
from monitor.store import Store
from monitor.store.models import Collection, ProtectedImage

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "defaults" / "rules.toml"


class Workspace(Store):
    """A :class:`~monitor.store.Store` opened for checking: adds decode limits, rules,
    the matching engine and the fetcher, each loaded lazily from :class:`Settings`.

    Raises:
        StoreError: the database cannot be opened.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.limits = DecodeLimits(settings.decode.max_bytes, settings.decode.max_pixels,
                                   working_side(settings))
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
        """The engine with indices reconciled against the database (loaded once)."""
        if self._engine is None:
            engine = Engine(self.settings)
            entries = self._backfill_clip(engine, self.gallery_entries(engine))
            if engine.load(self.index_dir, entries, progress):
                engine.save(self.index_dir)
            self._engine = engine
        return self._engine

    def _backfill_clip(self, engine: Engine, entries: list[GalleryEntry]) -> list[GalleryEntry]:
        """Embed gallery images that lack a vector of the current CLIP model (batched)."""
        missing = [e for e in entries if e.clip is None]
        if not missing or not engine.clip_ready():
            return entries
        for start in range(0, len(missing), 32):
            batch = missing[start:start + 32]
            vectors = engine.embed([e.load() for e in batch])
            with self.session() as s:
                for e, v in zip(batch, vectors, strict=True):
                    row = s.get(ProtectedImage, e.gallery_id)
                    row.clip_vector, row.clip_model = v.tobytes(), engine.clip.fingerprint
                    s.add(row)
                s.commit()
        return self.gallery_entries(engine)

    def gallery_entries(self, engine: Engine) -> list[GalleryEntry]:
        """One :class:`GalleryEntry` per protected image, CLIP vectors of the current model only."""
        model = engine.clip.fingerprint if engine.clip else None
        with self.session() as s:
            rows = s.exec(select(ProtectedImage).order_by(ProtectedImage.id)).all()
        return [self._entry(r, model) for r in rows]

    def _entry(self, row: ProtectedImage, model: str | None) -> GalleryEntry:
        clip = None
        if row.clip_vector is not None and row.clip_model == model:
            clip = np.frombuffer(row.clip_vector, np.float32).copy()
        path = self.data_dir / row.stored_path
        codes = np.frombuffer(bytes.fromhex(row.phash), np.uint8).reshape(-1, 8)
        return GalleryEntry(row.id, codes, clip, lambda p=path: self.load_stored(p))

    def load_stored(self, path: Path) -> DecodedImage:
        """Decode a stored gallery copy with the workspace limits."""
        return decode_file(path, self.limits)

    # -- look-ups --------------------------------------------------------------
    def collection(self, session: Session, name: str, create: bool = False) -> Collection | None:
        """The collection called ``name`` (created when ``create``)."""
        row = session.exec(select(Collection).where(Collection.name == name)).first()
        if row is None and create:
            row = Collection(name=name)
            session.add(row)
            session.flush()
        return row

    def gallery_info(self) -> dict[int, tuple[str, str, dict]]:
        """``{gallery_id: (path, collection name, metadata)}`` for every protected image.

        Read once and cached like the engine; :meth:`gallery_changed` drops it.
        """
        if self._info is None:
            with self.session() as s:
                rows = s.exec(select(ProtectedImage, Collection).join(Collection)).all()
            self._info = {p.id: (p.path, c.name, json.loads(p.meta_json)) for p, c in rows}
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
        from monitor.intake.fetcher import DbValidatorCache, Fetcher

        return Fetcher(self.settings.fetch, max_bytes=self.limits.max_bytes,
                       cache=DbValidatorCache(self.session),
                       allow_networks=self.settings.fetch.allow_networks)
