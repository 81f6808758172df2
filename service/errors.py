"""Every error a user can cause. The API maps each to {"error": {"code", "message"}}; the CLI prints the message."""


class CurationError(Exception):
    """Base class: a problem the user can fix, with a message that names it."""

    status_code = 400
    code = "curation_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidDataset(CurationError):
    """The uploaded data cannot be used; the message names the file, row, column or class."""

    status_code = 422
    code = "invalid_dataset"


class UnsupportedFormat(InvalidDataset):
    status_code = 415
    code = "unsupported_format"


class DatasetTooLarge(InvalidDataset):
    status_code = 413
    code = "dataset_too_large"


class InvalidSpec(CurationError):
    status_code = 422
    code = "invalid_spec"


class NotFound(CurationError):
    status_code = 404
    code = "not_found"


class JobNotFinished(CurationError):
    status_code = 409
    code = "job_not_finished"


class JobFailed(CurationError):
    status_code = 409
    code = "job_failed"


class Conflict(CurationError):
    status_code = 409
    code = "conflict"


class JobCancelled(CurationError):
    """A job stopped by a cancel (or a signal to `curate score`); `retry` resumes it."""

    status_code = 409
    code = "job_cancelled"


class Busy(CurationError):
    """Too many requests of one kind at once; retry after `retry_after` seconds."""

    status_code = 429
    code = "busy"

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class RequestTimeout(CurationError):
    status_code = 408
    code = "request_timeout"


class ModelNotKept(CurationError):
    status_code = 409
    code = "model_not_kept"


class InvalidExport(CurationError):
    status_code = 422
    code = "invalid_export"


class InvalidQuery(CurationError):
    status_code = 422
    code = "invalid_query"


class NotDerived(CurationError):
    status_code = 422
    code = "not_derived"


class InvalidReview(CurationError):
    """A decision the job cannot take; the message names the example and the problem."""

    status_code = 422
    code = "invalid_review"


class InvalidVersion(CurationError):
    status_code = 422
    code = "invalid_version"


class HasVersions(Conflict):
    code = "has_versions"


class StoreLocked(CurationError):
    status_code = 409
    code = "store_locked"


class PayloadTooLarge(CurationError):
    """A request body past the size its endpoint can take (uploads have DatasetTooLarge)."""

    status_code = 413
    code = "payload_too_large"
