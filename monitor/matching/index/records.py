"""On-disk pieces of :class:`~monitor.matching.index.features.FeatureStore`: the
binary encoding of one gallery record, and the table that locates records in a pack.

One record is a self-describing byte string, little-endian, no pickle::

    magic  4 B  b"GRC1"
    crc32  4 B  uint32, zlib CRC-32 of every byte after this field
    flags  1 B  bit 0: has features, bit 1: features.original is set
    count  1 B  number of arrays
    scalars 40 B  size (w, h) int32 · scale float64 · offset (x, y) float64 ·
                  original (w, h) int32  (zeros when absent)
    per array: name (uint8 length + ASCII), dtype (uint8 length + numpy dtype
               string, e.g. "<f4"), ndim uint8, shape int64 × ndim
    data   the arrays' raw C-order bytes, in header order, back to back

Arrays (absent ones are simply not listed): ``keypoints`` (N, 2) float32,
``descriptors`` (N, 128 or 32) uint8, ``image`` (h, w) uint8, ``colour`` (h, w, 3)
uint8, ``signature`` (D,) float16. The header costs about 130 bytes; the CRC makes a
torn or overwritten record fail loudly instead of decoding into wrong keypoints.

The table (:class:`RecordTable`) is a handful of id-aligned numpy columns, 40 bytes a
record, saved as one npz by :func:`write_table`.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.matching.index.base import load_arrays, save_arrays
from monitor.matching.stages.local_features import Features

MAGIC = b"GRC1"
"""First four bytes of every record; bump the digit when the encoding changes."""

TABLE_NAME = "features.table.npz"
"""File name of the table inside a store folder."""

PACK_NAME = re.compile(r"features-(\d+)\.pack")
"""File names of packs: ``features-<generation>.pack``."""

LAYOUT_VERSION = 1
"""Version of the table's columns; a table of another layout is stale (store reset)."""

Row = tuple[int, int, int, tuple[int, int] | None, tuple[int, int] | None]
"""A table row: gallery id, byte offset, byte length, original and feature ``(w, h)``."""

_PREFIX = struct.Struct("<4sI")
_FIXED = struct.Struct("<BBiidddii")
_FEATURES, _ORIGINAL = 1, 2
_NDIM = {"keypoints": 2, "descriptors": 2, "image": 2, "colour": 3, "signature": 1}
"""Arrays a record may hold, with their number of dimensions."""


@dataclass(frozen=True, eq=False)
class GalleryRecord:
    """Everything verification needs of one protected image.

    Attributes:
        features: the gallery view of its local features (``mirror`` always None), or None.
        signature: structure signature ``(D,) float16`` (:func:`~monitor.matching.stages.
            structure.gallery_signature`, D = 4096 today), or None.
    """

    features: Features | None
    signature: np.ndarray | None


def encode_record(record: GalleryRecord) -> bytes:
    """The bytes of ``record`` (layout in the module docstring).

    Raises:
        ValueError: the features carry a mirrored view (gallery views have none) or an
            array has a non-numeric dtype.
    """
    f, arrays = record.features, []
    if f is not None:
        if f.mirror is not None:
            raise ValueError("gallery features must not carry a mirrored view")
        arrays += [("keypoints", f.keypoints), ("descriptors", f.descriptors),
                   ("image", f.image), ("colour", f.colour)]
    arrays.append(("signature", record.signature))
    arrays = [(n, np.ascontiguousarray(a)) for n, a in arrays if a is not None]
    flags = (_FEATURES if f is not None else 0) | (
        _ORIGINAL if f is not None and f.original is not None else 0)
    size = (int(f.size[0]), int(f.size[1])) if f is not None else (0, 0)
    scale = float(f.scale) if f is not None else 0.0
    offset = (float(f.offset[0]), float(f.offset[1])) if f is not None else (0.0, 0.0)
    original = (int(f.original[0]), int(f.original[1])) if flags & _ORIGINAL else (0, 0)
    head = [_FIXED.pack(flags, len(arrays), *size, scale, *offset, *original)]
    for name, a in arrays:
        if a.dtype.kind not in "biuf":
            raise ValueError(f"array {name!r} has unsupported dtype {a.dtype}")
        dt = a.dtype.str.encode()
        head.append(struct.pack(f"<B{len(name)}sB{len(dt)}sB{a.ndim}q", len(name),
                                name.encode(), len(dt), dt, a.ndim, *a.shape))
    body = b"".join(head + [a.tobytes() for _, a in arrays])
    return _PREFIX.pack(MAGIC, zlib.crc32(body)) + body


