"""Image sources: a folder per class, webdataset tar shards and a CSV catalog, each made here from real digit scans."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from helpers import digit_images
from tfxc.errors import ConfigError, DataError
from tfxc.images.sources import CatalogSource, FolderSource, WebDatasetSource, expand_shards, open_source


@pytest.fixture(scope="module")
def digits():
    return digit_images(24)


def write_folder(root, digits, splits=None):
    for i, (data, label) in enumerate(digits):
        parts = ([splits[i]] if splits else []) + [f"d{label}", f"{i:03d}.png"]
        path = os.path.join(root, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def write_shard(path, members):
    """A tar holding (name, bytes) members in the given order."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_folder_lists_classes_and_files_in_sorted_order_with_their_bytes(tmp_path, digits):
    write_folder(tmp_path, digits)
    (tmp_path / "d0" / "notes.txt").write_text("not an image")
    (tmp_path / "README").write_text("a file beside the class folders")
    items = list(FolderSource(str(tmp_path)).items())
    assert [i.ref for i in items] == sorted(i.ref for i in items)
    assert len(items) == len(digits)
    by_ref = {f"d{label}/{i:03d}.png": (data, label) for i, (data, label) in enumerate(digits)}
    for item in items:
        assert item.data == by_ref[item.ref][0] and item.label == f"d{by_ref[item.ref][1]}" and item.split is None
    # A pass without bytes reads none; a resumed pass starts at the given item.
    assert all(i.data is None for i in FolderSource(str(tmp_path)).items(with_bytes=False))
    assert [i.ref for i in FolderSource(str(tmp_path)).items(skip=20)] == [i.ref for i in items[20:]]


def test_folder_with_split_subfolders_gives_each_image_its_split(tmp_path, digits):
    splits = ["train" if i % 3 else "test" for i in range(len(digits))]
    write_folder(tmp_path, digits, splits)
    items = list(FolderSource(str(tmp_path)).items(with_bytes=False))
    assert sorted(i.split for i in items) == sorted(splits)
    assert all(i.ref.startswith(i.split + os.sep) for i in items)
    assert {i.label for i in items} == {f"d{label}" for _, label in digits}


def test_folder_errors_name_the_path(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        FolderSource(str(tmp_path / "missing"))
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match="no images"):
        FolderSource(str(tmp_path))


def test_webdataset_groups_members_by_key_across_shards(tmp_path, digits):
    for shard in range(2):
        members = []
        for i, (data, label) in enumerate(digits[shard * 12:(shard + 1) * 12]):
            key = f"s{shard}/{i:06d}"
            members += [(key + ".png", data), (key + ".cls", str(label).encode())]
        write_shard(tmp_path / f"shard-{shard:03d}.tar", members)
    source = WebDatasetSource(str(tmp_path / "shard-{000..001}.tar"))
    items = list(source.items())
    assert [i.label for i in items] == [label for _, label in digits]
    assert [i.data for i in items] == [data for data, _ in digits]
    assert items[13].ref == "s1/000001" and source.label_kind == "id"
    # Once counted, a shard wholly before the resume point is skipped unread.
    os.rename(tmp_path / "shard-000.tar", tmp_path / "moved.tar")
    assert [i.ref for i in source.items(skip=14)] == [i.ref for i in items[14:]]
    assert expand_shards(str(tmp_path / "shard-*.tar")) == [str(tmp_path / "shard-001.tar")]


def test_webdataset_name_entries_and_its_errors(tmp_path, digits):
    (data, _), (other, _) = digits[:2]
    write_shard(tmp_path / "a.tar", [("k1.jpg", data), ("k1.species.txt", b"Felis catus\n")])
    assert [(i.ref, i.label) for i in WebDatasetSource(str(tmp_path / "a.tar"), "species.txt").items()] == [
        ("k1", "Felis catus")]
    write_shard(tmp_path / "b.tar", [("k1.png", data), ("k1.cls", b"cat")])
    with pytest.raises(DataError, match=r"b\.tar: field 'k1': the 'cls' entry 'cat' is not a class id"):
        list(WebDatasetSource(str(tmp_path / "b.tar")).items())
    write_shard(tmp_path / "c.tar", [("k1.png", data), ("k1.cls", b"1"), ("k2.png", other), ("k2.cls", b"2"),
                                    ("k1.png", other), ("k1.cls", b"2")])
    with pytest.raises(DataError, match="not consecutive"):
        list(WebDatasetSource(str(tmp_path / "c.tar")).items())
    write_shard(tmp_path / "d.tar", [("k1.png", data)])
    with pytest.raises(DataError, match=r"field 'k1': no 'cls' label entry"):
        list(WebDatasetSource(str(tmp_path / "d.tar")).items())
    (tmp_path / "e.tar").write_bytes(b"not a tar at all" * 40)
    with pytest.raises(DataError, match="e.tar: not a readable tar"):
        list(WebDatasetSource(str(tmp_path / "e.tar")).items())
    with pytest.raises(DataError, match="no such shard"):
        WebDatasetSource(str(tmp_path / "f-{0..2}.tar"))


