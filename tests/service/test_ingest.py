"""Ingestion of every format from real files in tmp_path, every rejected input, and the dataset store."""

import hashlib
import io
import json
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from service.errors import DatasetTooLarge, InvalidDataset, NotFound, UnsupportedFormat
from service.ingest.files import (
    DatasetManifest,
    load_arrays,
    load_columns,
    load_manifest,
    load_sources,
    save_dataset,
    source_format_of,
)
from service.ingest.formats import IngestLimits, LoadedDataset, load_dataset
from service.ingest.options import IngestOptions

# --- helpers -------------------------------------------------------------------------------------


def png_bytes(
    value: int | tuple[int, ...] = 0, size: tuple[int, int] = (4, 3), mode: str = "L", fmt: str = "PNG"
) -> bytes:
    """A flat image of `value`; size is (width, height) as PIL takes it."""
    buf = io.BytesIO()
    Image.new(mode, size, value).save(buf, format=fmt)
    return buf.getvalue()


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# Five grey examples with distinct values, so order can be checked pixel by pixel.
GREY_FILES = {
    "dog/b.png": png_bytes(40),
    "dog/a.png": png_bytes(30),
    "cat/z.png": png_bytes(20),
    "cat/sub/a.png": png_bytes(10),  # nested inside a class: sorted by relative path
    "cat/a.png": png_bytes(0),
    "cat/.DS_Store": b"junk",
    "__MACOSX/cat/._a.png": b"junk",
    ".hidden/x.png": b"junk",
    "README.txt": b"not a class",
}
GREY_SOURCES = ["cat/a.png", "cat/sub/a.png", "cat/z.png", "dog/a.png", "dog/b.png"]


def check_grey(ds: LoadedDataset) -> None:
    assert ds.kind == "image" and ds.feature_names is None
    assert ds.class_names == ["cat", "dog"]
    assert ds.sources == GREY_SOURCES
    assert ds.X.dtype == np.uint8 and ds.X.shape == (5, 1, 3, 4)
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0, 0, 0, 1, 1]
    assert ds.X[:, 0, 0, 0].tolist() == [0, 10, 20, 30, 40]


# --- images --------------------------------------------------------------------------------------


def test_image_folder_grey_order_and_sources(tmp_path: Path) -> None:
    check_grey(load_dataset(write_files(tmp_path / "ds", GREY_FILES)))


def test_zip_without_and_with_wrapping_folder(tmp_path: Path) -> None:
    check_grey(load_dataset(write_zip(tmp_path / "flat.zip", GREY_FILES)))
    wrapped = {f"data/{k}": v for k, v in GREY_FILES.items()}
    wrapped["data/"] = b""  # an explicit directory entry, as zip tools write
    check_grey(load_dataset(write_zip(tmp_path / "wrapped.zip", wrapped)))


def test_any_rgb_makes_all_rgb_and_alpha_goes_over_black(tmp_path: Path) -> None:
    palette = Image.new("P", (4, 3), 0)
    palette.putpalette([255, 0, 0] + [0] * 765)
    buf = io.BytesIO()
    palette.save(buf, format="PNG")
    root = write_files(tmp_path / "ds", {
        "a/grey.png": png_bytes(50),
        "a/rgb.png": png_bytes((200, 100, 0), mode="RGB"),
        "b/rgba.png": png_bytes((200, 100, 50, 128), mode="RGBA"),
        "b/palette.png": buf.getvalue(),
        "b/la.png": png_bytes((100, 128), mode="LA"),
    })  # fmt: skip
    ds = load_dataset(root)
    assert ds.X.shape == (5, 3, 3, 4)
    assert ds.sources == ["a/grey.png", "a/rgb.png", "b/la.png", "b/palette.png", "b/rgba.png"]
    px = ds.X[:, :, 0, 0].tolist()
    assert px[0] == [50, 50, 50]  # grey repeated in all channels
    assert px[1] == [200, 100, 0]
    assert px[2] in ([50, 50, 50], [51, 51, 51])  # grey with alpha 128, over black
    assert px[3] == [255, 0, 0]
    assert all(abs(a - b) <= 1 for a, b in zip(px[4], [100, 50, 25]))  # 128/255 of the colour


