"""The one list of ingest options: bad values are refused with what is wrong, defaults key like the
datasets stored before the options existed, and the query string round-trips them."""

from pathlib import Path
from urllib.parse import parse_qs, urlencode

import pytest

from service.errors import InvalidDataset
from service.ingest.options import IngestOptions, parse_resize


@pytest.mark.parametrize(("values", "match"), [
    ({"label_column": ""}, "label column must be 1-256 characters"),
    ({"resize": (0, 4)}, r"resize must be \(H, W\) with two positive ints"),
    ({"resize": (True, 4)}, r"resize must be \(H, W\)"),
    ({"categorical": ("a",), "ignore": ("a",)}, "column 'a' is both categorical and ignored"),
    ({"ignore": ("label",)}, "the label column 'label' cannot be ignored"),
    ({"weights": "w.pt"}, "a weights file applies to pretrained features only"),
    ({"ignore": tuple(f"c{i}" for i in range(1001))}, "ignore: at most 1000 columns, got 1001"),
])
def test_bad_options_are_refused_with_what_is_wrong(values: dict, match: str) -> None:
    with pytest.raises(InvalidDataset, match=match):
        IngestOptions(**values)


@pytest.mark.parametrize(("text", "expected"), [("32x32", (32, 32)), (" 6X7 ", (6, 7)), (None, None), ("", None)])
def test_resize_text_is_height_by_width(text: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_resize(text) == expected


@pytest.mark.parametrize("text", ["32", "0x5", "axb", "32x32x3", "99999x1"])
def test_bad_resize_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidDataset, match=f"resize must look like 32x32.*{text!r}"):
        parse_resize(text)


def test_defaults_key_as_none_and_every_other_option_changes_the_key() -> None:
    """A dataset stored before these options existed has NULL in ingest_options: the defaults must
    match it, and any one non-default option must not."""
    assert IngestOptions().reuse_key() is None
    assert IngestOptions(label_column="cls", resize=(8, 8)).reuse_key() is None  # they have their own columns
    keys = {IngestOptions(categorical=("a",)).reuse_key(), IngestOptions(ignore=("a",)).reuse_key(),
            IngestOptions(text_column="a").reuse_key(), IngestOptions(embedder="tfidf").reuse_key(),
            IngestOptions(features="torchvision:resnet18").reuse_key()}
    assert None not in keys and len(keys) == 5
    assert IngestOptions(ignore=["b", "a"]).reuse_key() == IngestOptions(ignore=("b", "a")).reuse_key()


def test_the_query_string_round_trips_the_options() -> None:
    options = IngestOptions(label_column="cls", resize=(16, 24), categorical=("region", "plan"), ignore=("id",),
                            text_column="review", embedder="tfidf", features="torchvision:resnet18")
    query = parse_qs(urlencode(options.to_query()))
    again = IngestOptions.parse(label_column=query["label_column"][0], resize=query["resize"][0],
                                categorical=tuple(query["categorical"]), ignore=tuple(query["ignore"]),
                                text_column=query["text_column"][0], embedder=query["embedder"][0],
                                features=query["features"][0])
    assert again == options
    assert IngestOptions().to_query() == []


def test_the_reuse_key_names_a_weights_file_by_its_bytes_not_its_path(tmp_path: Path) -> None:
    """Other weights written over the same path make another dataset; the same weights under
    another path are the same one (features from stale weights must never be reused)."""
    from service.store.catalog import options_key

    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    a.write_bytes(b"weights one")
    b.write_bytes(b"weights one")
    upload = tmp_path / "photos"
    first = options_key(upload, IngestOptions(features="torchvision:resnet18", weights=str(a)))
    assert first == options_key(upload, IngestOptions(features="torchvision:resnet18", weights=str(b)))
    assert str(a) not in (first or "") and "sha256:" in (first or "")
    a.write_bytes(b"weights two")
    assert options_key(upload, IngestOptions(features="torchvision:resnet18", weights=str(a))) != first
    assert options_key(upload, IngestOptions(embedder="tfidf")) == IngestOptions(embedder="tfidf").reuse_key()
    with pytest.raises(InvalidDataset, match=r"--weights .*nope\.pth: no such file"):
        options_key(upload, IngestOptions(features="torchvision:resnet18", weights=str(tmp_path / "nope.pth")))
