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
