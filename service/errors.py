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
