"""Pydantic shapes of the REST API (the OpenAPI contract)."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from models.spec import AdaBoostSpec, TrainSpec


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class DatasetOut(BaseModel):
    dataset_id: str
    name: str
    kind: str
    source_format: str
    n_examples: int
    n_classes: int
    class_names: list[str]
    x_shape: list[int]
    sha256: str
    parent_id: str | None = None  # the dataset this version was made from; None for an upload
    version: int = 0  # 0 for an upload; 1, 2, ... for the versions made from its tree
    root_id: str | None = None  # the original upload this dataset descends from (itself for an upload)
    applied: dict[str, int] | None = None  # a version's decision counts {"relabel", "keep", "exclude"}
    reused: bool = False  # an upload of a file already stored: the stored dataset, not a new one
    # how the file was read (column roles, delimiter and encoding, text embedder, image size, backbone):
    # one key per reader, written at ingest (service.ingest.formats.LoadedDataset.report)
    ingest_report: dict[str, Any] = Field(default_factory=dict)


class JobIn(BaseModel):
    dataset_id: str
    spec: TrainSpec = Field(default_factory=TrainSpec)
    adaboost: AdaBoostSpec = Field(default_factory=AdaBoostSpec)


class JobOut(BaseModel):
    job_id: str
    dataset_id: str
    status: str
    attempt: int
    epochs_done: int
    epochs_total: int
    progress: float  # epochs_done / epochs_total in [0, 1]
    eta_seconds: float | None
    estimated_n_errors: int | None
    error: str | None
    spec: TrainSpec
    adaboost: AdaBoostSpec
    summary: dict | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # the job's training time estimated from its first timed epochs (service/engine/estimate.py),
    # refined as epochs land; None until the first epoch is trained
    estimated_seconds: float | None = None
    estimate_note: str | None = None  # what the estimate rests on; over 10 min on a CPU, what makes it faster


class ExampleOut(BaseModel):
    example_id: int
    source: str
    given_label: str
    consistency: float
    consensus: float
    consensus_label: str
    heldout_consistency: float | None
    accessibility: float
    first_learned_epoch: int
    mean_label_prob: float
    split: str
    mislabel_score: float
    is_suspected_mislabel: bool
    suggested_label: str
    adaboost_accessibility: float | None
    family_agreement: str | None
    decision: Literal["relabel", "keep", "exclude"] | None = None  # the current review decision
    decided_label: str | None = None  # the class a relabel decision gives (None otherwise)


class ExamplePage(BaseModel):
    job_id: str
    total: int
    limit: int
    offset: int
    items: list[ExampleOut]


class EpochHistogram(BaseModel):
    epoch: int
    consistency: list[int]
    consensus: list[int]


class DynamicsOut(BaseModel):
    job_id: str
    n_bins: int
    epochs: list[EpochHistogram]


class AdaBoostOut(BaseModel):
    job_id: str
    correlation: dict
    curves: dict[str, list[float | None]]


class Health(BaseModel):
    status: str
    version: str


class TopFeature(BaseModel):
    feature: str  # the feature's name, or "pixel (c, y, x)"
    index: list[int]  # position in the example's array
    value: float  # attribution (relevance w.r.t. the normalised input)


class ColumnAttribution(BaseModel):
    column: str  # a column of the uploaded table
    value: float  # the attribution summed over the column's features (one-hot parts, date parts, ...)


class AttributionOut(BaseModel):
    """Why the ensemble's logit for `target_label` is what it is, averaged over all members."""

    job_id: str
    example_id: int
    target: str  # given | suggested
    target_label: str
    method: str
    logit: float  # mean over members; = gradient_term + bias_term
    gradient_term: float  # grad logit . x (x: the normalised input the network sees)
    bias_term: float  # the part of the logit due to the biases (bias back-propagation)
    bias_share: float  # |bias_term| / (|gradient_term| + |bias_term|), in [0, 1]
    per_layer_bias_share: list[float]  # each affine layer's part of bias_term, first layer first
    top_features: list[TopFeature]  # the 10 largest |attribution|, largest first
    map_path: str  # .npy of the full map, relative to the data directory
    heatmap_path: str | None  # PNG (image and map side by side) for images
    map_shape: list[int]
    map: list[float]  # the full map, flattened in C order
    # tables with columns.json: the map summed per original column, largest |value| first; None otherwise
    by_column: list[ColumnAttribution] | None = None