def test_jpeg_any_case_suffix_and_16_bit_png(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.full((3, 4), 65535 // 2, dtype=np.uint16)).save(buf, format="PNG")
    root = write_files(tmp_path / "ds", {
        "a/1.jpg": png_bytes(100, fmt="JPEG"),
        "a/2.JPEG": png_bytes(200, fmt="JPEG"),
        "b/1.PNG": png_bytes(7),
        "b/16bit.png": buf.getvalue(),
    })  # fmt: skip
    ds = load_dataset(root)
    assert ds.X.shape == (4, 1, 3, 4)
    assert ds.sources == ["a/1.jpg", "a/2.JPEG", "b/1.PNG", "b/16bit.png"]  # "." sorts before "6"
    assert abs(int(ds.X[0, 0, 0, 0]) - 100) <= 2 and abs(int(ds.X[1, 0, 0, 0]) - 200) <= 2
    assert ds.X[2, 0, 0, 0] == 7
    assert ds.X[3, 0, 0, 0] == 127  # 32767 / 257


def test_mixed_sizes_are_resized_by_default_or_as_asked(tmp_path: Path) -> None:
    root = write_files(tmp_path / "ds", {
        "a/1.png": png_bytes(10, size=(4, 3)), "a/2.png": png_bytes(20, size=(8, 8)),
        "b/1.png": png_bytes(30, size=(5, 2)), "b/2.png": png_bytes(40, size=(4, 3)),
    })  # fmt: skip
    ds = load_dataset(root, IngestOptions(resize=(6, 7)))
    assert ds.X.shape == (4, 1, 6, 7)
    assert ds.X[:, 0].reshape(4, -1).min(axis=1).tolist() == [10, 20, 30, 40]
    by_default = load_dataset(root)  # once refused; now the median size (photos.plan_images)
    assert by_default.X.shape == (4, 1, 3, 4)  # heights 3 8 2 3 -> 3; widths 4 8 5 4 -> 4.5 -> 4 (to even)
    assert by_default.report["images"]["resized_to"] == [3, 4]


# --- tables --------------------------------------------------------------------------------------


def test_csv_string_labels_sorted_and_row_sources(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", "x,label,flag\n1.5,zebra,true\n2,ant,false\n-3,zebra,true\n4,ant,false\n")
    ds = load_dataset(path)
    assert ds.kind == "tabular"
    assert ds.feature_names == ["x", "flag"]
    assert ds.class_names == ["ant", "zebra"]
    assert ds.y.tolist() == [1, 0, 1, 0]
    assert ds.sources == ["row 0", "row 1", "row 2", "row 3"]
    assert ds.X.dtype == np.float32
    np.testing.assert_array_equal(ds.X, [[1.5, 1], [2, 0], [-3, 1], [4, 0]])


def test_csv_int_labels_sort_numerically_with_custom_label_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.CSV", "cls,a\n10,1\n2,2\n1,3\n10,4\n2,5\n1,6\n")
    ds = load_dataset(path, IngestOptions(label_column="cls"))
    assert ds.class_names == ["1", "2", "10"]
    assert ds.y.tolist() == [2, 1, 0, 2, 1, 0]
    assert ds.feature_names == ["a"]


def test_parquet_both_suffixes_with_dictionary_and_int_columns(tmp_path: Path) -> None:
    table = pa.table({
        "label": pa.array(["b", "a", "b", "a"]).dictionary_encode(),
        "f_int": pa.array([1, 2, 3, 4], pa.int8()),
        "f_float": pa.array([0.5, 0.25, 0.0, -1.0]),
    })  # fmt: skip
    for suffix in (".parquet", ".pq"):
        pq.write_table(table, tmp_path / f"d{suffix}")
        ds = load_dataset(tmp_path / f"d{suffix}")
        assert ds.class_names == ["a", "b"] and ds.y.tolist() == [1, 0, 1, 0]
        assert ds.feature_names == ["f_int", "f_float"]
        np.testing.assert_array_equal(ds.X[:, 0], [1, 2, 3, 4])


# --- npz -----------------------------------------------------------------------------------------


def test_npz_tabular_with_string_labels(tmp_path: Path) -> None:
    X = np.arange(8, dtype=np.float64).reshape(4, 2)
    np.savez(tmp_path / "d.npz", X=X, y=np.array(["b", "a", "b", "a"]))
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.kind == "tabular" and ds.feature_names == ["f0", "f1"]
    assert ds.class_names == ["a", "b"] and ds.y.tolist() == [1, 0, 1, 0]
    assert ds.sources == ["index 0", "index 1", "index 2", "index 3"]
    np.testing.assert_array_equal(ds.X, X.astype(np.float32))


@pytest.mark.parametrize(
    "X",
    [
        np.arange(4 * 6 * 5, dtype=np.uint8).reshape(4, 6, 5),  # (n, H, W) grey
        np.arange(4 * 6 * 5, dtype=np.uint8).reshape(4, 1, 6, 5),  # (n, 1, H, W)
        np.arange(4 * 6 * 5, dtype=np.uint8).reshape(4, 6, 5, 1),  # (n, H, W, 1)
        np.arange(4 * 6 * 5, dtype=np.int64).reshape(4, 6, 5),  # integers in 0..255
        np.arange(4 * 6 * 5, dtype=np.float32).reshape(4, 6, 5),  # floats in [0, 255]
        np.arange(4 * 6 * 5, dtype=np.float32).reshape(4, 6, 5) / 255.0,  # floats in [0, 1] -> scaled
    ],
)
def test_npz_grey_image_layouts(tmp_path: Path, X: np.ndarray) -> None:
    np.savez_compressed(tmp_path / "d.npz", X=X, y=np.array([3, 7, 3, 7]))
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.kind == "image" and ds.X.dtype == np.uint8 and ds.X.shape == (4, 1, 6, 5)
    np.testing.assert_array_equal(ds.X.reshape(-1), np.arange(120))
    assert ds.class_names == ["3", "7"] and ds.y.tolist() == [0, 1, 0, 1]


def test_npz_rgb_channels_last_with_class_names_and_resize(tmp_path: Path) -> None:
    X = np.zeros((4, 6, 6, 3), dtype=np.uint8)
    X[..., 0] = 255
    names = np.array(["zebra", "ant", "cat"])  # kept in the given order: y indexes it
    np.savez(tmp_path / "d.npz", X=X, y=np.array([0, 1, 0, 1]), class_names=names)
    with pytest.raises(InvalidDataset, match="class 'cat' has 0 images"):
        load_dataset(tmp_path / "d.npz")
    np.savez(tmp_path / "d.npz", X=X, y=np.array([0, 1, 0, 1]), class_names=names[:2])
    ds = load_dataset(tmp_path / "d.npz", IngestOptions(resize=(3, 2)))
    assert ds.class_names == ["zebra", "ant"] and ds.y.tolist() == [0, 1, 0, 1]
    assert ds.X.shape == (4, 3, 3, 2)
    assert (ds.X[:, 0] == 255).all() and (ds.X[:, 1:] == 0).all()


# --- rejected input ------------------------------------------------------------------------------


def reject(path: Path, match: str, error: type[InvalidDataset] = InvalidDataset,
           limits: IngestLimits = IngestLimits(), **options: object) -> str:
    with pytest.raises(error, match=match) as info:
        load_dataset(path, IngestOptions(**options), limits)  # type: ignore[arg-type]
    assert path.name in info.value.message or str(path) in info.value.message
    return info.value.message


def test_empty_data(tmp_path: Path) -> None:
    reject(write_csv(tmp_path / "e.csv", ""), "empty")
    reject(write_csv(tmp_path / "h.csv", "a,label\n"), "no data rows")
    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    (tmp_path / "imgs" / "dog").mkdir()
    reject(tmp_path / "imgs", "no images found in the class folders 'cat', 'dog'")
    (tmp_path / "void").mkdir()
    reject(tmp_path / "void", "no images found")
    np.savez(tmp_path / "e.npz", X=np.zeros((0, 3)), y=np.zeros(0, dtype=int))
    reject(tmp_path / "e.npz", "no examples")


def test_single_class(tmp_path: Path) -> None:
    reject(write_csv(tmp_path / "d.csv", "a,label\n1,cat\n2,cat\n"), "only one class \\('cat'\\)")
    root = write_files(tmp_path / "ds", {"cat/1.png": png_bytes(), "cat/2.png": png_bytes()})
    reject(root, "only one class \\('cat'\\)")


def test_class_with_fewer_than_two_examples(tmp_path: Path) -> None:
    msg = reject(write_csv(tmp_path / "d.csv", "a,label\n1,cat\n2,cat\n3,dog\n4,emu\n"), "class 'dog' has 1 example;")
    assert "'emu'" in msg
    root = write_files(tmp_path / "ds", {"cat/1.png": png_bytes(), "cat/2.png": png_bytes(), "dog/1.png": png_bytes()})
    reject(root, "class 'dog' has 1 image;")


def test_missing_label_column_lists_columns(tmp_path: Path) -> None:
    reject(write_csv(tmp_path / "d.csv", "a,b\n1,2\n"), "no label column 'label'; the columns are 'a', 'b'")
    reject(write_csv(tmp_path / "d.csv", "a,label\n1,2\n"), "no label column 'target'", label_column="target")


def test_missing_label_value_names_the_row(tmp_path: Path) -> None:
    reject(write_csv(tmp_path / "s.csv", "a,label\n1,cat\n2,dog\n3,\n4,dog\n"), "row 2 has no label in column 'label'")
    reject(write_csv(tmp_path / "i.csv", "a,label\n1,0\n2,\n3,1\n"), "row 1 has no label")
    pq.write_table(pa.table({"a": [1, 2, 3, 4], "label": ["x", "y", "x", None]}), tmp_path / "d.parquet")
    reject(tmp_path / "d.parquet", "row 3 has no label")
    reject(write_csv(tmp_path / "f.csv", "a,label\n1,0\n2,1.5\n"), "row 1 has label 1.5")


def test_table_gaps_are_imputed_but_inf_names_row_and_column(tmp_path: Path) -> None:
    """Once refused, a gap (empty cell or NaN) in a table is now the column's median plus a missing
    indicator; infinities and values beyond float32 are still refused by row and column."""
    ds = load_dataset(write_csv(tmp_path / "m.csv", "a,b,label\n1,2,x\n3,nan,y\n,5,x\n6,7,y\n"))
    assert ds.feature_names == ["a", "a(missing)", "b", "b(missing)"]
    np.testing.assert_array_equal(ds.X[:, 0], [1, 3, np.median([1, 3, 6]), 6])
    np.testing.assert_array_equal(ds.X[:, 1], [0, 0, 1, 0])
    np.testing.assert_array_equal(ds.X[:, 2], [2, np.median([2, 5, 7]), 5, 7])
    inf = write_csv(tmp_path / "i.csv", "a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,-inf,y\n")
    reject(inf, "row 3, column 'b' is infinite")
    reject(write_csv(tmp_path / "o.csv", "a,label\n1,x\n1e300,y\n"), "row 1, column 'a' is 1e\\+300, beyond float32")
    X = np.ones((4, 3))
    X[2, 1] = np.nan
    np.savez(tmp_path / "d.npz", X=X, y=np.array([0, 1, 0, 1]))
    reject(tmp_path / "d.npz", "index 2, column 'f1' is missing or NaN")  # NPZ features are given as they are


def test_string_and_timestamp_features_are_encoded_not_refused(tmp_path: Path) -> None:
    """Once refused as non-numeric: a string column is now a category, a timestamp its date parts."""
    ds = load_dataset(write_csv(tmp_path / "d.csv", "a,b,label\n1,2,x\n3,4.5,y\n5,abc,x\n6,abc,y\n"))
    roles = {r["column"]: r["role"] for r in ds.report["columns"]}
    assert roles == {"a": "numeric", "b": "categorical", "label": "label"}
    assert ds.feature_names[0] == "a" and all(f.startswith("b=") for f in ds.feature_names[1:])
    when = pa.array([0, 86400 * 40, 86400 * 400, 86400 * 800], pa.timestamp("s"))
    pq.write_table(pa.table({"when": when, "label": [0, 1, 0, 1]}), tmp_path / "t.pq")
    ds = load_dataset(tmp_path / "t.pq")
    assert ds.feature_names == ["when.year", "when.month", "when.dayofweek"]
    assert ds.X[:, 0].tolist() == [1970, 1970, 1971, 1972]


def test_corrupt_images_name_the_file(tmp_path: Path) -> None:
    good = {"cat/1.png": png_bytes(), "cat/2.png": png_bytes(), "dog/1.png": png_bytes()}
    root = write_files(tmp_path / "a", {**good, "dog/2.png": b"not an image at all"})
    reject(root, "cannot read image 'dog/2.png' \\(not a PNG, JPEG, WebP, BMP or TIFF file\\)")
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (3, 4), dtype=np.uint8)).save(noise, format="PNG")
    root = write_files(tmp_path / "b", {**good, "dog/2.png": noise.getvalue()[:-30]})  # header intact, data cut
    reject(root, "cannot read image 'dog/2.png'")
    reject(write_zip(tmp_path / "c.zip", {**good, "dog/2.jpg": b"\xff\xd8garbage"}), "cannot read image 'dog/2.jpg'")


def test_skip_unreadable_leaves_out_bad_files_lists_them_and_keeps_the_rest(tmp_path: Path) -> None:
    """--skip-unreadable: a file that is not an image, one with a cut body (its header reads, its
    pixels do not) and one with a non-image suffix are left out and listed with why; the readable
    images load as they would alone. A class left with no readable image, or no readable image at
    all, is still refused by name, and the option is refused for a table."""
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (3, 4), dtype=np.uint8)).save(noise, format="PNG")
    good = {"cat/1.png": png_bytes(), "cat/2.png": png_bytes(), "dog/1.png": png_bytes(), "dog/3.png": png_bytes()}
    bad = {"dog/2.png": b"not an image at all", "cat/3.png": noise.getvalue()[:-30], "cat/notes.txt": b"x"}
    skip = IngestOptions(skip_unreadable=True)
    for path in (write_files(tmp_path / "a", {**good, **bad}), write_zip(tmp_path / "a.zip", {**good, **bad})):
        ds = load_dataset(path, skip)
        alone = load_dataset(write_files(tmp_path / f"alone-{path.suffix}", good))
        assert ds.sources == alone.sources == ["cat/1.png", "cat/2.png", "dog/1.png", "dog/3.png"]
        np.testing.assert_array_equal(ds.X, alone.X)
        np.testing.assert_array_equal(ds.y, alone.y)
        skipped = ds.report["images"]["skipped"]
        assert skipped["n"] == 3 and ds.report["images"]["n_images"] == 4
        why = {f["file"]: f["why"] for f in skipped["files"]}
        assert set(why) == set(bad) and "not a PNG, JPEG" in why["dog/2.png"] and "cannot read image" in why["cat/3.png"]
    # without the option: refused as before, saying what the option does
    reject(write_files(tmp_path / "b", {**good, "dog/2.png": b"junk"}), "cannot read image 'dog/2.png' .*; --skip-unreadable")
    only_bad_dog = write_files(tmp_path / "c", {"cat/1.png": png_bytes(), "dog/2.png": b"junk"})
    with pytest.raises(InvalidDataset, match="class 'dog' has no readable image; the first left out: .*dog/2.png"):
        load_dataset(only_bad_dog, skip)
    with pytest.raises(InvalidDataset, match="no readable images"):
        load_dataset(write_files(tmp_path / "d", {"cat/1.png": b"junk", "dog/2.png": b"junk"}), skip)
    with pytest.raises(InvalidDataset, match="--skip-unreadable applies to a folder or zip of image files"):
        load_dataset(write_csv(tmp_path / "t.csv", "a,label\n1,x\n2,y\n3,x\n4,y\n"), skip)