def decode_record(buf: bytes | memoryview) -> GalleryRecord:
    """The record encoded in ``buf`` (exactly one record), arrays copied (writable,
    independent of ``buf``).

    Raises:
        ValueError: wrong magic, CRC mismatch, malformed header, unknown or repeated
            array, impossible shapes, or data bytes that do not add up to ``buf``'s length.
    """
    view = memoryview(buf).cast("B")
    if len(view) < _PREFIX.size + _FIXED.size:
        raise ValueError(f"record of {len(view)} bytes is shorter than its header")
    magic, crc = _PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        raise ValueError(f"bad magic {bytes(magic)!r}")
    if zlib.crc32(view[_PREFIX.size:]) != crc:
        raise ValueError("CRC mismatch")
    try:
        return _decode(view)
    except (struct.error, TypeError, IndexError, UnicodeDecodeError) as e:
        raise ValueError(f"malformed record header: {e}") from e


def _decode(view: memoryview) -> GalleryRecord:
    pos = _PREFIX.size
    flags, count, w, h, scale, ox, oy, orig_w, orig_h = _FIXED.unpack_from(view, pos)
    pos += _FIXED.size
    specs: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
    for _ in range(count):
        name, pos = _text(view, pos)
        dtype_str, pos = _text(view, pos)
        ndim = view[pos]
        shape = struct.unpack_from(f"<{ndim}q", view, pos + 1)
        pos += 1 + 8 * ndim
        dtype = np.dtype(dtype_str)
        if name not in _NDIM or name in specs or ndim != _NDIM[name]:
            raise ValueError(f"unexpected array {name!r} of {ndim} dimensions")
        if dtype.kind not in "biuf" or min(shape) < 0:
            raise ValueError(f"array {name!r}: bad dtype {dtype} or shape {shape}")
        specs[name] = (dtype, shape)
    need = sum(math.prod(s) * d.itemsize for d, s in specs.values())
    if need != len(view) - pos:
        raise ValueError(f"arrays need {need} bytes, record holds {len(view) - pos}")
    arrays = {}
    for name, (dtype, shape) in specs.items():
        n = math.prod(shape)
        arrays[name] = np.frombuffer(view, dtype, n, pos).reshape(shape).copy()
        pos += n * dtype.itemsize
    features = None
    if flags & _FEATURES:
        kp, desc = arrays.get("keypoints"), arrays.get("descriptors")
        if kp is None or desc is None or kp.shape[1] != 2 or len(kp) != len(desc):
            raise ValueError("features without matching keypoints and descriptors")
        features = Features(kp, desc, (w, h), scale, offset=(ox, oy),
                            image=arrays.get("image"), colour=arrays.get("colour"),
                            original=(orig_w, orig_h) if flags & _ORIGINAL else None)
    elif set(arrays) - {"signature"}:
        raise ValueError("feature arrays in a record without features")
    return GalleryRecord(features, arrays.get("signature"))


def _text(view: memoryview, pos: int) -> tuple[str, int]:
    """The uint8-length-prefixed ASCII string at ``pos`` and the position after it."""
    n = view[pos]
    if pos + 1 + n > len(view):
        raise ValueError("header runs past the end of the record")
    return bytes(view[pos + 1:pos + 1 + n]).decode("ascii"), pos + 1 + n