def test_catalog_reads_the_chosen_columns_relative_to_its_folder(tmp_path, digits):
    write_folder(tmp_path / "images", digits[:6])
    lines = ["path,genus,species,split"]
    for i, (_, label) in enumerate(digits[:6]):
        lines.append(f"images/d{label}/{i:03d}.png,G{label % 2},S{label},{'val' if i == 2 else 'train'}")
    (tmp_path / "catalog.csv").write_text("\n".join(lines) + "\n")
    source = open_source(catalog=str(tmp_path / "catalog.csv"), path_column="path", label_column="genus",
                         split_column="split")
    items = list(source.items())
    assert [i.label for i in items] == [f"G{label % 2}" for _, label in digits[:6]]
    assert [i.split for i in items] == ["train", "train", "val", "train", "train", "train"]
    assert [i.data for i in items] == [data for data, _ in digits[:6]]
    with pytest.raises(DataError, match=r"catalog.csv:1: no column 'taxon'; the header has: path, genus"):
        CatalogSource(str(tmp_path / "catalog.csv"), "path", "taxon")
    (tmp_path / "bad.csv").write_text("path,species,split\nimages/x.png,S1,holdout\n")
    with pytest.raises(DataError, match=r"bad.csv:2: field 'split': 'holdout' is not one of train, val, test"):
        CatalogSource(str(tmp_path / "bad.csv"), "path", "species", split_column="split")
    (tmp_path / "missing.csv").write_text("path,species\nimages/none.png,S1\n")
    with pytest.raises(DataError, match="none.png: field 'images/none.png': cannot read the image"):
        list(CatalogSource(str(tmp_path / "missing.csv"), "path", "species").items())


def test_a_catalog_row_with_another_cell_count_is_refused_and_long_cells_are_read(tmp_path):
    """`imgs/a,b.jpg,cat` under `path,label` was read as path `imgs/a`, label `b.jpg` (the extra cell dropped),
    and a cell over the csv module's 131,072 characters raised at the wrong line."""
    (tmp_path / "shift.csv").write_text("path,label\nimgs/x.jpg,dog\nimgs/a,b.jpg,cat\n")
    with pytest.raises(DataError, match=r"shift.csv:3: has 3 cells where the header has 2"):
        CatalogSource(str(tmp_path / "shift.csv"), "path", "label")
    name = "d" * 140_000
    (tmp_path / "long.csv").write_text(f"path,label\nimgs/x.jpg,{name}\n")
    assert CatalogSource(str(tmp_path / "long.csv"), "path", "label")._rows == [("imgs/x.jpg", name, None)]
    (tmp_path / "latin1.csv").write_bytes(b"path,label\nimgs/x.jpg,dog\nimgs/caf\xe9.jpg,cat\n")
    with pytest.raises(DataError, match=r"latin1.csv:3: not valid UTF-8"):
        CatalogSource(str(tmp_path / "latin1.csv"), "path", "label")


def test_open_source_wants_exactly_one_source():
    with pytest.raises(ConfigError, match="exactly one image source"):
        open_source()
    with pytest.raises(ConfigError, match="path column and its label column"):
        open_source(catalog="c.csv")


def test_a_folder_reads_webp_and_jpeg_xl_and_names_the_images_it_cannot_decode(tmp_path, caplog):
    """`.webp` and `.jxl` files (which TensorFlow's decode_image reads) and `.heic`, `.avif` (which it does not)
    were all passed over without a word. WebP and JPEG XL are listed now; the others are counted and named once,
    with an example path, and a folder with no image the decoder reads is refused saying what it holds."""
    import io
    import logging

    from PIL import Image

    from tfxc.images.sources import skipped_images_note
    from tfxc.predict import image_batches

    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "WEBP")
    for rel, data in (("cat/a.webp", out.getvalue()), ("cat/b.jxl", b"\xff\x0a"), ("cat/c.heic", b"x"),
                      ("dog/d.avif", b"x"), ("dog/e.HEIC", b"x"), ("dog/notes.txt", b"x")):
        (tmp_path / "photos" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "photos" / rel).write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="tfxc"):
        source = FolderSource(str(tmp_path / "photos"))
    assert [item.ref for item in source.items(with_bytes=False)] == ["cat/a.webp", "cat/b.jxl"]
    notes = [r.getMessage() for r in caplog.records if "decoder" in r.getMessage()]
    assert notes == [f"{tmp_path / 'photos'}: skipped 3 images in formats the decoder does not read (.heic: 2, "
                     ".avif: 1; e.g. cat/c.heic); it reads JPEG, PNG, GIF, BMP, WebP and JPEG XL: convert them "
                     "(e.g. to JPEG) to use them"], notes
    os.remove(tmp_path / "photos" / "cat" / "a.webp")
    os.remove(tmp_path / "photos" / "cat" / "b.jxl")
    for listing in (lambda: FolderSource(str(tmp_path / "photos")),
                    lambda: list(image_batches(str(tmp_path / "photos"), 8))):
        with pytest.raises(DataError, match=r"no images the decoder reads .* 3 images in formats it does not read "
                                            r"\(\.heic: 2, \.avif: 1; e\.g\. cat/c\.heic\)"):
            listing()
    assert skipped_images_note([]) is None
