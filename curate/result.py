"""`Result`: a scored job from Python: scores as pandas DataFrames, the dynamics, explanations,
plots, and the curation verbs (review, apply, diff).

The same class reads either the in-process engine of a data directory (what `curate.score` ran) or
a server (`curate.Client`): the rows are the export rows either way (the columns of
`curate export`, one row per example).
"""

from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from curate.errors import with_curate_errors
from service.cli.backends import LocalBackend
from service.cli.client import Client, CurateError
from service.engine.explain import explain_example
from service.read import queries
from service.schemas import AcceptSuggested, AttributionOut, DatasetOut, DecisionIn, DiffOut, JobOut, ReviewResult
from service.vocab import SPLITS

Action = Literal["relabel", "keep", "exclude", "clear"]
What = Literal["scores", "easy", "intermediate", "hard", "mislabeled"]


class _Source(Protocol):
    """Where a Result reads from: the in-process engine or a server."""

    def job(self, job_id: str) -> JobOut: ...
    def rows(self, job_id: str, what: str) -> pd.DataFrame: ...
    def histograms(self, job_id: str, n_bins: int) -> list[dict]: ...
    def explain(self, job_id: str, example_id: int, method: str, target: str) -> AttributionOut: ...
    def review(self, job_id: str, decisions: list[DecisionIn] | None, accept: AcceptSuggested | None) -> ReviewResult: ...
    def apply(self, job_id: str) -> DatasetOut: ...
    def diff(self, job_a: str, job_b: str) -> DiffOut: ...
    def export(self, job_id: str, output: Path, what: str, fmt: str) -> Path: ...


@with_curate_errors
class LocalSource:
    """The engine of a data directory in this process (curate.session)."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend

    def job(self, job_id: str) -> JobOut:
        return self.backend.job(job_id)

    def rows(self, job_id: str, what: str) -> pd.DataFrame:
        return queries.export_rows(self.backend.engine.store, job_id, what,
                                   datasets_dir=self.backend.engine.settings.datasets_dir).to_pandas()

    def histograms(self, job_id: str, n_bins: int) -> list[dict]:
        return queries.dynamics_histograms(self.backend.engine.store, job_id, n_bins)

    def explain(self, job_id: str, example_id: int, method: str, target: str) -> AttributionOut:
        engine = self.backend.engine
        return explain_example(engine.store, engine.settings, job_id, example_id, method, target)

    def review(self, job_id: str, decisions: list[DecisionIn] | None, accept: AcceptSuggested | None) -> ReviewResult:
        if accept is not None:
            return self.backend.accept_suggested(job_id, accept)
        return self.backend.review(job_id, decisions or [])

    def apply(self, job_id: str) -> DatasetOut:
        return self.backend.create_version(self.job(job_id).dataset_id, job_id)

    def diff(self, job_a: str, job_b: str) -> DiffOut:
        return self.backend.diff(job_a, job_b)

    def export(self, job_id: str, output: Path, what: str, fmt: str) -> Path:
        self.backend.export(job_id, what, fmt, output)
        return output


class RemoteSource:
    """A server, through the one HTTP client."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def job(self, job_id: str) -> JobOut:
        return self.client.job(job_id)

    def rows(self, job_id: str, what: str) -> pd.DataFrame:
        if what == "mislabeled":
            items = self.client.mislabeled(job_id)
        elif what in SPLITS:
            items = self.client.scores(job_id, split=what, order="accessibility")  # type: ignore[arg-type]
        else:
            items = self.client.scores(job_id)
        return pd.DataFrame([i.model_dump() for i in items], columns=list(queries.SCORE_COLUMNS))

    def histograms(self, job_id: str, n_bins: int) -> list[dict]:
        return [e.model_dump() for e in self.client.dynamics(job_id, n_bins).epochs]

    def explain(self, job_id: str, example_id: int, method: str, target: str) -> AttributionOut:
        return self.client.explain(job_id, example_id, method, target)

    def review(self, job_id: str, decisions: list[DecisionIn] | None, accept: AcceptSuggested | None) -> ReviewResult:
        return self.client.review(job_id, decisions, accept_suggested=accept)

    def apply(self, job_id: str) -> DatasetOut:
        return self.client.apply(job_id)

    def diff(self, job_a: str, job_b: str) -> DiffOut:
        return self.client.diff(job_a, job_b)

    def export(self, job_id: str, output: Path, what: str, fmt: str) -> Path:
        return self.client.export(job_id, output, what=what, format=fmt)


