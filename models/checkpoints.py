"""Where a member group's checkpoints live and when they may go. Torch-free (executors import it).

A group writes `epoch-<e>.pt` into its checkpoint folder before it yields epoch e, and never
deletes one itself: workers run ahead of the engine (a queue or a Ray stream sits between them),
so the newest checkpoint is often for an epoch not yet committed. A resumed attempt needs the
checkpoint of the last *committed* epoch, so only the committer may prune: once epoch e is
committed, every older checkpoint is done with (`prune_checkpoints`).
"""

from __future__ import annotations

from pathlib import Path


def checkpoint_path(folder: Path, epoch: int) -> Path:
    return folder / f"epoch-{epoch}.pt"


def checkpoint_epochs(folder: Path) -> list[int]:
    """Epochs with a complete checkpoint in `folder`, oldest first (half-written `.tmp` files excluded)."""
    epochs = []
    for p in folder.glob("epoch-*.pt"):
        try:
            epochs.append(int(p.stem.split("-", 1)[1]))
        except ValueError:
            continue
    return sorted(epochs)


def prune_checkpoints(folder: str | Path | None, committed_epoch: int) -> None:
    """Delete the checkpoints older than `committed_epoch` (which was just committed).

    A folder this process cannot see (a Ray worker on another node without shared storage) is
    left alone; those checkpoints could not serve a resume from here anyway.
    """
    if folder is None:
        return
    folder = Path(folder)
    for epoch in checkpoint_epochs(folder):
        if epoch < committed_epoch:
            checkpoint_path(folder, epoch).unlink(missing_ok=True)
