"""tfxc.images.recordio: insightface's MXNet RecordIO sets, written here in the format's own layout."""

from __future__ import annotations

import struct

import pytest

from tfxc.errors import DataError
from tfxc.images.recordio import _HEADER, MAGIC, RecordIOFaces, read_index, write_recordio

IMAGES = [(2, b"\xff\xd8jpeg-of-id2-a"), (0, b"\xff\xd8jpeg-of-id0"), (2, b"\xff\xd8jpeg-of-id2-b"),
          (5, b"\x89PNG id5" + struct.pack("<I", MAGIC) + b" holds the magic word")]  # at a 4-byte boundary


def written(tmp_path, images=IMAGES):
    rec = str(tmp_path / "train.rec")
    write_recordio(rec, images)
    return rec


def test_images_come_back_with_their_identities_and_the_header_ranges(tmp_path):
    faces = RecordIOFaces(written(tmp_path))
    records = list(faces)
    assert [(r.key, r.label, r.image) for r in records] == [
        (key, label, image) for key, (label, image) in enumerate(sorted(IMAGES, key=lambda p: p[0]), start=1)]
    assert len(faces) == 4 and faces.first_identity_key == 5 and faces.num_identities == 3
    assert faces.record(4).image.endswith(b" holds the magic word")  # written in parts, joined back


def test_a_payload_with_the_magic_word_is_written_in_parts(tmp_path):
    rec = written(tmp_path)
    offset = read_index(rec[:-4] + ".idx")[4]
    data = open(rec, "rb").read()
    magic, word = struct.unpack_from("<II", data, offset)
    assert magic == MAGIC and word >> 29 == 1  # the first of two parts


@pytest.mark.parametrize("damage, message", [
    (lambda rec, idx: open(rec, "r+b").truncate(60), r"beyond the file's 60 bytes"),
    (lambda rec, idx: open(idx, "a").write("9\t999999\n"), r"index key 9 points at byte 999999, beyond the file"),
    (lambda rec, idx: open(idx, "w").write("0\t0\nnot a line\n"), r"train.idx:2: .*expected 'key<TAB>offset'"),
    (lambda rec, idx: open(idx, "w").write("1\t0\n"), r"no header record \(key 0\)"),
])
def test_a_broken_index_is_refused_naming_the_line_or_key(tmp_path, damage, message):
    rec = written(tmp_path)
    damage(rec, rec[:-4] + ".idx")
    with pytest.raises(DataError, match=message):
        RecordIOFaces(rec)


def test_a_header_record_without_identity_ranges_is_refused(tmp_path):
    rec = tmp_path / "bad.rec"
    payload = _HEADER.pack(0, 3.0, 0, 0) + b"image"  # an image record where the header belongs
    rec.write_bytes(struct.pack("<II", MAGIC, len(payload)) + payload + b"\0" * (-len(payload) % 4))
    (tmp_path / "bad.idx").write_text("0\t0\n")
    with pytest.raises(DataError, match=r"bad.rec: record key 0 at byte 0: the header record must carry the "
                                        r"identity ranges"):
        RecordIOFaces(str(rec))


def test_damaged_records_name_their_byte_offset(tmp_path):
    rec = written(tmp_path)
    offsets = read_index(rec[:-4] + ".idx")
    data = bytearray(open(rec, "rb").read())
    data[offsets[2]:offsets[2] + 4] = b"XXXX"  # a record's magic overwritten
    open(rec, "wb").write(bytes(data))
    faces = RecordIOFaces(rec)
    with pytest.raises(DataError, match=rf"record at byte {offsets[2]}: magic 0x58585858"):
        list(faces)
    # A record cut short by the end of the file (the last record, its length word intact).
    written(tmp_path)
    size = len(open(rec, "rb").read())
    open(rec, "r+b").truncate(size - 6)
    with pytest.raises(DataError, match=r"bytes announced, \d+ left in the file \(truncated\)"):
        RecordIOFaces(rec).record(max(read_index(rec[:-4] + ".idx")))


def test_labels_that_are_not_identities_are_refused(tmp_path):
    rec = written(tmp_path, [(0, b"img")])
    offset = read_index(rec[:-4] + ".idx")[1]
    data = bytearray(open(rec, "rb").read())
    struct.pack_into("<f", data, offset + 8 + 4, 1.5)  # the IRHeader's float label
    open(rec, "wb").write(bytes(data))
    with pytest.raises(DataError, match=r"record key 1 at byte \d+: identity label 1.5 is not a non-negative integer"):
        list(RecordIOFaces(rec))


def test_a_rec_file_is_an_image_source_of_data_format_images(tmp_path):
    from tfxc.data.readers.images import ImageReader, class_names, image_source, source_files

    rec = written(tmp_path)
    assert class_names(rec) is None  # identity ids, no names
    assert source_files(rec) == [rec, rec[:-4] + ".idx"]  # what the conversion's fingerprint covers
    source = image_source(rec)
    assert [(item.ref, item.label) for item in source.items(skip=2)] == [("3", 2), ("4", 5)]
    assert next(iter(source.items(with_bytes=False))).data is None
    rows = list(ImageReader(rec))
    assert [int(row.labels[0]) for row in rows] == [0, 2, 2, 5] and rows[0].image == b"\xff\xd8jpeg-of-id0"
