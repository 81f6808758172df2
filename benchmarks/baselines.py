"""The detectors a user would pick instead of Curate, run on the same noisy labels.

- cleanlab (`find_label_issues` + `get_label_quality_scores`) on 5-fold out-of-fold
  probabilities of a standardised LogisticRegression and of an MLP (scikit-learn);
- a plain consistency baseline: 10 independently trained small MLPs (plain PyTorch, Adam, no
  dropout), score = 1 - mean consistency of the given label over epochs, flagged where the mean
  consistency is below 0.5;
- AUM (Pleiss et al. 2020): one plain MLP's in-sample margin of the given label (its logit minus
  the largest other logit) averaged over epochs; score = rank of -AUM, flagged where AUM < 0.

For image data sets, one more, what cleanlab's own image tutorials do:
- cleanlab on 5-fold out-of-fold probabilities of a small plain CNN (two 3x3 convolutions with
  max-pooling, Adam, no dropout, no augmentation), `cleanlab_cnn`.

None of Curate's code is used here: these are what a user would write without it.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

BASELINES = ("cleanlab_logreg", "cleanlab_mlp", "mlp10_consistency", "aum")
IMAGE_BASELINES = ("cleanlab_cnn",)  # run on the image forms only (they need the pixels' layout)
BASELINE_BLAS_THREADS = 1
CNN_EPOCHS, CNN_BATCH, CNN_CHANNELS = 15, 64, 32
PLAIN_MEMBERS, PLAIN_EPOCHS, PLAIN_HIDDEN, PLAIN_BATCH = 10, 20, 128, 32


@dataclass(frozen=True)
class Detection:
    mislabel_score: np.ndarray  # (n_examples,) float, high = suspect
    is_flagged: np.ndarray  # (n_examples,) bool
    estimated_n_errors: int
    seconds: float


def make_baseline(method: str, random_state: int) -> Pipeline:
    if method == "cleanlab_logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    mlp = MLPClassifier(hidden_layer_sizes=(128,), max_iter=500, random_state=random_state)
    return make_pipeline(StandardScaler(), mlp)


def run_cleanlab(method: str, X: np.ndarray, y_noisy: np.ndarray, random_state: int) -> Detection:
    """Out-of-fold probabilities (5-fold, timed) -> cleanlab's flagged set and quality score.

    BLAS runs on one thread: on these small matrices more threads only add overhead
    (up to 100x slower on a busy 2-core machine), so this is the baselines' best setting.
    """
    start = time.perf_counter()
    X2 = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=random_state)
    with warnings.catch_warnings(), threadpool_limits(limits=BASELINE_BLAS_THREADS):
        warnings.simplefilter("ignore", ConvergenceWarning)
        pred_probs = cross_val_predict(
            make_baseline(method, random_state), X2, y_noisy, cv=cv, method="predict_proba"
        )
    return cleanlab_detection(y_noisy, pred_probs, start)


def cleanlab_detection(y_noisy: np.ndarray, pred_probs: np.ndarray, start: float) -> Detection:
    """cleanlab's flagged set and label-quality score from out-of-fold probabilities, timed from `start`."""
    from cleanlab.filter import find_label_issues  # here: cleanlab is in the bench extra, not a dependency
    from cleanlab.rank import get_label_quality_scores

    # n_jobs=1: same result as the default, without a process pool's start-up in the timing.
    is_flagged = find_label_issues(y_noisy, pred_probs, n_jobs=1)
    quality = get_label_quality_scores(y_noisy, pred_probs)
    return Detection(1.0 - quality, is_flagged, int(is_flagged.sum()), time.perf_counter() - start)


