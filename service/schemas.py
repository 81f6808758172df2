"""Pydantic shapes of the REST API (the OpenAPI contract)."""

from datetime import datetime

from pydantic import BaseModel, Field

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
