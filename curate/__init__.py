"""Curate from Python: score a dataset with Curate's ensemble (`score`), read a server (`Client`),
or score the training dynamics of your own models (`Recorder`).

    import curate
    result = curate.score(X, y, members=8, epochs=20)
    result.mislabeled().head()

Everything raises one exception type, `CurateError` (code, status, message).
"""

from curate.api import load, score
from curate.recorder import Recorder
from curate.result import Result
from curate.session import close
from models.spec import AdaBoostSpec, TrainSpec
from service.app_info import VERSION as __version__
from service.cli.client import Client, CurateError, Reconnect
from service.schemas import AcceptSuggested, DecisionIn

__all__ = ["AcceptSuggested", "AdaBoostSpec", "Client", "CurateError", "DecisionIn", "Reconnect", "Recorder",
           "Result", "TrainSpec", "__version__", "close", "load", "score"]
