"""A Hugging Face `Trainer` callback that records every epoch's logits into a curate.Recorder.

    rec = curate.Recorder(dataset=labels_file, n_classes=2)
    trainer = Trainer(model, args, train_dataset=train, callbacks=[curate_callback(rec, record_loader)])
    trainer.train()
    result = rec.finish()

`record_loader` visits every example once in a fixed order (shuffle=False); its batches are dicts
of model inputs, optionally with an `example_id` entry (else rows are numbered in loader order).
Epoch 0 is recorded when training begins, epoch k at the end of the k-th epoch.
"""

from collections.abc import Iterable
from typing import Any

from curate.integrations._batches import Predict, default_predict, record_pass
from curate.recorder import Recorder


def curate_callback(recorder: Recorder, loader: Iterable[Any], *, model_index: int = 0,
                    predict: Predict | None = None, record_epoch0: bool = True) -> Any:
    """A transformers.TrainerCallback (imported here: transformers is an optional extra)."""
    try:
        from transformers import TrainerCallback
    except ImportError:
        raise ImportError("curate_callback needs transformers: pip install 'curate[huggingface]'") from None
    run = predict or default_predict

    def move(batch: Any, device: Any) -> Any:
        if isinstance(batch, dict):
            return {k: v.to(device) if hasattr(v, "to") and k != "example_id" else v for k, v in batch.items()}
        return batch

    class CurateCallback(TrainerCallback):  # type: ignore[misc,valid-type]
        def _record(self, state: Any, model: Any, epoch: int) -> None:
            if state.is_world_process_zero:
                device = next(model.parameters()).device
                record_pass(recorder, model, loader, epoch, model_index, run, lambda b: move(b, device))

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
            if record_epoch0:
                self._record(state, model, 0)

        def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
            self._record(state, model, int(round(state.epoch or 0)))

    return CurateCallback()
