"""memctl status."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from memctl.cli import main
from memctl.cli.common import apply_flags, config_options, console, emit_json, json_option
from memctl.cli.output import results_console
from memctl.config import Config

if TYPE_CHECKING:
    from memctl.launch.cluster import QueuedJob
    from memctl.report.collect import StudySnapshot


@main.command()
@config_options
@click.option("--study", help="Study name (default: search.study of the config).")
@click.option("--storage", help="Storage URL (default: search.storage of the config).")
@click.option("--method", help="Of a global search, only this method's study.")
@click.option("--fix", is_flag=True,
              help="Fail RUNNING trials whose worker stopped sending heartbeats (and retry them).")
@json_option
def status(cfg: Config, config_given: bool, study: str | None, storage: str | None,
           method: str | None, fix: bool, as_json: bool) -> None:
    """Trials by state, running jobs, failures with reasons, ETA and the Pareto front (of a
    global search: the union of its methods' fronts)."""
    from memctl.report.collect import collect
    from memctl.search.lookup import fail_stale_trials, open_studies

    cfg = apply_flags(cfg, study=study, storage=storage)
    studies, url = open_studies(cfg, method)
    if fix:
        for st in studies:
            failed = fail_stale_trials(st)
            console.print(f"{st.study_name}: failed {len(failed)} stale trial(s): {failed}")
    snap = collect(studies, url, name=cfg.search.study if len(studies) > 1 else None)
    queued = [job for st in studies for job in _queued_workers(st.user_attrs)]
    target = len(studies) * int(snap.config.get("search", {}).get("trials", 0))
    remaining = max(0, target - snap.counts.get("COMPLETE", 0))
    eta_h = remaining / snap.trials_per_hour if snap.trials_per_hour and remaining else None
    if as_json:
        emit_json(_status_json(snap, target, eta_h, queued))
        return
    _print_status(snap, eta_h, remaining)
    out = results_console()
    for job in queued:  # e.g. a worker array SLURM cannot start (reason PartitionConfig)
        reason = f" ({job.reason})" if job.state == "PENDING" and job.reason else ""
        out.print(escape(f"slurm job {job.job_id}: {job.state.lower()}{reason}"))


def _status_json(snap: StudySnapshot, target: int, eta_h: float | None,
                 queued: list[QueuedJob]) -> dict:
    return {
        "study": snap.name, "storage": snap.storage, "counts": snap.counts,
        "target_trials": target, "eta_hours": eta_h,
        "hypervolume": snap.hypervolume, "hv_reference": snap.hv_reference,
        "trials_per_hour": snap.trials_per_hour,
        "picked": snap.picked, "picked_study": snap.picked_study, "studies": snap.studies,
        "front": [dataclasses.asdict(r) for r in snap.front],
        "failed": [dataclasses.asdict(r) for r in snap.rows if r.state == "FAIL"],
        "running": [dataclasses.asdict(r) for r in snap.rows if r.state == "RUNNING"],
        "slurm_jobs": [dataclasses.asdict(j) for j in queued],
    }


def _queued_workers(attrs: dict[str, Any]) -> list[QueuedJob]:
    """The study's SLURM worker jobs still queued or running, as squeue reports them."""
    from memctl.launch.cluster import SLURM_JOBS_ATTR, queued_jobs

    return queued_jobs(list(attrs.get(SLURM_JOBS_ATTR, []))) or []


def _print_status(snap: StudySnapshot, eta_h: float | None, remaining: int) -> None:
    """The status as text on stdout: counts, speed, Pareto front, running and failed trials."""
    out = results_console()
    counts = ", ".join(f"{k.lower()} {v}" for k, v in snap.counts.items() if v) or "no trials"
    out.print(f"study [bold]{escape(snap.name)}[/] ({snap.method}/{snap.space}) in "
              f"{escape(snap.storage)}: {counts}")
    if snap.hypervolume is not None:
        ref = ", ".join(f"{v:g}" for v in snap.hv_reference)
        out.print(f"hypervolume {snap.hypervolume:.4f} (reference d_mem, FID = {ref})"
                  + (f", {snap.trials_per_hour:.1f} trials/hour" if snap.trials_per_hour else "")
                  + (f", ETA {eta_h:.1f} h for {remaining} more" if eta_h else ""))
    several = len(snap.studies) > 1
    table = Table(title="Pareto front" + (" (union of the methods' studies)" if several else ""))
    for col in ("method",) * several + ("trial", "mask", "d_mem", "fid", "trainable", "picked"):
        table.add_column(col)
    for r in sorted(snap.front, key=lambda r: r.d_mem):
        table.add_row(*(r.method,) * several, str(r.number), r.mask, f"{r.d_mem:.4f}",
                      f"{r.fid:.2f}", f"{r.trainable:,}" if r.trainable is not None else "",
                      "*" if r.picked else "")
    out.print(table)
    for r in snap.rows:
        trial = f"{r.study} trial {r.number}" if several else f"trial {r.number}"
        if r.state == "RUNNING":
            out.print(escape(f"running: {trial} on {r.node or '?'} "
                             f"job {r.slurm_job_id or '-'}"))
        if r.state == "FAIL":
            out.print("[red]failed[/]: " + escape(f"{trial} mask {r.mask}: {r.error} "
                                                   f"{('log ' + r.log) if r.log else ''}"))
