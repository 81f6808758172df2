"""Texts to features: every text of a dataset is embedded once, at ingest, and the ensemble trains on
the embeddings (a float32 matrix like any table's).

`embed_texts` is the one entry point: "tfidf" is TF-IDF + truncated SVD (scikit-learn, always
available, runs in this process); "auto" picks the best embedder installed.
"""

from collections.abc import Sequence

import numpy as np

from service.errors import InvalidDataset

TFIDF_DIMS = 256  # SVD components of the TF-IDF fallback (fewer when the vocabulary is smaller)
EMBEDDERS = ("auto", "tfidf")


def embed_texts(texts: Sequence[str], embedder: str = "auto", *, random_state: int = 0) -> tuple[np.ndarray, dict]:
    """(n, d) float32 embeddings of `texts` and a report naming the embedder and its dimensions."""
    if embedder not in EMBEDDERS:
        raise InvalidDataset(f"embedder must be one of {', '.join(EMBEDDERS)}, got {embedder!r}")
    return _tfidf_svd(texts, random_state)


def _tfidf_svd(texts: Sequence[str], random_state: int) -> tuple[np.ndarray, dict]:
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
    return X, {"embedder": "tfidf", "dims": int(X.shape[1]), "vocabulary": int(counts.shape[1])}
