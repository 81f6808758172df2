"""The job queue of a running server: queued jobs start in creation order, at most
`max_concurrent_jobs` at a time, each in its own thread that drives its executor.

On start-up, jobs left `running` by a crashed server resume from their last committed epoch,
jobs left `running` by an in-process `curate score` that died are marked cancelled (not resumed:
nobody asked this server to run them; `retry` does), and jobs left `cancelling` are marked
cancelled. The log says which.
"""

import logging
import threading
import time

from service.engine.engine import Engine
from service.store import jobs

log = logging.getLogger("curate.scheduler")


class Scheduler:
    def __init__(self, engine: Engine, max_concurrent_jobs: int = 1, poll_seconds: float = 0.25) -> None:
        self.engine = engine
        self.max_concurrent_jobs = max_concurrent_jobs
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._running: dict[str, threading.Thread] = {}
        self._thread = threading.Thread(target=self._loop, name="curate-scheduler", daemon=True)

    def start(self) -> None:
        for job_id in self.engine.cancel_interrupted_cli_jobs():
            log.warning("job %s was interrupted while running in-process (curate score): not resumed, marked "
                        "cancelled (curate retry %s resumes it)", job_id, job_id)
        jobs.finish_cancelling(self.engine.store)
        for job_id in self.engine.interrupted_jobs():
            log.warning("resuming job %s: it was running under a server that stopped", job_id)
        if jobs.runnable_job_ids(self.engine.store):  # else the first upload or submit warms them up
            self.engine.warm_up_workers()
        self._thread.start()

    def wake(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop looking for jobs and wait (up to `timeout` s in all) for the job threads, which stop
        at their next check of engine.stopping, so none still reads the store when it closes."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        for thread in list(self._running.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _next_jobs(self) -> list[str]:
        return [j for j in jobs.runnable_job_ids(self.engine.store) if j not in self._running]

    def _loop(self) -> None:
        while not self._stop.is_set():
            for job_id, thread in list(self._running.items()):
                if not thread.is_alive():
                    del self._running[job_id]
            free = self.max_concurrent_jobs - len(self._running)
            for job_id in self._next_jobs()[:max(free, 0)]:
                thread = threading.Thread(target=self._run, args=(job_id,), name=f"job-{job_id}", daemon=True)
                self._running[job_id] = thread
                thread.start()
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _run(self, job_id: str) -> None:
        try:
            self.engine.run(job_id)  # a success calls the engine's on_succeeded hooks (cache warming)
        except Exception:  # recorded on the job by run_job; keep the scheduler alive
            log.exception("job %s failed", job_id)

    def running_jobs(self) -> list[str]:
        return [j for j, t in self._running.items() if t.is_alive()]

