"""MXNet RecordIO face sets (`train.rec` + `train.idx`), read without MXNet.

MS1M, WebFace and Glint360K ship as insightface packed them: a RecordIO file of records and a text index of
"key<TAB>byte offset" lines. The layout, as dmlc-core writes it:

  record   uint32 magic 0xced7230a, uint32 length word (its top 3 bits a part flag, the low 29 the length),
           the payload, zero padding to a multiple of 4 bytes. A payload that holds the magic word at a
           4-byte boundary is written as parts split there (flag 1 first, 2 middle, 3 last; 0 a whole
           record), and the reader joins them with the magic word between.
  payload  MXNet's IRHeader, little-endian: uint32 flag, float32 label, uint64 id, uint64 id2; when flag > 0,
           `flag` float32 labels follow (and the float label is unused); then the image's encoded bytes.

insightface's sets open with a header record (key 0) whose labels are (first identity key, end key): the
image records are keys 1 .. first-1, each labelled with its identity, and the keys from there on hold each
identity's range of image keys.

Every error names the file, the record's byte offset and, where it has one, its key.
"""

from __future__ import annotations

import math
import os
import struct
from typing import Iterator, NamedTuple

from tfxc.errors import DataError
from tfxc.images.sources import ImageItem, ImageSource

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_HEADER = struct.Struct("<IfQQ")
_LENGTH_BITS = 29


class FaceRecord(NamedTuple):
    """One image record: its index key, its identity (the IRHeader's label) and its encoded image bytes."""

    key: int
    label: int
    image: bytes


