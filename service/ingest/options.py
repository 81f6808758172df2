"""How to read an upload: the one list of ingest options, shared by the CLI, POST /datasets, the
Python API and the catalog (which keys upload reuse on them).

Each option says how the file becomes arrays: which column is the label, how images are resized,
which table columns are categorical, ignored or text, which embedder turns texts into features, and
which pretrained backbone (with which weights file) turns images into features. Two uploads of the
same bytes with the same options are the same dataset; with other options they are two.
"""

import json
import re
from dataclasses import asdict, dataclass, replace

from service.errors import InvalidDataset

_RESIZE = re.compile(r"^\s*(\d{1,4})\s*[xX]\s*(\d{1,4})\s*$")
MAX_COLUMNS_NAMED = 1000  # columns one option may list


@dataclass(frozen=True)
class IngestOptions:
    label_column: str = "label"  # tables: the column of the labels
    resize: tuple[int, int] | None = None  # images: (H, W); None: as the files are (or the default of mixed sizes)
    categorical: tuple[str, ...] = ()  # tables: columns read as categories even when they look numeric
    ignore: tuple[str, ...] = ()  # tables: columns left out of the features
    text_column: str | None = None  # tables: the column of texts to embed (None: inferred)
    embedder: str = "auto"  # texts: "auto" (the best one installed), "tfidf", or a named sentence embedder
    features: str | None = None  # images: a pretrained backbone, e.g. "torchvision:resnet18"; None: raw pixels
    weights: str | None = None  # images: a local weights file for `features`
    skip_unreadable: bool = False  # images: leave out files that cannot be read as images (listed in the report)

    def __post_init__(self) -> None:
        if not self.label_column or len(self.label_column) > 256:
            raise InvalidDataset(f"label column must be 1-256 characters, got {self.label_column!r}")
        if self.resize is not None:
            if len(self.resize) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or v < 1
                                            for v in self.resize):
                raise InvalidDataset(f"resize must be (H, W) with two positive ints, got {self.resize!r}")
        for name in ("categorical", "ignore"):
            columns = getattr(self, name)
            if len(columns) > MAX_COLUMNS_NAMED:
                raise InvalidDataset(f"{name}: at most {MAX_COLUMNS_NAMED} columns, got {len(columns)}")
            object.__setattr__(self, name, tuple(columns))
        both = sorted(set(self.categorical) & set(self.ignore))
        if both:
            raise InvalidDataset(f"column {both[0]!r} is both categorical and ignored: choose one")
        if self.label_column in self.ignore:
            raise InvalidDataset(f"the label column {self.label_column!r} cannot be ignored")
        if self.weights is not None and self.features is None:
            raise InvalidDataset("a weights file applies to pretrained features only: give features too, "
                                 "e.g. torchvision:resnet18")

    @classmethod
    def parse(cls, *, resize: str | None = None, **values: object) -> "IngestOptions":
        """From text, as the CLI and the query string give it: resize as "HxW"."""
        return cls(resize=parse_resize(resize), **values)  # type: ignore[arg-type]

    def with_(self, **changes: object) -> "IngestOptions":
        return replace(self, **changes)  # type: ignore[arg-type]

    def reuse_key(self, weights_sha256: str | None = None) -> str | None:
        """The options beyond label column and resize (which have their own columns), as canonical
        JSON; None when they are all defaults, so a dataset stored before they existed still matches.
        With weights_sha256 (the digest of the weights file the features use) the file stands in the
        key by its bytes, not its path: other weights at the same path are another dataset, the same
        weights at another path (or in torchvision's cache) the same one."""
        values = {k: v for k, v in asdict(self).items() if k not in ("label_column", "resize")}
        if weights_sha256 is not None:
            values["weights"] = f"sha256:{weights_sha256}"
        defaults = {k: v for k, v in asdict(IngestOptions()).items() if k in values}
        if values == defaults:
            return None
        return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}, sort_keys=True)

    def to_query(self) -> list[tuple[str, str]]:
        """The options that differ from the defaults as query parameters of POST /datasets (a list
        option repeats its name)."""
        query: list[tuple[str, str]] = []
        for key, value in asdict(self).items():
            if value == getattr(IngestOptions, key, None) or value in ((), None):
                continue
            if key == "resize":
                query.append((key, self.resize_text() or ""))
            elif isinstance(value, tuple | list):
                query += [(key, str(v)) for v in value]
            else:
                query.append((key, str(value)))
        return query

    def resize_text(self) -> str | None:
        return f"{self.resize[0]}x{self.resize[1]}" if self.resize else None


def parse_resize(text: str | None) -> tuple[int, int] | None:
    """ "32x32" -> (32, 32); None stays None."""
    if text is None or text == "":
        return None
    found = _RESIZE.match(text)
    if not found or min(int(found[1]), int(found[2])) < 1:
        raise InvalidDataset(f"resize must look like 32x32 (height x width, both at least 1), got {text!r}")
    return int(found[1]), int(found[2])