def test_non_image_inside_class_folder(tmp_path: Path) -> None:
    root = write_files(tmp_path / "ds", {"cat/1.png": png_bytes(), "cat/notes.txt": b"x", "dog/1.png": png_bytes()})
    reject(root, "'cat/notes.txt' is not a PNG, JPEG, WebP, BMP or TIFF image \\(supported: .png .jpg .jpeg .webp")


def test_unsupported_file_type_lists_supported(tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("x")
    msg = reject(tmp_path / "d.txt", "unsupported file type '.txt'", UnsupportedFormat)
    assert all(s in msg for s in (".zip", ".csv", ".parquet", ".pq", ".npz", "folder"))
    (tmp_path / "noext").write_text("x")
    reject(tmp_path / "noext", "without a suffix", UnsupportedFormat)


def test_path_that_does_not_exist(tmp_path: Path) -> None:
    reject(tmp_path / "nope.csv", "does not exist")


def test_directory_with_files_but_no_class_folders(tmp_path: Path) -> None:
    root = write_files(tmp_path / "flat", {"1.png": png_bytes(), "2.png": png_bytes()})
    reject(root, "found files but no class subfolders")
    root = write_files(tmp_path / "stray", {"a/1.png": png_bytes(), "b/1.png": png_bytes(), "x.png": png_bytes()})
    reject(root, "image 'x.png' is not inside a class subfolder")


@pytest.mark.parametrize(
    "evil", ["../evil.png", "cat/../../evil.png", "/abs/evil.png", "..\\evil.png", "C:/evil.png"]
)
def test_zip_slip_rejects_the_archive(tmp_path: Path, evil: str) -> None:
    files = {"cat/1.png": png_bytes(), "cat/2.png": png_bytes(), "dog/1.png": png_bytes(), "dog/2.png": png_bytes()}
    path = write_zip(tmp_path / "evil.zip", {**files, evil: png_bytes()})
    reject(path, re.escape(f"unsafe entry {evil!r}"))
    assert sorted(p.name for p in tmp_path.parent.rglob("evil.png")) == []  # nothing extracted anywhere


def test_zip_bomb_by_ratio_and_by_total_size(tmp_path: Path) -> None:
    files = {"cat/1.png": png_bytes(), "cat/2.png": png_bytes(), "dog/1.png": png_bytes()}
    bomb = write_zip(tmp_path / "bomb.zip", {**files, "dog/2.png": bytes(1_000_000)})  # ~1000x
    reject(bomb, "entry 'dog/2.png' expands \\d+x .*zip bomb", DatasetTooLarge)
    ok = write_zip(tmp_path / "ok.zip", {**files, "dog/2.png": png_bytes()})
    limits = IngestLimits(max_archive_bytes=100)
    reject(ok, "uncompressed size .* exceeds the limit of 100 bytes", DatasetTooLarge, limits=limits)


def test_zip_entry_larger_than_declared_is_not_read_past(tmp_path: Path) -> None:
    files = {"cat/1.png": png_bytes(), "cat/2.png": png_bytes(), "dog/1.png": png_bytes(), "dog/2.png": png_bytes(1)}
    path = write_zip(tmp_path / "liar.zip", files, compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")  # the last entry's directory record: declare 10 bytes
    struct.pack_into("<I", data, central + 24, 10)
    path.write_bytes(bytes(data))
    reject(path, "'dog/2.png'")


def test_too_many_files(tmp_path: Path) -> None:
    files = {"cat/1.png": png_bytes(), "cat/2.png": png_bytes(), "dog/1.png": png_bytes(), "dog/2.png": png_bytes()}
    limits = IngestLimits(max_files=3)
    reject(write_files(tmp_path / "ds", files), "more than 3 files", DatasetTooLarge, limits=limits)
    reject(write_zip(tmp_path / "d.zip", files), "4 entries; the limit is 3", DatasetTooLarge, limits=limits)


def test_decoded_pixels_limit(tmp_path: Path) -> None:
    rgb = png_bytes((1, 2, 3), size=(100, 100), mode="RGB")
    root = write_files(tmp_path / "ds", {f"{c}/{i}.png": rgb for c in "ab" for i in (1, 2)})
    limits = IngestLimits(max_decoded_bytes=50_000)  # 30,000 bytes per 100x100 RGB image: the second passes it
    reject(root, "'a/2.png' \\(100x100\\) would exceed .* 4 images at 3x100x100 take 120,000 bytes",
           DatasetTooLarge, limits=limits)
    np.savez(tmp_path / "d.npz", X=np.zeros((4, 2, 2), dtype=np.uint8), y=np.array([0, 1, 0, 1]))
    reject(tmp_path / "d.npz", "resizing to 200x200 would exceed", DatasetTooLarge, limits=limits, resize=(200, 200))


def test_not_a_zip(tmp_path: Path) -> None:
    (tmp_path / "d.zip").write_bytes(b"plain text")
    reject(tmp_path / "d.zip", "not a valid zip archive")


def test_npz_problems(tmp_path: Path) -> None:
    np.savez(tmp_path / "len.npz", X=np.zeros((4, 2)), y=np.zeros(3, dtype=int))
    reject(tmp_path / "len.npz", "X has 4 examples but y has 3 labels")
    np.savez(tmp_path / "nox.npz", features=np.zeros((4, 2)), y=np.zeros(4, dtype=int))
    reject(tmp_path / "nox.npz", "missing array 'X' \\(or 'embeddings', vectors of your own\\); found 'features', 'y'")
    np.savez(tmp_path / "noy.npz", X=np.zeros((4, 2)))
    reject(tmp_path / "noy.npz", "missing array 'y'; found 'X'")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "obj.npz", "w") as zf:
        zf.write(tmp_path / "obj.npy", "y.npy")
        zf.writestr("X.npy", (tmp_path / "obj.npy").read_bytes())
    reject(tmp_path / "obj.npz", "cannot read array 'X' .*allow_pickle")
    np.savez(tmp_path / "idx.npz", X=np.zeros((4, 2)), y=np.array([0, 1, 5, 1]), class_names=np.array(["a", "b"]))
    reject(tmp_path / "idx.npz", "index 2 has label 5, outside class_names")
    np.savez(tmp_path / "px.npz", X=np.full((4, 2, 2), 300), y=np.array([0, 1, 0, 1]))
    reject(tmp_path / "px.npz", "index 0 has pixel value 300")
    np.savez(tmp_path / "shape.npz", X=np.zeros((4, 5, 5, 5)), y=np.array([0, 1, 0, 1]))
    reject(tmp_path / "shape.npz", "need 1 or 3 channels")


def test_resize_on_tabular_is_rejected(tmp_path: Path) -> None:
    reject(write_csv(tmp_path / "d.csv", "a,label\n1,x\n"), "resize applies to images only", resize=(2, 2))


# --- dataset store -------------------------------------------------------------------------------


def loaded_images() -> LoadedDataset:
    X = np.arange(4 * 3 * 2 * 2, dtype=np.uint8).reshape(4, 3, 2, 2)
    sources = ["cat/1.png", "dog/1.png", "cat/2.png", "dog/2.png"]
    return LoadedDataset(X, np.array([0, 1, 0, 1]), ["cat", "dog"], sources, kind="image", feature_names=None)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "d.csv", "a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n")
    loaded = load_dataset(src)
    store = tmp_path / "datasets"
    manifest = save_dataset(loaded, store, "ds_1", "my data", source_format_of(src))
    assert sorted(p.name for p in store.iterdir()) == ["ds_1"]
    files = ["X.npy", "columns.json", "manifest.json", "sources.json", "table.parquet", "y.npy"]
    assert sorted(p.name for p in (store / "ds_1").iterdir()) == files
    assert load_columns(store, "ds_1") == loaded.columns and loaded.columns["feature_column"] == ["a", "b"]
    X, y = load_arrays(store, "ds_1")
    assert isinstance(X, np.memmap) and not X.flags.writeable
    np.testing.assert_array_equal(X, loaded.X)
    np.testing.assert_array_equal(y, loaded.y)
    assert y.dtype == np.int64
    X2, _ = load_arrays(store, "ds_1", mmap=False)
    assert not isinstance(X2, np.memmap)
    assert load_sources(store, "ds_1") == ["row 0", "row 1", "row 2", "row 3"]
    assert load_manifest(store, "ds_1") == manifest
    expected = hashlib.sha256((store / "ds_1" / "X.npy").read_bytes() + (store / "ds_1" / "y.npy").read_bytes())
    assert manifest.sha256 == expected.hexdigest()
    assert (manifest.kind, manifest.n_examples, manifest.n_classes) == ("tabular", 4, 2)
    assert (manifest.x_shape, manifest.x_dtype, manifest.source_format) == ([4, 2], "float32", "csv")
    assert manifest.feature_names == ["a", "b"] and manifest.class_names == ["x", "y"]
    assert DatasetManifest.from_json(json.loads(json.dumps(manifest.to_json()))) == manifest


