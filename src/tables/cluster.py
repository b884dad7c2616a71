"""The rows of a table as cluster jobs through ``submitit``: one job per run (row x k x seed).

``make ablate ... LAUNCHER=slurm [PARTITION=] [GPUS_PER_JOB=1] [TIME=240] [ARRAY_PARALLELISM=32]``
submits one SLURM array (``sbatch --array=0-N%P``) whose every task runs ``python -m src.run``
exactly as ``make train`` would, waits for them, collects their run directories and builds the
table. ``LAUNCHER=submitit-local`` swaps in submitit's local executor: the same jobs as real
subprocesses on this machine (how the tests run it; it runs all jobs at once). Job logs: ``runs/tables/submitit/``.

Public API: ``ClusterOptions``, ``run_row``, ``make_executor``, ``submit_rows``.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from src.tables.parallel import Progress, RowTask
from src.tables.records import RunRecord
from src.tables.spec import REPO, SpecError

CLUSTERS = ("slurm", "local")


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how the jobs run; ``slurm_extra`` is passed to submitit as ``slurm_<key>``."""

    folder: Path
    cluster: str = "slurm"
    partition: str | None = None
    gpus_per_job: int = 1
    cpus_per_job: int | None = None
    time_min: int = 240
    array_parallelism: int = 32
    poll_s: float = 10.0
    slurm_extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.cluster not in CLUSTERS:
            raise SpecError(f"cluster {self.cluster!r} is not valid; choose one of {list(CLUSTERS)}")
        for name, value in (("GPUS_PER_JOB", self.gpus_per_job), ("TIME", self.time_min),
                            ("ARRAY_PARALLELISM", self.array_parallelism)):
            if value < (0 if name == "GPUS_PER_JOB" else 1):
                raise SpecError(f"{name}={value} must be {'>= 0' if name == 'GPUS_PER_JOB' else 'positive'}")
        if self.cluster == "slurm" and shutil.which("sbatch") is None:
            raise SpecError("LAUNCHER=slurm needs `sbatch` on PATH (run it on a SLURM login node); "
                            "LAUNCHER=submitit-local runs the same jobs with submitit's local executor here")


def run_row(argv: list[str]) -> str:
    """The body of one job: the launcher in a subprocess; returns the run directory."""
    from src.tables.launch import run_launcher

    return str(run_launcher(argv))


def make_executor(options: ClusterOptions, name: str) -> Any:
    """A submitit executor with the options applied (SLURM, or the local executor)."""
    import submitit

    options.validate()
    executor = submitit.AutoExecutor(folder=str(options.folder), cluster=options.cluster)
    params: dict[str, Any] = {"name": name, "timeout_min": options.time_min, "nodes": 1, "tasks_per_node": 1}
    if options.cpus_per_job:
        params["cpus_per_task"] = options.cpus_per_job
    if options.cluster == "local":
        params["local_setup"] = [f"cd {shlex.quote(str(REPO))}"]  # jobs import src from the repository
    if options.cluster == "slurm":
        params.update(gpus_per_node=options.gpus_per_job, slurm_array_parallelism=options.array_parallelism,
                      slurm_setup=[f"cd {shlex.quote(str(REPO))}"])
        if options.partition:
            params["slurm_partition"] = options.partition
        params.update({f"slurm_{k}": v for k, v in options.slurm_extra.items()})
    executor.update_parameters(**params)
    return executor


def submit_rows(tasks: list[RowTask], options: ClusterOptions, progress: Progress,
                record_of: Callable[[Path], RunRecord]) -> dict[int, RunRecord | str]:
    """Submit one job per task as one array, wait for all; ``{task index: record or error}``."""
    import submitit

    executor = make_executor(options, name=tasks[0].label.split("/")[0].replace(" ", "-") if tasks else "row")
    jobs = executor.map_array(run_row, [t.argv for t in tasks])
    index = {id(job): i for i, job in enumerate(jobs)}
    progress.say(f"submitted {len(jobs)} job(s) ({options.cluster}): {', '.join(j.job_id for j in jobs)}; "
                 f"logs in {options.folder}")
    out: dict[int, RunRecord | str] = {}
    for job in submitit.helpers.as_completed(jobs, poll_frequency=options.poll_s):
        i = index[id(job)]
        try:
            record = record_of(Path(job.result()))
        except Exception as err:  # noqa: BLE001 - a failed job is reported, the others are kept
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            out[i] = f"job {job.job_id} failed ({first}); log: {job.paths.stdout}"
            progress.finished(tasks[i].label, 0.0, error=out[i])
            continue
        out[i] = record
        progress.finished(f"{tasks[i].label} (job {job.job_id})", float(record.meta.get("wall_s") or 0.0), record)
    return out
