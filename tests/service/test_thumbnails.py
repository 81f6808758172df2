"""The dashboard's image thumbnails are bounded (issue 15, point 2): a large stored image is served
downscaled to web.THUMB_MAX_PX on its longer side, a tiny one still upscaled by whole multiples."""

import io
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from service.engine.engine import Engine
from service.settings import Settings
from service.web import report as web


def _png(client: TestClient, url: str) -> Image.Image:
    r = client.get(url)
    assert r.status_code == 200, (url, r.text[:300])
    assert r.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(r.content))
    image.load()
    return image


def test_a_large_image_is_served_as_a_small_thumbnail_and_a_tiny_one_upscaled(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    large = rng.integers(0, 256, size=(4, 3, 600, 2000), dtype=np.uint8)  # (n, C, H, W): 1.2 megapixels each
    large[:, :, :300, :] = 255  # the top half white: the thumbnail must be the image, shrunk
    tiny = rng.integers(0, 256, size=(4, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "large.npz", X=large, y=np.array([0, 0, 1, 1]))
    np.savez(tmp_path / "tiny.npz", X=tiny, y=np.array([0, 0, 1, 1]))
    settings = Settings(data_dir=tmp_path / "data")
    engine = Engine(settings)
    large_id, tiny_id = (engine.add_dataset(tmp_path / f"{n}.npz").dataset_id for n in ("large", "tiny"))
    engine.close()
    with TestClient(create_app(settings)) as c:
        thumb = _png(c, f"/ui/datasets/{large_id}/examples/1.png")
        assert thumb.size == (256, 77) and thumb.mode == "RGB"  # 2000 x 600 shrunk, aspect kept
        assert web.THUMB_MAX_PX == 256
        pixels = np.asarray(thumb)
        assert pixels[:30].min() == 255 and pixels[45:].mean() < 200  # white top half, noise below
        assert _png(c, f"/ui/datasets/{tiny_id}/examples/3.png").size == (96, 96)  # 8 x 8 upscaled 12x
