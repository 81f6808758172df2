"""Pretrained image features (issue 16, item 4): images embedded once by a frozen torchvision
backbone in a worker process, the dataset a float32 table of embeddings that keeps its pixels for
the gallery; weights from --weights or torchvision's cache, never downloaded; every refusal names
the backbone, the file or the paths looked at. Weights files are made here with random init."""

import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from typer.testing import CliRunner

from service.cli.main import app
from service.errors import InvalidDataset
from service.ingest.features import BACKBONES, torch_hub_dir
from service.ingest.formats import load_dataset
from service.ingest.options import IngestOptions
from service.ingest.photos import FEATURES_MAX_SIDE, MAX_DEFAULT_SIDE, Header, plan_images
from service.limits import IngestLimits
from service.web.curation import VIEWS
from tests.service.conftest import Server

ROOT = Path(__file__).resolve().parents[2]
SMALL = "torchvision:mobilenet_v3_small"  # the smallest backbone: the tests' worker passes stay short
N_PER_CLASS = 8


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "mobilenet.pt"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes of noisy red and green photos of mixed sizes (the default resize applies)."""
    root = tmp_path_factory.mktemp("photos") / "photos"
    rng = np.random.default_rng(0)
    for c, name in enumerate(("green", "red")):
        (root / name).mkdir(parents=True)
        for i in range(N_PER_CLASS):
            h, w = int(rng.integers(16, 40)), int(rng.integers(16, 40))
            pixels = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
            pixels[..., 1 - c] += 150
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


def test_backbone_table_matches_torchvision() -> None:
    """The service cannot import torchvision, so it names the cached files and dims itself: keep them true."""
    enums = {"resnet18": torchvision.models.ResNet18_Weights, "resnet50": torchvision.models.ResNet50_Weights,
             "mobilenet_v3_small": torchvision.models.MobileNet_V3_Small_Weights,
             "efficientnet_b0": torchvision.models.EfficientNet_B0_Weights}
    assert set(enums) == set(BACKBONES)
    for name, enum in enums.items():
        assert BACKBONES[name].weights_file == enum.DEFAULT.url.rsplit("/", 1)[1], name
        model = getattr(torchvision.models, name)()
        head = model.fc if hasattr(model, "fc") else next(m for m in model.classifier if hasattr(m, "in_features"))
        assert BACKBONES[name].dims == head.in_features, name


def test_hub_dir_is_torchs_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert torch_hub_dir() == Path(torch.hub.get_dir())
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert torch_hub_dir() == Path(torch.hub.get_dir())


def test_no_weights_given_or_cached_names_the_backbone_and_the_path(photos: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    expected = tmp_path / "empty" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(InvalidDataset, match=r"no weights for torchvision:resnet18.*--weights") as e:
        load_dataset(photos, IngestOptions(features="torchvision:resnet18"))
    assert str(expected) in str(e.value) and "never downloads" in str(e.value)
    assert not expected.exists()  # nothing fetched


def test_a_missing_weights_file_is_named(photos: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidDataset, match=r"--weights .*nope\.pt: no such file \(weights for torchvision:resnet18\)"):
        load_dataset(photos, IngestOptions(features="torchvision:resnet18", weights=str(tmp_path / "nope.pt")))


@pytest.mark.parametrize("features", ["torchvision:vgg16", "timm:resnet18", ""])
def test_unknown_backbone_lists_the_supported_ones(photos: Path, features: str) -> None:
    with pytest.raises(InvalidDataset, match="is not a supported backbone; supported: torchvision:resnet18, "
                                             "torchvision:resnet50, torchvision:mobilenet_v3_small, "
                                             "torchvision:efficientnet_b0"):
        load_dataset(photos, IngestOptions(features=features))


@pytest.mark.slow
def test_weights_of_another_architecture_are_refused(photos: Path, tmp_path: Path) -> None:
    other = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), other)
    with pytest.raises(InvalidDataset, match=rf"weights file {re.escape(str(other))} is not a mobilenet_v3_small "
                                             r"state_dict: 244 of its 244 tensors missing"):
        load_dataset(photos, IngestOptions(features=SMALL, weights=str(other)))


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    """The worker's own check, in this process (the refusal's way back to the user as an
    InvalidDataset is the test above): bytes torch cannot read, and a torch file of no tensors."""
    from models.features_worker import WeightsMismatch, build_backbone

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(WeightsMismatch, match=rf"cannot read weights file {re.escape(str(junk))} for mobilenet_v3_small"):
        build_backbone("mobilenet_v3_small", str(junk))
    numbers = tmp_path / "numbers.pt"
    torch.save({"a": 1}, numbers)
    with pytest.raises(WeightsMismatch, match=r"does not hold a state_dict \(a dict of tensors\) for mobilenet_v3_small"):
        build_backbone("mobilenet_v3_small", str(numbers))


def test_features_on_a_table_or_an_npz_table_are_refused(tmp_path: Path, weights: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("a,label\n1,x\n2,x\n3,y\n4,y\n")
    with pytest.raises(InvalidDataset, match=r"t\.csv: --features applies to images only; this dataset is a table"):
        load_dataset(csv, IngestOptions(features=SMALL, weights=str(weights)))
    npz = tmp_path / "t.npz"
    np.savez(npz, X=np.zeros((4, 3), np.float32), y=np.array([0, 0, 1, 1]))
    with pytest.raises(InvalidDataset, match=r"t\.npz: --features applies to images only; this NPZ holds a table "
                                             r"\(X of shape \(4, 3\)\)"):
        load_dataset(npz, IngestOptions(features=SMALL, weights=str(weights)))


# the service's side of an ingest with --features, in a fresh interpreter: the embedding happens in
# the worker process, so this one must never import torch or torchvision
_INGEST_IN_SERVICE = """
import json, sys
from pathlib import Path
from service.ingest.formats import load_dataset
from service.ingest.options import IngestOptions
from service.ingest.files import save_dataset
ds = load_dataset(Path(sys.argv[1]), IngestOptions(features=sys.argv[2], weights=sys.argv[3]))
save_dataset(ds, Path(sys.argv[4]), "d1", "photos", "image_folder")
print(json.dumps({"torch": "torch" in sys.modules, "torchvision": "torchvision" in sys.modules}))
"""


@pytest.mark.slow
def test_images_become_a_table_of_embeddings_with_their_pixels_and_the_service_never_imports_torch(
        photos: Path, weights: Path, tmp_path: Path) -> None:
    """One worker pass serves both checks (each pass starts a torch process): the service-side
    ingest runs in a fresh interpreter and stores the dataset, which is read back here."""
    from service.ingest.files import load_arrays, load_manifest, load_pixels, load_sources

    datasets = tmp_path / "datasets"
    out = subprocess.run([sys.executable, "-c", _INGEST_IN_SERVICE, str(photos), SMALL, str(weights), str(datasets)],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"torch": False, "torchvision": False}
    plain = load_dataset(photos)
    manifest = load_manifest(datasets, "d1")
    X, y = load_arrays(datasets, "d1")
    dims = BACKBONES["mobilenet_v3_small"].dims
    assert manifest.kind == "tabular" and X.dtype == np.float32 and X.shape == (2 * N_PER_CLASS, dims)
    assert manifest.feature_names == [f"mobilenet_v3_small[{j}]" for j in range(dims)]
    assert np.isfinite(X).all() and np.ptp(X, axis=0).max() > 0  # not all images alike
    np.testing.assert_array_equal(load_pixels(datasets, "d1"), plain.X)  # thumbnails from the same decoded images
    assert load_sources(datasets, "d1") == plain.sources and manifest.class_names == plain.class_names
    np.testing.assert_array_equal(y, plain.y)
    report = manifest.ingest_report["features"]
    assert isinstance(report, dict)
    assert report["backbone"] == SMALL and report["dims"] == dims and report["device"] in ("cpu", "cuda:0", "cuda")
    assert report["weights_file"] == str(weights.resolve())
    assert report["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert report["input_size"] == [224, 224] and report["seconds"] >= report["embed_seconds"] > 0
    images = manifest.ingest_report["images"]
    assert isinstance(images, dict)
    assert {**images, "why": ""} == {**plain.report["images"], "why": ""}  # small: same size
    h, w = plain.report["images"]["sizes"]["median"]
    assert images["why"].endswith(f"all resized to the median {h}x{w} for the pretrained backbone "
                                  "(it resizes to its input itself)")


@pytest.mark.slow
def test_cli_scores_features_and_the_gallery_shows_the_photos(photos: Path, weights: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["score", str(photos), "--features", SMALL, "--weights", str(weights),
                                      "--members", "2", "--epochs", "2", "--no-adaboost", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    job_id = result.output.split("job ")[1].split()[0]
    srv = Server(data).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            job = c.get(f"/jobs/{job_id}").json()
            ds = c.get(f"/datasets/{job['dataset_id']}").json()
            pages = [c.get(f"/ui/jobs/{job_id}/gallery/{view}") for view in VIEWS]
            images = sorted({src for p in pages for src in re.findall(r'src="(/ui/datasets/[^"]+\.png)"', p.text)})
            thumbs = [c.get(src) for src in images[:3]]
            page = c.get(f"/ui/datasets/{job['dataset_id']}").text
            # a corrected version keeps its photos: its default export is the images in class folders
            r = c.post(f"/jobs/{job_id}/reviews", json={"decisions": [{"example_id": 0, "action": "exclude"}]})
            assert r.status_code == 200, r.text
            version = c.post(f"/datasets/{job['dataset_id']}/versions", json={"from_job": job_id})
            assert version.status_code == 201, version.text
            exported = c.get(f"/datasets/{version.json()['dataset_id']}/export")
            embeddings = c.get(f"/datasets/{version.json()['dataset_id']}/export", params={"format": "npz"})
    finally:
        srv.stop()
    assert exported.status_code == 200 and exported.headers["content-disposition"].endswith('.zip"'), exported.text
    with zipfile.ZipFile(io.BytesIO(exported.content)) as zf:
        names = zf.namelist()
        assert len(names) == 2 * N_PER_CLASS - 1 and all(n.endswith(".png") for n in names)
        assert Image.open(io.BytesIO(zf.read(names[0]))).mode == "RGB"
    with np.load(io.BytesIO(embeddings.content)) as f:
        assert f["X"].shape == (2 * N_PER_CLASS - 1, BACKBONES["mobilenet_v3_small"].dims)
    assert job["status"] == "succeeded"
    assert ds["kind"] == "tabular" and ds["x_shape"] == [2 * N_PER_CLASS, BACKBONES["mobilenet_v3_small"].dims]
    assert ds["ingest_report"]["features"]["backbone"] == SMALL
    assert all(p.status_code == 200 for p in pages) and images
    assert all(t.status_code == 200 and t.headers["content-type"] == "image/png" for t in thumbs)
    assert Image.open(io.BytesIO(thumbs[0].content)).mode == "RGB"
    assert 'id="ingest-features"' in page and SMALL in page  # the dataset page says how it was read


@pytest.mark.slow
def test_grey_images_in_an_npz_are_embedded_too(weights: Path, tmp_path: Path) -> None:
    """An NPZ of images (n, H, W) is images like a folder: grey planes go in as R = G = B."""
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (6, 12, 10)).astype(np.uint8)
    np.savez(tmp_path / "grey.npz", X=X, y=np.array([0, 0, 0, 1, 1, 1]))
    ds = load_dataset(tmp_path / "grey.npz", IngestOptions(features=SMALL, weights=str(weights)))
    assert ds.kind == "tabular" and ds.X.shape == (6, BACKBONES["mobilenet_v3_small"].dims)
    np.testing.assert_array_equal(ds.pixels, X[:, None])
    assert np.abs(ds.X[0] - ds.X[1]).max() > 1e-3 * np.abs(ds.X).max()  # other images, other embeddings (random init: tiny values)


def _zip_of(folder: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(folder.rglob("*.png")):
            zf.write(file, file.relative_to(folder).as_posix())
    return path


@pytest.mark.slow
def test_post_datasets_takes_features_from_the_servers_cache(photos: Path, weights: Path, tmp_path: Path,
                                                              start_server) -> None:  # type: ignore[no-untyped-def]
    cached = tmp_path / "th" / "hub" / "checkpoints" / BACKBONES["mobilenet_v3_small"].weights_file
    cached.parent.mkdir(parents=True)
    cached.write_bytes(weights.read_bytes())
    srv = start_server(TORCH_HOME=str(tmp_path / "th"))
    body = _zip_of(photos, tmp_path / "photos.zip").read_bytes()
    with httpx.Client(base_url=srv.url, timeout=120) as c:
        made = c.post("/datasets", params={"filename": "photos.zip", "features": SMALL}, content=body)
        missing = c.post("/datasets", params={"filename": "photos.zip", "features": "torchvision:resnet18"},
                         content=body)
        unknown = c.post("/datasets", params={"filename": "photos.zip", "features": "torchvision:vgg16"}, content=body)
        assert made.status_code == 201, made.text
        ds = c.get(f"/datasets/{made.json()['dataset_id']}").json()
        listed = c.get("/datasets").json()
    assert ds["kind"] == "tabular" and ds["x_shape"] == [2 * N_PER_CLASS, BACKBONES["mobilenet_v3_small"].dims]
    assert ds["ingest_report"]["features"]["weights_file"] == str(cached.resolve())
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "invalid_dataset"
    assert "no weights for torchvision:resnet18" in missing.json()["error"]["message"]
    assert str(tmp_path / "th" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in missing.json()["error"]["message"]
    assert unknown.status_code == 422 and "supported: torchvision:resnet18" in unknown.json()["error"]["message"]
    assert len(listed if isinstance(listed, list) else listed["datasets"]) == 1  # the refusals stored nothing


def _plan(sizes: list[tuple[int, int]], **limits: int):  # type: ignore[no-untyped-def]
    headers = [Header(w, h, "RGB", "PNG", None) for h, w in sizes]
    return plan_images("photos", [f"{i}.png" for i in range(len(sizes))], headers, None, IngestLimits(**limits),
                       for_features=True)


def test_photos_for_a_backbone_are_decoded_up_to_its_input_size() -> None:
    """The small CNN's 64 px cap would throw away what a 224 px backbone sees; the budget still holds."""
    mixed = _plan([(480, 640)] * 3 + [(600, 800)])
    assert mixed.size == (168, FEATURES_MAX_SIDE) and "for the pretrained backbone" in mixed.report["why"]
    headers = [Header(640, 480, "RGB", "PNG", None), Header(800, 600, "RGB", "PNG", None)]
    assert max(plan_images("photos", ["a", "b"], headers, None, IngestLimits()).size) == MAX_DEFAULT_SIDE  # as before
    one_size = _plan([(1000, 1000)] * 2)
    assert one_size.size == (224, 224) and one_size.report["resized_to"] == [224, 224]
    small = _plan([(20, 20), (30, 30)])
    assert small.size == (25, 25)  # never enlarged: the backbone resizes to its input itself
    budget = 3 * 100 * 100 * 10  # 10 images at 100x100
    fitted = _plan([(300, 300)] * 40, max_decoded_bytes=budget)
    assert fitted.size == (50, 50) and 40 * 3 * 50 * 50 <= budget and "max_decoded_bytes" in fitted.report["why"]


@pytest.mark.slow
def test_curate_score_takes_features_for_an_array_of_images(weights: Path, tmp_path: Path) -> None:
    import curate
    from service.ingest.files import load_manifest, load_pixels

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (12, 10, 10, 3)).astype(np.uint8)  # (n, H, W, C) as a user holds them
    y = np.repeat([0, 1], 6)
    result = curate.score(images, y, features=SMALL, weights=weights, members=2, epochs=2, adaboost=False,
                          data_dir=tmp_path / "data", progress=False)
    manifest = load_manifest(tmp_path / "data" / "datasets", result.dataset_id)
    assert len(result.scores) == 12
    assert manifest.kind == "tabular" and manifest.x_shape == [12, BACKBONES["mobilenet_v3_small"].dims]
    np.testing.assert_array_equal(load_pixels(tmp_path / "data" / "datasets", result.dataset_id),
                                  images.transpose(0, 3, 1, 2))