# --- the curation loop: reviews, versions, diffs (/tmp/curation_contract.md) ------------------------

Action = Literal["relabel", "keep", "exclude", "clear"]
MAX_DECISIONS = 100_000


class DecisionIn(BaseModel):
    example_id: int = Field(ge=0, le=2**31 - 1)
    action: Action
    label: str | None = Field(None, max_length=256)  # a class NAME; only with relabel
    note: str | None = Field(None, max_length=2000)


class AcceptSuggested(BaseModel):
    top: int | None = Field(None, ge=1, le=10**7)  # the K worst flagged examples
    min_score: float | None = Field(None, ge=0.0, le=1.0)  # every flagged example at or above

    @model_validator(mode="after")
    def _one_of(self) -> "AcceptSuggested":
        if (self.top is None) == (self.min_score is None):
            raise ValueError("give exactly one of top or min_score")
        return self


class ReviewIn(BaseModel):
    decisions: list[DecisionIn] | None = Field(None, max_length=MAX_DECISIONS)
    accept_suggested: AcceptSuggested | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "ReviewIn":
        if (self.decisions is None) == (self.accept_suggested is None):
            raise ValueError("give exactly one of decisions or accept_suggested")
        return self


class ReviewResult(BaseModel):
    job_id: str
    n_applied: int  # decisions stored by this request
    counts: dict[str, int]  # current decisions after it: {"relabel", "keep", "exclude"}


class ReviewOut(BaseModel):
    example_id: int
    source: str
    given_label: str
    suggested_label: str
    mislabel_score: float
    action: str
    label: str | None  # the decided class of a relabel
    note: str | None
    decided_by: str
    decided_at: datetime


class ReviewPage(BaseModel):
    job_id: str
    total: int
    limit: int
    offset: int
    counts: dict[str, int]
    items: list[ReviewOut]


class VersionIn(BaseModel):
    from_job: str = Field(max_length=64)


class SuspectCounts(BaseModel):
    resolved: int  # suspect in a, not in b
    still_suspect: int  # suspect in both
    new: int  # suspect in b, not in a


class ClassDiff(BaseModel):
    class_: str = Field(alias="class")
    suspects_a: int  # by the given label in a's dataset
    suspects_b: int  # by the given label in b's dataset
    resolved: int  # by the given label in a's dataset
    new: int  # by the given label in b's dataset

    model_config = {"populate_by_name": True}


class DiffOut(BaseModel):
    job_a: str
    job_b: str
    dataset_a: str
    dataset_b: str
    estimated_errors: dict[str, int | None]  # {"a", "b"}
    splits: dict[str, dict[str, int]]  # split in a -> split in b -> examples (matched by lineage)
    suspects: SuspectCounts
    per_class: list[ClassDiff]
    excluded: int  # a's examples with no row in b's dataset
    relabelled: int  # matched examples whose given label differs


# --- recorded jobs: dynamics of the user's own models (curate.Recorder, routes/recorded.py) ---------------


class RecordedJobIn(BaseModel):
    dataset_id: str = Field(max_length=64)
    n_models: int = Field(1, ge=1, le=512, description="models expected (progress only; the logged ones count)")
    n_epochs: int = Field(1, ge=1, le=1000, description="trained epochs expected (progress only)")


class EpochLogged(BaseModel):
    job_id: str
    model: int
    epoch: int
    epochs_done: int  # (model, epoch) pairs committed so far, epoch 0 not counted
