"""The decoded-record LRU of :class:`~monitor.matching.index.features.FeatureStore`.

Decoding a record (:func:`~monitor.matching.index.records.decode_record`) copies its
arrays out of the mapped pack; a candidate's shortlist, verified by several views or
region proposals, decodes each record once while it stays among the most recently used.
The bound is given with each insertion, so the store's ``CACHE_RECORDS`` is read when
it is used.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from monitor.matching.index.records import GalleryRecord


class RecordCache:
    """Decoded records by gallery id, least recently used first; safe from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: OrderedDict[int, GalleryRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def get(self, gallery_id: int) -> GalleryRecord | None:
        """The cached record of ``gallery_id`` (now the most recently used), or None."""
        with self._lock:
            if (hit := self._records.get(gallery_id)) is not None:
                self._records.move_to_end(gallery_id)
            return hit

    def put(self, gallery_id: int, record: GalleryRecord, limit: int) -> None:
        """Cache ``record`` as the most recently used, then evict the least recently used
        beyond ``limit`` records."""
        with self._lock:
            self._records[gallery_id] = record
            while len(self._records) > limit:
                self._records.popitem(last=False)

    def discard(self, ids: Iterable[int]) -> None:
        """Forget the records of ``ids`` (ids not cached are ignored)."""
        with self._lock:
            for gid in ids:
                self._records.pop(gid, None)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()