def train_one_epoch(net: torch.nn.Module, opt: torch.optim.Optimizer, xt: torch.Tensor, yt: torch.Tensor,
                    order: torch.Tensor, batch: int) -> None:
    """One epoch of plain cross-entropy steps over the examples `order` lists, `batch` at a time."""
    net.train()
    for idx in order.split(batch):
        loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def plain_cnn(side: int, n_classes: int) -> torch.nn.Module:
    """conv 3x3 (32) - ReLU - max-pool 2 - conv 3x3 (32) - ReLU - max-pool 2 - dense 128 - ReLU - dense."""
    c = CNN_CHANNELS
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, c, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(c, c, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(c * (side // 4) ** 2, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, n_classes),
    )


def cnn_out_of_fold_probs(X: np.ndarray, y: np.ndarray, n_classes: int, side: int,
                          random_state: int) -> np.ndarray:
    """(n, n_classes) probabilities, each example's from the fold's CNN that never trained on it
    (5 stratified folds, CNN_EPOCHS epochs of Adam 1e-3, batch CNN_BATCH; pixels standardised)."""
    images = np.asarray(X, dtype=np.float32).reshape(len(X), 1, side, side)
    xt = torch.as_tensor((images - images.mean()) / max(float(images.std()), 1e-8))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    probs = np.zeros((len(X), n_classes), dtype=np.float64)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=random_state).split(images, y)
    for fold, (train, held) in enumerate(folds):
        torch.manual_seed(random_state * 1000 + fold)
        net = plain_cnn(side, n_classes)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        train_t = torch.as_tensor(train)
        for _ in range(CNN_EPOCHS):
            train_one_epoch(net, opt, xt, yt, train_t[torch.randperm(len(train_t))], CNN_BATCH)
        net.eval()
        with torch.no_grad():
            probs[held] = torch.softmax(net(xt[torch.as_tensor(held)]), dim=1).double().numpy()
    return probs


def run_cleanlab_cnn(X: np.ndarray, y_noisy: np.ndarray, n_classes: int, side: int,
                     random_state: int) -> Detection:
    start = time.perf_counter()
    torch.set_num_threads(1)
    return cleanlab_detection(y_noisy, cnn_out_of_fold_probs(X, y_noisy, n_classes, side, random_state), start)


def train_plain_mlps(
    X: np.ndarray, y: np.ndarray, n_classes: int, n_models: int, random_state: int
) -> np.ndarray:
    """Logits of n_models plain MLPs (2 x 128 ReLU, Adam 1e-3, batch 32, no dropout) on every
    example after every epoch: (n_models, n_epochs, n_examples, n_classes). Each model has its own
    initialisation and shuffles; inputs are standardised."""
    X2 = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    sd = X2.std(axis=0)
    sd[sd < 1e-8] = 1.0
    xt = torch.as_tensor((X2 - X2.mean(axis=0)) / sd)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    out = np.zeros((n_models, PLAIN_EPOCHS, len(X2), n_classes), dtype=np.float32)
    for m in range(n_models):
        torch.manual_seed(random_state * 1000 + m)
        net = torch.nn.Sequential(
            torch.nn.Linear(xt.shape[1], PLAIN_HIDDEN), torch.nn.ReLU(),
            torch.nn.Linear(PLAIN_HIDDEN, PLAIN_HIDDEN), torch.nn.ReLU(),
            torch.nn.Linear(PLAIN_HIDDEN, n_classes),
        )
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for epoch in range(PLAIN_EPOCHS):
            train_one_epoch(net, opt, xt, yt, torch.randperm(len(xt)), PLAIN_BATCH)
            net.eval()
            with torch.no_grad():
                out[m, epoch] = net(xt).numpy()
    return out


def run_plain_consistency(X: np.ndarray, y_noisy: np.ndarray, n_classes: int, random_state: int) -> Detection:
    """10 plain MLPs: 1 - mean over models and epochs of [prediction == given label]."""
    start = time.perf_counter()
    with threadpool_limits(limits=BASELINE_BLAS_THREADS):
        torch.set_num_threads(1)
        logits = train_plain_mlps(X, y_noisy, n_classes, PLAIN_MEMBERS, random_state)
    consistency = (logits.argmax(axis=-1) == y_noisy[None, None, :]).mean(axis=(0, 1))
    is_flagged = consistency < 0.5
    return Detection(1.0 - consistency, is_flagged, int(is_flagged.sum()), time.perf_counter() - start)


def compute_aum(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Area under the margin of one network, logits (n_epochs, n_examples, n_classes) -> (n_examples,)."""
    rows = np.arange(len(y))
    given = logits[:, rows, y]
    others = logits.copy()
    others[:, rows, y] = -np.inf
    return (given - others.max(axis=-1)).mean(axis=0)


def run_aum(X: np.ndarray, y_noisy: np.ndarray, n_classes: int, random_state: int) -> Detection:
    start = time.perf_counter()
    with threadpool_limits(limits=BASELINE_BLAS_THREADS):
        torch.set_num_threads(1)
        logits = train_plain_mlps(X, y_noisy, n_classes, 1, random_state)[0]
    aum = compute_aum(logits, y_noisy)
    is_flagged = aum < 0
    return Detection(-aum, is_flagged, int(is_flagged.sum()), time.perf_counter() - start)


def run_baseline(method: str, X: np.ndarray, y_noisy: np.ndarray, n_classes: int, random_state: int,
                 image_side: int | None = None) -> Detection:
    """One baseline on X (n, d); `cleanlab_cnn` reads X as (n, image_side, image_side) pixels."""
    if method == "cleanlab_cnn":
        if image_side is None:
            raise ValueError("cleanlab_cnn runs on image data sets only (no image_side given)")
        return run_cleanlab_cnn(X, y_noisy, n_classes, image_side, random_state)
    if method.startswith("cleanlab_"):
        return run_cleanlab(method, X, y_noisy, random_state)
    if method == "mlp10_consistency":
        return run_plain_consistency(X, y_noisy, n_classes, random_state)
    if method == "aum":
        return run_aum(X, y_noisy, n_classes, random_state)
    raise ValueError(f"unknown baseline {method!r}; choose from {BASELINES + IMAGE_BASELINES}")