@dataclass(frozen=True)
class RecordTable:
    """Where live records are: ``ids``, ``offsets``, ``lengths`` ``(N,) int64`` (ids
    ascending, offsets and lengths in bytes of the pack); ``originals``, ``sizes``
    ``(N, 2) int32`` original and feature image ``(w, h)`` in pixels, -1 when None."""

    ids: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    originals: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, rows: list[Row]) -> RecordTable:
        """A table of ``rows``, sorted by id."""
        return cls(np.array([r[0] for r in rows], np.int64),
                   np.array([r[1] for r in rows], np.int64),
                   np.array([r[2] for r in rows], np.int64),
                   np.array([r[3] or (-1, -1) for r in rows], np.int32).reshape(-1, 2),
                   np.array([r[4] or (-1, -1) for r in rows], np.int32).reshape(-1, 2)
                   ).take(None)

    def columns(self) -> tuple[np.ndarray, ...]:
        """The five columns, in field order."""
        return self.ids, self.offsets, self.lengths, self.originals, self.sizes

    def take(self, index: np.ndarray | None) -> RecordTable:
        """Rows ``index`` (mask or positions); None: all rows sorted by id."""
        if index is None:
            index = np.argsort(self.ids, kind="stable")
        return RecordTable(*(c[index] for c in self.columns()))

    def join(self, other: RecordTable) -> RecordTable:
        """Both tables' rows sorted by id (their ids must be disjoint)."""
        return RecordTable(*(np.concatenate(pair) for pair in zip(
            self.columns(), other.columns(), strict=True))).take(None)

    def row(self, gallery_id: int) -> int:
        """Position of ``gallery_id``, or -1."""
        i = int(np.searchsorted(self.ids, gallery_id))
        return i if i < len(self.ids) and self.ids[i] == gallery_id else -1

    def pair(self, column: np.ndarray, gallery_id: int) -> tuple[int, int] | None:
        """``(w, h)`` of ``gallery_id`` in ``column`` (originals or sizes), or None."""
        i = self.row(gallery_id)
        return None if i < 0 or column[i, 0] < 0 else (int(column[i, 0]), int(column[i, 1]))


def write_table(path: Path, fingerprint: str, table: RecordTable, generation: int) -> None:
    """Atomically save ``table`` of pack ``generation`` (:func:`save_arrays`).

    Raises:
        OSError: ``path`` cannot be written.
    """
    save_arrays(path, fingerprint, ids=table.ids, offsets=table.offsets,
                lengths=table.lengths, originals=table.originals, sizes=table.sizes,
                generation=np.array(generation, np.int64),
                layout=np.array(LAYOUT_VERSION, np.int64))


def read_table(path: Path, fingerprint: str) -> tuple[RecordTable, int] | None:
    """The table saved by :func:`write_table` and its pack generation, or None when
    missing, unreadable, stale (fingerprint, ``FORMAT_VERSION``, :data:`LAYOUT_VERSION`)
    or inconsistent (ragged columns, ids not strictly ascending)."""
    a = load_arrays(path, fingerprint)
    try:
        if a is None or int(a["layout"]) != LAYOUT_VERSION:
            return None
        table = RecordTable(*(a[k] for k in ("ids", "offsets", "lengths", "originals",
                                              "sizes")))
        if len({len(c) for c in table.columns()}) > 1 or np.any(np.diff(table.ids) <= 0):
            return None
        return table, int(a["generation"])
    except (KeyError, TypeError, ValueError):
        return None


def pack_path(folder: Path, generation: int) -> Path:
    """The pack of ``generation`` in ``folder``."""
    return folder / f"features-{generation}.pack"


def open_table(folder: Path, fingerprint: str) -> tuple[
        RecordTable, int, mmap.mmap | None, int, tuple[int, int, int]] | None:
    """The table saved in ``folder``, its pack generation, the pack's map (None when
    empty) and size in bytes, and the table's :func:`file_stamp`; None when there is no
    usable table (:func:`read_table`) or its non-empty pack is gone."""
    path = folder / TABLE_NAME
    for _ in range(3):  # a compaction may delete the pack between table and map
        stamp = file_stamp(path)
        saved = read_table(path, fingerprint) if stamp is not None else None
        if saved is None or stamp is None:
            return None
        table, gen = saved
        try:
            return table, gen, *map_pack(pack_path(folder, gen)), stamp
        except FileNotFoundError:
            if not len(table.ids):
                return table, gen, None, 0, stamp
            if file_stamp(path) == stamp:
                return None
    return None


def map_pack(path: Path) -> tuple[mmap.mmap | None, int]:
    """A read-only map of ``path`` (None when empty) and its size in bytes.

    Raises:
        FileNotFoundError: no such pack.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        return (mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None), size


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """``(inode, mtime ns, size)`` of ``path`` (changes at every atomic replace), or None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def fsync_dir(folder: Path) -> None:
    """Make a new file's directory entry durable (POSIX; ignored where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
