"""Curate from Python, offline: score digits with planted label noise two ways and curate the result.

1. curate.score: Curate's own ensemble (Jumpout MLPs) on the arrays.
2. curate.Recorder: the dynamics of *your* model: a small PyTorch MLP trained here, its logits
   logged once per epoch, scored with the same consistency / margin / mislabel count.
3. The curation loop: accept the suggested labels of the worst suspects, apply them (a new
   dataset version), score it again and diff the two jobs.

    python examples/python_api.py            # the full run (8 members x 20 epochs; a minute or two)
    python examples/python_api.py --quick    # a smoke run (what the test suite executes)

Scripts that call curate must do so under `if __name__ == "__main__":` (Curate trains in worker
processes, which import the script again); a notebook needs nothing.
"""

import argparse
import tempfile

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import average_precision_score

import curate


def planted_digits(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digits features, labels with `noise` of them flipped to another class, and the flip mask."""
    X, y = load_digits(return_X_y=True)
    X, y = (X[:n] / 16.0).astype(np.float32), y[:n].copy()
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(y), size=int(noise * len(y)), replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, 10, size=len(flipped))) % 10
    is_flipped = np.zeros(len(y), dtype=bool)
    is_flipped[flipped] = True
    return X, y, is_flipped


def train_my_mlp(X: np.ndarray, y: np.ndarray, rec: curate.Recorder, epochs: int, seed: int) -> None:
    """Your own training loop: a 2-layer MLP, and one rec.log per batch of the record pass."""
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y).long()
    ids = np.arange(len(y))
    for epoch in range(epochs + 1):  # epoch 0: the untrained net
        if epoch > 0:
            net.train()
            for batch in torch.randperm(len(y)).split(32):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(Xt[batch]), yt[batch]).backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            for rows in np.array_split(ids, 4):  # any batching works: rows add up to the epoch
                rec.log(epoch, rows, net(Xt[rows]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast run")
    args = parser.parse_args()
    n, members, epochs = (300, 2, 3) if args.quick else (1797, 8, 20)
    small = {"hidden_units": 32, "batch_size": 64} if args.quick else {}
    X, y, is_flipped = planted_digits(n, noise=0.1, seed=0)
    data_dir = tempfile.mkdtemp(prefix="curate-example-")  # or a folder you keep

    # 1. Curate's ensemble
    result = curate.score(X, y, members=members, epochs=epochs, data_dir=data_dir, adaboost=not args.quick,
                          progress=not args.quick, **small)
    scores = result.scores
    ap = average_precision_score(is_flipped, scores["mislabel_score"])
    print(f"curate.score: {len(scores)} examples, splits {result.summary['split_counts']}, "
          f"{result.job.estimated_n_errors} estimated errors, AP against the planted noise {ap:.3f}")
    print(result.mislabeled()[["example_id", "given_label", "suggested_label", "mislabel_score"]].head(5))
    result.plot_dynamics().savefig(f"{data_dir}/dynamics.png")

    # 2. your own model's dynamics
    rec = curate.Recorder((X, y), n_classes=10, n_epochs=epochs, data_dir=data_dir)
    train_my_mlp(X, y, rec, epochs, seed=0)
    mine = rec.finish()
    ap_mine = average_precision_score(is_flipped, mine.scores["mislabel_score"])
    print(f"curate.Recorder (one MLP, AUM-style margin): AP {ap_mine:.3f}, "
          f"{mine.job.estimated_n_errors} estimated errors")

    # 3. the curation loop: fix the worst suspects, score the corrected version, compare
    accepted = result.accept_suggested(top=max(1, int(is_flipped.sum()) // 2))
    version = result.apply()
    again = curate.score(version.dataset_id, members=members, epochs=epochs, data_dir=data_dir, adaboost=False,
                         progress=not args.quick, **small)
    diff = result.diff(again)
    print(f"relabelled {accepted.n_applied}; version {version.version} ({version.dataset_id}); estimated errors "
          f"{diff.estimated_errors['a']} -> {diff.estimated_errors['b']}, suspects resolved {diff.suspects.resolved}")


if __name__ == "__main__":
    main()