class Result:
    """A succeeded job's answers. `scores` is read once and kept; the rest is read when asked."""

    def __init__(self, source: _Source, job_id: str) -> None:
        self._source = source
        self.job_id = job_id
        self._scores: pd.DataFrame | None = None

    def __repr__(self) -> str:
        job = self.job
        return (f"<curate.Result job {self.job_id}: {job.status}, dataset {job.dataset_id}, "
                f"{(job.summary or {}).get('n_examples', '?')} examples, {job.estimated_n_errors} estimated errors>")

    @property
    def job(self) -> JobOut:
        """The job: status, spec, summary, timings."""
        return self._source.job(self.job_id)

    @property
    def dataset_id(self) -> str:
        return self.job.dataset_id

    @property
    def summary(self) -> dict:
        """n_examples, split_counts, estimated_precision, the AdaBoost comparison, attributions, ..."""
        return self.job.summary or {}

    @property
    def scores(self) -> pd.DataFrame:
        """One row per example with the export columns (example_id, source, given_label,
        consistency, consensus, accessibility, split, mislabel_score, is_suspected_mislabel,
        suggested_label, ...), by example_id."""
        if self._scores is None:
            self._scores = self._source.rows(self.job_id, "scores")
        return self._scores.copy()

    def mislabeled(self) -> pd.DataFrame:
        """The suspected mislabels, worst (highest mislabel_score) first."""
        return self._source.rows(self.job_id, "mislabeled")

    def split(self, name: Literal["easy", "intermediate", "hard"]) -> pd.DataFrame:
        """The examples of one difficulty split, hardest (lowest accessibility) first."""
        if name not in SPLITS:
            raise CurateError(f"split must be one of {', '.join(SPLITS)}, got {name!r}", "invalid_query")
        return self._source.rows(self.job_id, name)

    @property
    def dynamics(self) -> pd.DataFrame:
        """Per epoch (0 = before training), how many examples fall in each of 20 bins of consistency
        and of consensus: columns epoch, bin (its lower edge), consistency, consensus."""
        return _histogram_frame(self._source.histograms(self.job_id, 20))

    def explain(self, example_id: int, method: str = "bias", target: Literal["given", "suggested"] = "given"
                ) -> AttributionOut:
        """Why the ensemble gives the example's logit for its given (or suggested) label: gradient and
        bias terms, the bias per layer, the top features (only for jobs whose models Curate trained)."""
        if "recorded" in self.summary:
            raise CurateError(f"job {self.job_id} recorded your own models' logits; Curate has no model of it to "
                              "explain (explain needs a job Curate trained: curate.score)", "model_not_kept", 409)
        return self._source.explain(self.job_id, example_id, method, target)

    def plot_dynamics(self) -> Figure:
        """Heatmaps of the consistency and consensus histograms over the epochs (a matplotlib Figure)."""
        from curate.plots import plot_dynamics

        return plot_dynamics(self.dynamics, title=f"job {self.job_id}")

    # --- the curation loop --------------------------------------------------------------

    def review(self, example_id: int, action: Action, label: str | None = None, note: str | None = None
               ) -> ReviewResult:
        """Decide on one example: relabel (to `label`, a class name), keep, exclude, or clear."""
        return self.review_many([DecisionIn(example_id=example_id, action=action, label=label, note=note)])

    def review_many(self, decisions: list[DecisionIn]) -> ReviewResult:
        """Several decisions, stored all or none."""
        return self._source.review(self.job_id, decisions, None)

    def accept_suggested(self, *, top: int | None = None, min_score: float | None = None) -> ReviewResult:
        """Relabel the `top` worst flagged examples (or every flagged one at or above `min_score`) to
        their suggested label."""
        return self._source.review(self.job_id, None, AcceptSuggested(top=top, min_score=min_score))

    def apply(self) -> DatasetOut:
        """A corrected version of the dataset with the decisions applied: a new dataset to score."""
        return self._source.apply(self.job_id)

    def diff(self, other: "Result | str") -> DiffOut:
        """`other` (a job on a corrected version) against this job."""
        return self._source.diff(self.job_id, other.job_id if isinstance(other, Result) else other)

    def export(self, output: str | Path, what: What = "scores", format: Literal["csv", "parquet", "jsonl"] = "csv"
               ) -> Path:
        """Write the rows of `curate export` to a file."""
        return self._source.export(self.job_id, Path(output), what, format)


def _histogram_frame(histograms: list[dict]) -> pd.DataFrame:
    rows = []
    for entry in histograms:
        n_bins = len(entry["consistency"])
        for b in range(n_bins):
            rows.append((entry["epoch"], b / n_bins, entry["consistency"][b], entry["consensus"][b]))
    return pd.DataFrame(rows, columns=["epoch", "bin", "consistency", "consensus"]).astype(
        {"epoch": np.int64, "bin": np.float64, "consistency": np.int64, "consensus": np.int64})

