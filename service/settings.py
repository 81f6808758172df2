"""Service settings, read from CURATE_* environment variables (never at import time)."""

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CURATE_", frozen=True)

    data_dir: Path = Field(Path("data"), description="DuckDB file, datasets/, jobs/, exports/")
    easy_at_least: float = Field(0.8, ge=0.0, le=1.0, description="accessibility at or above -> split easy")
    hard_below: float = Field(0.3, ge=0.0, le=1.0, description="accessibility below -> split hard")
    max_upload_bytes: int = Field(2 * 1024**3, ge=1, description="largest accepted upload or file")
    max_archive_bytes: int = Field(2 * 1024**3, ge=1, description="largest total uncompressed size of a zip")
    max_files: int = Field(200_000, ge=1, description="most files in an image folder or zip")
    duckdb_memory_limit: str = Field("1GB", description="DuckDB buffer memory of the engine process "
                                     "(DuckDB's own default is 80 % of RAM)")
    max_concurrent_jobs: int = Field(1, ge=1, le=64, description="jobs the server trains at once")
    api_keys: str = Field("", description="extra API keys as name=key pairs, comma-separated")
    max_page_size: int = Field(1000, ge=1, le=100_000, description="largest `limit` of a paginated read")
    result_cache_mb: float = Field(512, ge=0, description="memory for succeeded jobs' scores and payloads kept "
                                   "by the read endpoints (least recently used first out; 0 = off)")
    ray_cpus_per_group: float = Field(1.0, gt=0, description="Ray executor: CPUs per member group")
    ray_gpus_per_group: float = Field(0.0, ge=0, le=1, description="Ray executor: GPUs per member group")
    ray_members_per_gpu: int = Field(0, ge=0, description="Ray executor: members sharing one GPU (0 = use ray_gpus_per_group)")
    ray_shared_dir: Path | None = Field(None, description="Ray executor: checkpoint dir on storage every node sees")
    torch_threads: int = Field(0, ge=0, le=1024, description="CPU threads per training worker; 0 = one for an MLP, "
                               "cores / max_workers for a CNN")
    max_workers: int = Field(1, ge=1, le=64, description="member groups trained at once by the local executor "
                             "(the AdaBoost baseline runs beside them)")
    explain_max_examples: int = Field(2000, ge=0, le=1_000_000, description="suspected mislabels and hard examples "
                                      "explained (attributions) after each job; 0 = none")

    max_image_pixels: int = Field(25_000_000, ge=1, description="largest image accepted, in pixels (width x "
                                  "height, checked before decoding: a decompression-bomb guard)")
    max_decoded_bytes: int = Field(1024**3, ge=1, description="total bytes of decoded pixels of one image upload "
                                   "(after resize)")
    max_job_memory: int = Field(0, ge=0, description="largest estimated memory of one member group of a job, in "
                                "bytes (weights, optimiser state, activations, data); 0 = half of this host's RAM")
    attribution_workers: int = Field(1, ge=1, le=64, description="on-demand attributions computed at once")
    attribution_queue: int = Field(4, ge=0, le=1000, description="on-demand attributions waiting for a worker; "
                                   "past that 429 with Retry-After")
    body_read_timeout_s: float = Field(60.0, ge=0, description="seconds each part of a request body may take to "
                                       "arrive before 408 (0 = no limit)")

    def threads_per_worker(self, cnn: bool) -> int:
        """Torch CPU threads of a training or explanation worker: torch_threads where set; else one for an
        MLP, cores / max_workers for a CNN. An MLP's matrices are too small to split across threads whose
        idle waits sleep (OMP_WAIT_POLICY=PASSIVE, set for every worker): two threads trained digits'
        default ensemble 1.8-2.0x slower than one, with records equal bit for bit (benchmarks/results/threads.md)."""
        if self.torch_threads:
            return self.torch_threads
        return max(1, (os.cpu_count() or 1) // self.max_workers) if cnn else 1

    @property
    def db_path(self) -> Path:
        return self.data_dir / "curate.duckdb"

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def exports_dir(self) -> Path:
        """Download files while they are sent (one tmp* folder each) and plots/."""
        return self.data_dir / "exports"

    @property
    def plots_dir(self) -> Path:
        """The dashboard's PNGs, drawn once: <job_id>-<plot>.png (service.web.report.plot_path)."""
        return self.exports_dir / "plots"

    @property
    def uploads_dir(self) -> Path:
        """Uploads while they stream in (one folder each, removed when stored or refused)."""
        return self.data_dir / "uploads"

    @property
    def demo_dir(self) -> Path:
        return self.data_dir / "demo"

    @property
    def server_marker(self) -> Path:
        """server.json: the URL and pid of the server running on this data dir (the CLI talks to it)."""
        return self.data_dir / "server.json"

    @property
    def session_secret_path(self) -> Path:
        """The dashboard's cookie-signing secret (mode 0600)."""
        return self.data_dir / "session.secret"

    # --- one job's folder: jobs/<job_id>/{<model>-group-<g>/ckpt/, model/, attributions/} -------------
    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def checkpoint_dir(self, job_id: str, model: str, group: int) -> Path:
        """A member group's epoch-<k>.pt checkpoints, kept until the job succeeds."""
        return self.job_dir(job_id) / f"{model}-group-{group}" / "ckpt"

    def model_path(self, job_id: str, group: int) -> Path:
        """An ensemble group's final weights, kept after the job for attributions."""
        return self.job_dir(job_id) / "model" / f"ensemble-group-{group}.pt"

    def attributions_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "attributions"


@lru_cache
def get_settings() -> Settings:
    return Settings()
