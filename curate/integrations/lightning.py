"""A PyTorch Lightning callback that records every epoch's logits into a curate.Recorder.

    rec = curate.Recorder(dataset=(X, y), n_classes=10)
    trainer = lightning.Trainer(max_epochs=20, callbacks=[curate_callback(rec, record_loader)])
    trainer.fit(module, train_loader)
    result = rec.finish()

`record_loader` must visit every example once in a fixed order (shuffle=False); its batches are
(x, ...) tuples or dicts, optionally with an `example_id` entry naming the rows (else rows are
numbered in loader order). Epoch 0 is recorded when training starts; epoch k after the k-th epoch.
"""

from collections.abc import Iterable
from typing import Any

from curate.integrations._batches import Predict, default_predict, record_pass
from curate.recorder import Recorder


def curate_callback(recorder: Recorder, loader: Iterable[Any], *, model_index: int = 0,
                    predict: Predict | None = None, record_epoch0: bool = True) -> Any:
    """A lightning.pytorch.Callback (imported here: lightning is an optional extra)."""
    try:
        from lightning.pytorch import Callback
    except ImportError:
        try:
            from pytorch_lightning import Callback  # the older package name
        except ImportError:
            raise ImportError("curate_callback needs PyTorch Lightning: pip install 'curate[lightning]'") from None
    run = predict or default_predict

    class CurateCallback(Callback):  # type: ignore[misc,valid-type]
        def _record(self, trainer: Any, module: Any, epoch: int) -> None:
            if trainer.global_rank == 0:
                record_pass(recorder, module, loader, epoch, model_index, run,
                            lambda batch: module.transfer_batch_to_device(batch, module.device, 0))

        def on_train_start(self, trainer: Any, module: Any) -> None:
            if record_epoch0:
                self._record(trainer, module, 0)

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            self._record(trainer, module, trainer.current_epoch + 1)

    return CurateCallback()