def test_save_refuses_an_existing_id_and_bad_ids(tmp_path: Path) -> None:
    store = tmp_path / "datasets"
    save_dataset(loaded_images(), store, "a", "first", "image_folder")
    with pytest.raises(FileExistsError):
        save_dataset(loaded_images(), store, "a", "second", "image_folder")
    assert load_manifest(store, "a").name == "first"
    for bad in ["../x", "a/b", "", "x" * 65, "a.b", "a\n"]:
        with pytest.raises(ValueError, match="dataset_id"):
            save_dataset(loaded_images(), store, bad, "n", "zip")
    assert sorted(p.name for p in store.iterdir()) == ["a"]
    with pytest.raises(NotFound, match="'missing'"):
        load_arrays(store, "missing")


def test_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    X = np.array([[object()]] * 4, dtype=object)  # (4, 1) objects: np.save refuses them mid-write
    sources = ["index 0", "index 1", "index 2", "index 3"]
    bad = LoadedDataset(X, np.array([0, 1, 0, 1]), ["a", "b"], sources, kind="tabular", feature_names=["f0"])
    store = tmp_path / "datasets"
    with pytest.raises(ValueError, match="allow_pickle"):
        save_dataset(bad, store, "broken", "n", "npz")
    assert list(store.iterdir()) == []


def test_source_format_of(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    names = ("folder", "a.zip", "a.csv", "a.parquet", "a.PQ", "a.npz", "a.jsonl", "a.NDJSON")
    got = [source_format_of(tmp_path / n) for n in names]
    assert got == ["image_folder", "zip", "csv", "parquet", "parquet", "npz", "jsonl", "jsonl"]
    with pytest.raises(UnsupportedFormat, match="'.json'"):
        source_format_of(tmp_path / "a.json")
