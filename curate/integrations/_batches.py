"""The record pass both callbacks share: the model over a fixed, unshuffled loader, logits per example."""

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from curate.recorder import Recorder

# (model, batch) -> (example_ids or None, logits): None = the batch's rows follow the previous batch's
Predict = Callable[[Any, Any], tuple[Any, Any]]


def default_predict(model: Any, batch: Any, id_key: str = "example_id") -> tuple[Any, Any]:
    """A dict batch: `id_key` (if present) names the rows, the rest is passed as keywords (Hugging
    Face style; `labels` dropped so no loss is computed); a (x, ...) tuple or a tensor: model(x).
    The output's `.logits` if it has them."""
    ids = None
    if isinstance(batch, dict):
        inputs = {k: v for k, v in batch.items() if k not in (id_key, "labels", "label")}
        ids = batch.get(id_key)
        out = model(**inputs)
    else:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        out = model(x)
    return ids, getattr(out, "logits", out)


def record_pass(recorder: Recorder, model: Any, loader: Iterable[Any], epoch: int, model_index: int,
                predict: Predict, move: Callable[[Any], Any]) -> None:
    """Log one epoch of `model` over `loader` (eval mode, no gradients; training mode restored)."""
    import torch

    was_training = model.training
    model.eval()
    offset = 0
    try:
        with torch.no_grad():
            for batch in loader:
                ids, logits = predict(model, move(batch))
                n = len(logits)
                rows = np.arange(offset, offset + n) if ids is None else ids
                recorder.log(epoch, rows, logits.float(), model=model_index)
                offset += n
    finally:
        model.train(was_training)