def read_index(idx_path: str) -> dict[int, int]:
    """{key: byte offset} of a RecordIO index (one "key<TAB>offset" line a record)."""
    offsets = {}
    with open(idx_path, encoding="ascii", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2 or not all(field.isascii() and field.isdigit() for field in fields):
                raise DataError(f"expected 'key<TAB>offset' (two non-negative integers), got {line.strip()[:60]!r}",
                                path=idx_path, line=number)
            offsets[int(fields[0])] = int(fields[1])
    return offsets


class RecordIOFaces:
    """The image records of an insightface RecordIO set, by key, streamed from the file.

    Args:
      rec_path: the `.rec` file.
      idx_path: its index (default: the same name with `.idx`).

    Raises (on construction):
      DataError: a missing or malformed index, an offset beyond the file, or a header record without the
        identity ranges insightface writes.
    """

    def __init__(self, rec_path: str, idx_path: str | None = None):
        self.rec_path = rec_path
        self.idx_path = idx_path or os.path.splitext(rec_path)[0] + ".idx"
        for path in (self.rec_path, self.idx_path):
            if not os.path.isfile(path):
                raise DataError("no such file (a RecordIO set is a .rec file and its .idx index)", path=path)
        self.offsets = read_index(self.idx_path)
        size = os.path.getsize(self.rec_path)
        beyond = [(key, offset) for key, offset in self.offsets.items() if offset + 8 > size]
        if beyond:
            key, offset = min(beyond)
            raise DataError(f"index key {key} points at byte {offset}, beyond the file's {size} bytes "
                            f"({len(beyond)} such keys): the index belongs to another or a truncated .rec",
                            path=self.idx_path)
        if 0 not in self.offsets:
            raise DataError("no header record (key 0) in the index", path=self.idx_path)
        labels, _ = self._unpack(self._payload(self.offsets[0]), 0)
        if not isinstance(labels, tuple) or len(labels) < 2 or not 1 <= labels[0] <= labels[1]:
            raise DataError(f"record key 0 at byte {self.offsets[0]}: the header record must carry the identity "
                            f"ranges (first identity key, end key), got label {labels!r}", path=self.rec_path)
        self.first_identity_key, self.end_key = int(labels[0]), int(labels[1])
        self.image_keys = [key for key in range(1, self.first_identity_key) if key in self.offsets]

    @property
    def num_identities(self) -> int:
        return self.end_key - self.first_identity_key

    def __len__(self) -> int:
        return len(self.image_keys)

    def __iter__(self) -> Iterator[FaceRecord]:
        return self.records()

    def records(self, skip: int = 0) -> Iterator[FaceRecord]:
        """The image records in key order, from the `skip`-th on (those before it are not read)."""
        with open(self.rec_path, "rb") as f:
            for key in self.image_keys[skip:]:
                yield self._record(f, key)

    def record(self, key: int) -> FaceRecord:
        """The image record of `key`."""
        if key not in self.offsets:
            raise DataError(f"no record key {key} in the index", path=self.idx_path)
        with open(self.rec_path, "rb") as f:
            return self._record(f, key)

    def _record(self, f, key: int) -> FaceRecord:
        offset = self.offsets[key]
        labels, image = self._unpack(self._payload(offset, f), key)
        label = labels[0] if isinstance(labels, tuple) else labels
        if not math.isfinite(label) or label != int(label) or label < 0:
            raise DataError(f"record key {key} at byte {offset}: identity label {label!r} is not a non-negative "
                            "integer", path=self.rec_path)
        if not image:
            raise DataError(f"record key {key} at byte {offset}: no image bytes after the header", path=self.rec_path)
        return FaceRecord(key, int(label), image)

    def _payload(self, offset: int, f=None) -> bytes:
        """The payload of the record at `offset`, its parts joined."""
        if f is None:
            with open(self.rec_path, "rb") as handle:
                return self._payload(offset, handle)
        parts, position = [], offset
        while True:
            f.seek(position)
            head = f.read(8)
            if len(head) < 8:
                raise DataError(f"record at byte {position}: the file ends inside its 8-byte head (truncated)",
                                path=self.rec_path)
            magic, word = struct.unpack("<II", head)
            if magic != MAGIC:
                raise DataError(f"record at byte {position}: magic 0x{magic:08x}, expected 0x{MAGIC:08x} (not a "
                                "RecordIO record, or an index offset that misses one)", path=self.rec_path)
            flag, length = word >> _LENGTH_BITS, word & ((1 << _LENGTH_BITS) - 1)
            data = f.read(length)
            if len(data) < length:
                raise DataError(f"record at byte {position}: {length} bytes announced, {len(data)} left in the file "
                                "(truncated)", path=self.rec_path)
            if flag not in ((2, 3) if parts else (0, 1)):  # a whole record or a first part, then middles, a last
                raise DataError(f"record at byte {position}: part flag {flag} out of order", path=self.rec_path)
            parts.append(data)
            if flag in (0, 3):
                return _MAGIC_BYTES.join(parts)
            position += 8 + length + (-length % 4)

    def _unpack(self, payload: bytes, key: int):
        """(label: float or a tuple of floats, image bytes) of an IRHeader'd payload."""
        if len(payload) < _HEADER.size:
            raise DataError(f"record key {key}: {len(payload)} bytes, shorter than the {_HEADER.size}-byte IRHeader",
                            path=self.rec_path)
        flag, label, _, _ = _HEADER.unpack_from(payload)
        end = _HEADER.size + 4 * flag
        if flag:
            if len(payload) < end:
                raise DataError(f"record key {key}: IRHeader announces {flag} labels, the record holds "
                                f"{(len(payload) - _HEADER.size) // 4}", path=self.rec_path)
            return struct.unpack_from(f"<{flag}f", payload, _HEADER.size), payload[end:]
        return label, payload[_HEADER.size:]


def write_recordio(rec_path: str, images: list[tuple[int, bytes]]) -> None:
    """Writes an insightface-layout set of (identity, encoded image) pairs, grouped by identity: the header
    record, the images (keys 1..N), one range record an identity, and the index. For tests and for users
    packing their own folders the way insightface's tools do."""
    records, ranges = [], []
    ordered = sorted(images, key=lambda pair: pair[0])
    for key, (label, image) in enumerate(ordered, start=1):
        records.append((key, _HEADER.pack(0, float(label), key, 0) + image))
    first_identity = len(ordered) + 1
    for identity in sorted({label for label, _ in ordered}):
        keys = [key for key, (label, _) in enumerate(ordered, start=1) if label == identity]
        ranges.append(_HEADER.pack(2, 0.0, 0, 0) + struct.pack("<2f", keys[0], keys[-1] + 1))
    end = first_identity + len(ranges)
    header = (0, _HEADER.pack(2, 0.0, 0, 0) + struct.pack("<2f", first_identity, end))
    records = [header, *records, *((first_identity + i, payload) for i, payload in enumerate(ranges))]
    with open(rec_path, "wb") as rec, open(os.path.splitext(rec_path)[0] + ".idx", "w", encoding="ascii") as idx:
        for key, payload in records:
            idx.write(f"{key}\t{rec.tell()}\n")
            _write_record(rec, payload)


def _write_record(f, payload: bytes) -> None:
    """One record, split into parts where the payload holds the magic word at a 4-byte boundary."""
    cuts = [i for i in range(0, len(payload) - 3, 4) if payload[i:i + 4] == _MAGIC_BYTES]
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(payload[start:cut])
        start = cut + 4
    pieces.append(payload[start:])
    for i, piece in enumerate(pieces):
        flag = 0 if len(pieces) == 1 else 1 if i == 0 else 3 if i == len(pieces) - 1 else 2
        f.write(struct.pack("<II", MAGIC, (flag << _LENGTH_BITS) | len(piece)) + piece + b"\0" * (-len(piece) % 4))


class RecordIOSource(ImageSource):
    """A RecordIO set as an image source of `tfxc.extract --recordio` and `data.format = "images"`: its image
    records in key order, each labelled by its identity id, named by its key."""

    label_kind = "id"

    def __init__(self, rec_path: str):
        self.faces = RecordIOFaces(rec_path)

    def describe(self):
        return {"kind": "recordio", "rec": os.path.abspath(self.faces.rec_path), "records": len(self.faces)}

    def items(self, with_bytes=True, skip=0):
        # The labels are in each record's header: a pass without bytes reads the records too.
        for record in self.faces.records(skip):
            yield ImageItem(str(record.key), record.label, record.image if with_bytes else None)
