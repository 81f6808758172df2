"""Photos as they come (issue 16, item 3): every format and mode decoded to the right pixels, EXIF
orientation, mixed sizes resized by default and reported, refusals that name the file, a zip like
its folder, the report on a real server, one CLI job, and ingest memory measured in a subprocess."""

import io
import json
import os
import subprocess
import sys
import zipfile
from contextlib import nullcontext
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from service.cli.main import app
from service.errors import DatasetTooLarge, InvalidDataset
from service.ingest.formats import IngestLimits, load_dataset
from service.ingest.options import IngestOptions
from service.ingest.photos import (
    DECODE_THREADS,
    MAX_DEFAULT_SIDE,
    THREADS_FROM_PIXELS,
    decode_images,
    default_threads,
    plan_images,
    read_headers,
)
from tests.service.conftest import Server

ROOT = Path(__file__).resolve().parents[2]

# --- helpers -------------------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str, **save: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def flat(mode: str, value: int | tuple[int, ...], size: tuple[int, int] = (4, 3)) -> Image.Image:
    return Image.new(mode, size, value)  # size is (width, height), as PIL takes it


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files.items():
            zf.writestr(rel, data)
    return path


def pixel(ds, source: str) -> list[int]:  # type: ignore[no-untyped-def]
    """The top-left pixel of one example, one value per channel."""
    return ds.X[ds.sources.index(source), :, 0, 0].tolist()


def palette_with_transparency() -> Image.Image:
    """Left half palette entry 0 (red, fully transparent), right half entry 1 (opaque green)."""
    img = Image.new("P", (4, 3), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    for x in (2, 3):
        for y in range(3):
            img.putpixel((x, y), 1)
    img.info["transparency"] = 0
    return img


def grey16(values: list[list[int]]) -> Image.Image:
    return Image.fromarray(np.array(values, dtype=np.uint16))


# --- formats and modes ---------------------------------------------------------------------------


def test_every_format_decodes_to_its_pixels(tmp_path: Path) -> None:
    rgb = flat("RGB", (200, 100, 50))
    files = {
        "a/png.png": encode(rgb, "PNG"),
        "a/jpeg.jpg": encode(rgb, "JPEG", quality=95),
        "a/webp.webp": encode(rgb, "WEBP", lossless=True),
        "b/bmp.bmp": encode(rgb, "BMP"),
        "b/tiff.tif": encode(rgb, "TIFF"),
        "b/tiff2.TIFF": encode(rgb, "TIFF", compression="tiff_deflate"),
    }
    ds = load_dataset(write_files(tmp_path / "ds", files))
    assert ds.X.shape == (6, 3, 3, 4) and ds.X.dtype == np.uint8
    for source in ds.sources:
        got = ds.X[ds.sources.index(source)].reshape(3, -1)
        tolerance = 3 if source.endswith(".jpg") else 0  # JPEG is lossy, the others exact
        assert np.abs(got.astype(int) - np.array([[200], [100], [50]])).max() <= tolerance, source
    report = ds.report["images"]
    assert report["formats"] == {"BMP": 1, "JPEG": 1, "PNG": 1, "TIFF": 2, "WEBP": 1}
    assert report["resized_to"] is None and report["channels"] == 3


def test_every_mode_decodes_to_grey_or_rgb(tmp_path: Path) -> None:
    """RGB, grey, RGBA and LA over black, palette with a transparent entry, 16-bit grey scaled (not
    clipped), 1-bit; one colour image makes every image RGB."""
    files = {
        "a/rgb.png": encode(flat("RGB", (10, 20, 30)), "PNG"),
        "a/grey.png": encode(flat("L", 77), "PNG"),
        "a/rgba.png": encode(flat("RGBA", (200, 100, 50, 128)), "PNG"),
        "a/la.png": encode(flat("LA", (100, 255)), "PNG"),
        "b/palette.png": encode(palette_with_transparency(), "PNG"),
        "b/grey16.png": encode(grey16([[65535, 32768, 0, 257]] * 3), "PNG"),
        "b/bits.png": encode(flat("1", 1), "PNG"),
        "b/rgba.webp": encode(flat("RGBA", (200, 100, 50, 128)), "WEBP", lossless=True),
    }
    ds = load_dataset(write_files(tmp_path / "ds", files))
    assert ds.X.shape == (8, 3, 3, 4)
    assert pixel(ds, "a/rgb.png") == [10, 20, 30]
    assert pixel(ds, "a/grey.png") == [77, 77, 77]  # grey repeated in all channels
    assert all(abs(a - b) <= 1 for a, b in zip(pixel(ds, "a/rgba.png"), [100, 50, 25]))  # 128/255 of it
    assert pixel(ds, "a/la.png") == [100, 100, 100]  # opaque
    palette = ds.X[ds.sources.index("b/palette.png"), :, 0].T.tolist()  # row 0: (W, C)
    assert palette == [[0, 0, 0], [0, 0, 0], [0, 255, 0], [0, 255, 0]]  # transparent red over black
    assert ds.X[ds.sources.index("b/grey16.png"), 0, 0].tolist() == [255, 128, 0, 1]  # 65535 32768 0 257
    assert pixel(ds, "b/bits.png") == [255, 255, 255]
    assert all(abs(a - b) <= 1 for a, b in zip(pixel(ds, "b/rgba.webp"), [100, 50, 25]))
    report = ds.report["images"]
    assert report["modes"] == {"1": 1, "I;16": 1, "L": 1, "LA": 1, "P": 1, "RGB": 1, "RGBA": 2}
    assert report["channels"] == 3
    assert report["channels_why"] == "4 of 8 images are in colour: the grey ones are converted to RGB"


def test_all_grey_stays_one_channel(tmp_path: Path) -> None:
    files = {f"{c}/{i}.png": encode(flat("L", 10 * i), "PNG") for c in "ab" for i in (1, 2)}
    files["b/16.png"] = encode(grey16([[32768] * 4] * 3), "PNG")
    ds = load_dataset(write_files(tmp_path / "ds", files))
    assert ds.X.shape == (5, 1, 3, 4)
    assert pixel(ds, "b/16.png") == [128]
    assert ds.report["images"]["channels"] == 1 and ds.report["images"]["channels_why"] == "all images are grey"


def arrow(size: tuple[int, int] = (24, 16)) -> Image.Image:
    """A picture whose every orientation differs: dark, with a bright block top-left, a mid one top-right."""
    img = np.full((size[1], size[0], 3), 20, dtype=np.uint8)
    img[:8, :8] = 250
    img[:8, -8:] = 130
    return Image.fromarray(img)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(arrow(), "JPEG", quality=95, exif=exif.tobytes())
    ds = load_dataset(write_files(tmp_path / "ds", {f"{c}/{i}.jpg": data for c in "ab" for i in (1, 2)}))
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    assert ds.X.shape == (4, 3, *upright.shape[:2])
    np.testing.assert_array_equal(ds.X[0].transpose(1, 2, 0), upright)
    assert ds.report["images"]["oriented_by_exif"] == (0 if orientation == 1 else 4)
    if orientation == 6:  # turned 90 degrees clockwise: 24 wide x 16 high becomes 16 wide x 24 high
        assert upright.shape[:2] == (24, 16) and ds.X[0, 0, 0, -1] > 200  # the top-left block is now top-right


@pytest.mark.parametrize("fmt,save", [("WEBP", {"lossless": True}), ("TIFF", {}), ("PNG", {})])
@pytest.mark.parametrize("orientation", [3, 6])
def test_exif_orientation_in_webp_tiff_and_png(tmp_path: Path, fmt: str, save: dict, orientation: int) -> None:
    """As ImageOps.exif_transpose sees it (Pillow's TIFF reader turns TIFFs itself while loading)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(arrow(), fmt, exif=exif.tobytes(), **save)
    ds = load_dataset(write_files(tmp_path / "ds", {f"{c}/{i}.{fmt.lower()}": data for c in "ab" for i in (1, 2)}))
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert upright.shape[:2] == ((16, 24) if orientation == 3 else (24, 16))
    np.testing.assert_array_equal(ds.X[0].transpose(1, 2, 0), upright)


@pytest.mark.parametrize("exif", [b"Exif\x00\x00garbage", b"Exif\x00\x00II*\x00\xff\xff\xff\x7f",
                                  b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03"])
def test_a_corrupt_exif_block_leaves_the_photo_as_stored(tmp_path: Path, exif: bytes) -> None:
    data = encode(arrow(), "JPEG", quality=95, exif=exif)
    with pytest.warns(UserWarning) if b"II*" in exif or b"MM" in exif else nullcontext():  # Pillow's own warning
        ds = load_dataset(write_files(tmp_path / "ds", {f"{c}/{i}.jpg": data for c in "ab" for i in (1, 2)}))
    assert ds.X.shape == (4, 3, 16, 24) and ds.report["images"]["oriented_by_exif"] == 0


def test_exif_orientation_in_a_mixed_size_folder(tmp_path: Path) -> None:
    """Sizes are planned upright: a 24x16 photo turned by EXIF counts as 16 wide x 24 high."""
    exif = Image.Exif()
    exif[0x0112] = 6
    turned = encode(arrow(), "JPEG", quality=95, exif=exif.tobytes())
    upright = encode(arrow((16, 24)), "JPEG", quality=95)
    ds = load_dataset(write_files(tmp_path / "ds", {"a/1.jpg": turned, "a/2.jpg": turned, "b/1.jpg": upright,
                                                    "b/2.jpg": upright}))
    assert ds.report["images"]["resized_to"] is None and ds.X.shape == (4, 3, 24, 16)


# --- sizes ---------------------------------------------------------------------------------------


def mixed_sizes() -> dict[str, bytes]:
    sizes = {"a/1.png": (30, 20), "a/2.png": (100, 50), "a/3.png": (64, 48), "b/1.png": (90, 60),
             "b/2.png": (120, 80)}  # (width, height)
    return {rel: encode(flat("L", 10 * (i + 1), size), "PNG") for i, (rel, size) in enumerate(sizes.items())}


def test_mixed_sizes_resize_to_the_median_by_default_and_say_so(tmp_path: Path) -> None:
    files = mixed_sizes()
    ds = load_dataset(write_files(tmp_path / "ds", files))
    heights = [Image.open(io.BytesIO(b)).height for b in files.values()]
    widths = [Image.open(io.BytesIO(b)).width for b in files.values()]
    median = [int(np.median(heights)), int(np.median(widths))]
    report = ds.report["images"]
    assert report["sizes"] == {"min": [min(heights), min(widths)], "median": median,
                               "max": [max(heights), max(widths)]}
    assert max(median) > MAX_DEFAULT_SIDE  # 50x90: the longer side is scaled to the cap, aspect kept
    scale = MAX_DEFAULT_SIDE / max(median)
    expected = [round(median[0] * scale), round(median[1] * scale)]
    assert report["resized_to"] == expected and ds.X.shape == (5, 1, *expected)
    assert "5 sizes" in report["why"] and f"median {median[0]}x{median[1]}" in report["why"]
    assert "--resize" in report["why"] and f"{MAX_DEFAULT_SIDE} px" in report["why"]
    assert ds.X.reshape(5, -1).min(axis=1).tolist() == [10, 20, 30, 40, 50]  # flat images stay flat


def test_small_mixed_sizes_keep_the_median_uncapped(tmp_path: Path) -> None:
    files = {"a/1.png": encode(flat("L", 1, (10, 8)), "PNG"), "a/2.png": encode(flat("L", 2, (12, 6)), "PNG"),
             "b/1.png": encode(flat("L", 3, (16, 12)), "PNG")}
    files["b/2.png"] = files["a/1.png"]
    ds = load_dataset(write_files(tmp_path / "ds", files))
    assert ds.report["images"]["resized_to"] == [8, 11] and ds.X.shape == (4, 1, 8, 11)  # medians 8, 11


def test_resize_overrides_the_default(tmp_path: Path) -> None:
    ds = load_dataset(write_files(tmp_path / "ds", mixed_sizes()), IngestOptions(resize=(7, 9)))
    assert ds.X.shape == (5, 1, 7, 9) and ds.report["images"]["resized_to"] == [7, 9]
    assert "resize 7x9 was asked for" in ds.report["images"]["why"]


def test_equal_sizes_are_kept(tmp_path: Path) -> None:
    files = {f"{c}/{i}.png": encode(flat("RGB", (i, 0, 0), (100, 90)), "PNG") for c in "ab" for i in (1, 2)}
    ds = load_dataset(write_files(tmp_path / "ds", files))
    assert ds.X.shape == (4, 3, 90, 100)  # larger than the default cap: equal sizes are never resized
    assert ds.report["images"]["resized_to"] is None and "kept as they are" in ds.report["images"]["why"]


def test_large_jpeg_decoded_at_reduced_scale_matches_a_full_decode(tmp_path: Path) -> None:
    """JPEGs much larger than the target decode at 1/2..1/8 scale (libjpeg's draft mode); the result
    stays close to a full decode resized the same way."""
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).resize((640, 480), Image.BICUBIC)
    data = encode(big, "JPEG", quality=90)
    ds = load_dataset(write_files(tmp_path / "ds", {f"{c}/{i}.jpg": data for c in "ab" for i in (1, 2)}),
                      IngestOptions(resize=(48, 64)))
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((64, 48), Image.BILINEAR))
    diff = np.abs(ds.X[0].transpose(1, 2, 0).astype(int) - full.astype(int))
    assert diff.mean() < 4, diff.mean()


# --- parallel decoding ---------------------------------------------------------------------------


def test_threads_give_the_same_array_and_name_the_first_bad_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    files = {f"c{i % 3}/{i:03d}.png": encode(Image.fromarray(rng.integers(0, 255, (5 + i % 7, 6, 3), dtype=np.uint8)),
                                               "PNG") for i in range(300)}
    root = write_files(tmp_path / "ds", files)
    rels = sorted(files)

    def decode(threads: int) -> np.ndarray:
        headers = read_headers("ds", rels, lambda rel: open(root / rel, "rb"), IngestLimits())
        plan = plan_images("ds", rels, headers, None, IngestLimits())
        return decode_images("ds", rels, headers, lambda rel: (root / rel).read_bytes(), plan, threads=threads)

    headers = read_headers("ds", rels, lambda rel: open(root / rel, "rb"), IngestLimits())
    assert max(h.width * h.height for h in headers) < THREADS_FROM_PIXELS and default_threads(headers) == 1  # tiny
    one, three = decode(1), decode(3)
    assert one.shape == (300, 3, 8, 6)
    np.testing.assert_array_equal(one, three)
    for rel in (rels[150], rels[290]):  # headers intact, pixel data cut: found only while decoding
        (root / rel).write_bytes(files[rel][:-40])
    with pytest.raises(InvalidDataset, match=f"cannot read image '{rels[150]}'"):
        decode(3)


# --- refusals ------------------------------------------------------------------------------------


GOOD = {"a/1.png": encode(flat("L", 1), "PNG"), "a/2.png": encode(flat("L", 2), "PNG"),
        "b/1.png": encode(flat("L", 3), "PNG")}


@pytest.mark.parametrize("rel,data,match", [
    ("b/2.png", b"\x89PNG\r\n\x1a\nbroken", r"cannot read image 'b/2\.png'"),
    ("b/2.jpg", encode(arrow((64, 64)), "JPEG")[:300], r"cannot read image 'b/2\.jpg'"),  # truncated
    ("b/2.webp", b"this is a text file, not a WebP", r"cannot read image 'b/2\.webp' \(not a PNG, JPEG, WebP"),
    ("b/2.bmp", encode(flat("L", 1), "PNG"), r"cannot read image 'b/2\.bmp'"),  # a PNG is read, named .bmp: fine
])
def test_bad_files_are_named(tmp_path: Path, rel: str, data: bytes, match: str) -> None:
    root = write_files(tmp_path / "ds", {**GOOD, rel: data})
    if rel == "b/2.bmp":  # the suffix only says "an image"; Pillow reads what the bytes are
        assert load_dataset(root).report["images"]["formats"] == {"PNG": 4}
        return
    with pytest.raises(InvalidDataset, match=match):
        load_dataset(root)


def test_image_over_max_image_pixels_is_refused_before_decoding(tmp_path: Path) -> None:
    root = write_files(tmp_path / "ds", {**GOOD, "b/2.png": encode(flat("L", 1, (40, 30)), "PNG")})
    with pytest.raises(DatasetTooLarge, match=r"image 'b/2\.png' is 40x30 = 1,200 pixels; the limit is 1,000"):
        load_dataset(root, limits=IngestLimits(max_image_pixels=1000))


@pytest.mark.parametrize("option,flag", [({"categorical": ("x",)}, "--categorical"), ({"ignore": ("x",)}, "--ignore"),
                                         ({"text_column": "t"}, "--text-column"), ({"label_column": "y"},
                                                                                   "--label-column"),
                                         ({"embedder": "tfidf"}, "--embedder")])
def test_table_options_on_images_are_refused_by_name(tmp_path: Path, option: dict, flag: str) -> None:
    root = write_files(tmp_path / "ds", {**GOOD, "b/2.png": GOOD["b/1.png"]})
    with pytest.raises(InvalidDataset, match=f"ds: {flag} does not apply to a folder or zip of images"):
        load_dataset(root, IngestOptions(**option))


# --- zip, server, CLI ----------------------------------------------------------------------------


def test_a_zip_of_photos_reads_like_the_folder(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    files = {**mixed_sizes(), "b/3.jpg": encode(arrow(), "JPEG", exif=exif.tobytes()),
             "b/4.webp": encode(flat("RGBA", (9, 8, 7, 255), (33, 44)), "WEBP", lossless=True)}
    folder = load_dataset(write_files(tmp_path / "photos", files))
    zipped = load_dataset(write_zip(tmp_path / "photos.zip", {f"photos/{k}": v for k, v in files.items()}))
    assert zipped.sources == folder.sources and zipped.report == folder.report
    np.testing.assert_array_equal(zipped.X, folder.X)
    assert folder.report["images"]["oriented_by_exif"] == 1 and folder.X.shape[1] == 3


def test_a_large_zip_decodes_on_threads_like_its_folder(tmp_path: Path) -> None:
    """Past one chunk of images the pool's threads read zip entries concurrently; the result is the folder's."""
    rng = np.random.default_rng(5)
    files = {f"c{i % 2}/{i:03d}.{'png' if i % 3 else 'jpg'}": encode(
        Image.fromarray(rng.integers(0, 255, (int(rng.integers(30, 60)), 40, 3), dtype=np.uint8)),
        "PNG" if i % 3 else "JPEG") for i in range(400)}
    headers = read_headers("photos", sorted(files), lambda rel: io.BytesIO(files[rel]), IngestLimits())
    assert default_threads(headers) == min(DECODE_THREADS, os.cpu_count() or 1)  # large enough for the pool
    folder = load_dataset(write_files(tmp_path / "photos", files))
    zipped = load_dataset(write_zip(tmp_path / "photos.zip", files))
    assert zipped.sources == folder.sources and zipped.report == folder.report and len(zipped.X) == 400
    np.testing.assert_array_equal(zipped.X, folder.X)


def test_report_in_get_dataset_on_a_real_server(shared_server: Server, tmp_path: Path) -> None:
    path = write_zip(tmp_path / "photos.zip", mixed_sizes())
    with httpx.Client(base_url=shared_server.url, timeout=60) as c:
        r = c.post("/datasets", params={"filename": path.name}, content=path.read_bytes())
        assert r.status_code in (200, 201), r.text
        got = c.get(f"/datasets/{r.json()['dataset_id']}").json()
        resized = c.post("/datasets", params={"filename": path.name, "resize": "8x9"}, content=path.read_bytes())
        assert resized.status_code in (200, 201), resized.text
        asked = c.get(f"/datasets/{resized.json()['dataset_id']}").json()["ingest_report"]["images"]
    expected = load_dataset(path).report["images"]
    assert got["ingest_report"]["images"] == expected
    assert expected["resized_to"] is not None and got["ingest_report"]["images"]["why"].startswith("images come in")
    assert resized.json()["dataset_id"] != r.json()["dataset_id"]  # other options: another dataset
    assert asked["resized_to"] == [8, 9] and asked == load_dataset(path, IngestOptions(resize=(8, 9))).report["images"]


@pytest.mark.slow
def test_cli_scores_a_mixed_size_folder_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    files = {}
    for c in range(3):
        for i in range(12):
            w, h = int(rng.integers(12, 40)), int(rng.integers(12, 40))
            colour = [0, 0, 0]
            colour[c] = 200
            files[f"class_{c}/{i:02d}.png"] = encode(flat("RGB", tuple(colour), (w, h)), "PNG")
    root = write_files(tmp_path / "photos", files)
    data = ["--data-dir", str(tmp_path / "data")]
    result = CliRunner().invoke(app, ["score", str(root), "--members", "2", "--epochs", "2", "--no-adaboost",
                                      "--set", "cnn_width=8", *data])
    assert result.exit_code == 0, result.output
    assert "splits: easy" in result.output
    job_id = result.output.split("job ")[1].split()[0]
    out = tmp_path / "scores.jsonl"
    assert CliRunner().invoke(app, ["export", job_id, "--format", "jsonl", "-o", str(out), *data]).exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 36 and rows[0]["source"] == "class_0/00.png"


# --- memory --------------------------------------------------------------------------------------

_MEASURE = """
import json, re, sys
from pathlib import Path
from service.ingest.formats import load_dataset

def status(key):  # kB, from the kernel's own accounting of this process
    return int(re.search(key + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))

Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now: imports' peaks don't count
before = status("VmRSS")
ds = load_dataset(Path(sys.argv[1]))
print(json.dumps({"growth": (status("VmHWM") - before) * 1024, "array": ds.X.nbytes, "shape": list(ds.X.shape)}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc peak-RSS reset")
def test_ingest_memory_stays_near_the_final_array(tmp_path: Path) -> None:
    """2,000 photos of mixed sizes (40..160 px a side) ingested in a fresh process: peak RSS grows by
    at most 3x the final array + 150 MB (interpreter and Pillow buffers, a few images in flight)."""
    rng = np.random.default_rng(3)
    base = Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    for i in range(2000):
        w, h = (int(v) for v in rng.integers(40, 160, size=2))
        path = tmp_path / "photos" / f"c{i % 4}" / f"{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        base.resize((w, h), Image.BILINEAR).save(path, quality=85)
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path / "photos")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    bound = 3 * got["array"] + 150 * 1024**2
    print(f"2,000 mixed-size photos -> {got['shape']}: array {got['array'] / 1024**2:.1f} MB, "
          f"peak RSS growth {got['growth'] / 1024**2:.1f} MB (bound {bound / 1024**2:.0f} MB)")
    assert got["shape"][0] == 2000 and got["growth"] < bound


def test_skip_unreadable_over_http_and_on_the_dataset_page(shared_server: Server, tmp_path: Path) -> None:
    """POST /datasets refuses a zip with a broken image by name, saying what skip_unreadable does; with
    skip_unreadable=true it stores the rest (another dataset than the plain upload would be), GET says
    what was left out, and the dataset's dashboard page lists the file with why."""
    files = mixed_sizes()
    files["b/broken.png"] = b"\x89PNG\r\n\x1a\nnot really"
    path = write_zip(tmp_path / "photos.zip", files)
    with httpx.Client(base_url=shared_server.url, timeout=60) as c:
        before = c.get("/datasets").json()
        refused = c.post("/datasets", params={"filename": path.name}, content=path.read_bytes())
        assert refused.status_code == 422 and c.get("/datasets").json() == before
        message = refused.json()["error"]["message"]
        assert "cannot read image 'b/broken.png'" in message and "skip_unreadable=true" in message
        r = c.post("/datasets", params={"filename": path.name, "skip_unreadable": "true"}, content=path.read_bytes())
        assert r.status_code in (200, 201), r.text
        ds = r.json()
        page = c.get(f"/ui/datasets/{ds['dataset_id']}").text
    assert ds["n_examples"] == len(files) - 1
    skipped = ds["ingest_report"]["images"]["skipped"]
    assert skipped["n"] == 1 and skipped["files"][0]["file"] == "b/broken.png"
    assert '<table id="ingest-skipped">' in page and "<td>b/broken.png</td>" in page
