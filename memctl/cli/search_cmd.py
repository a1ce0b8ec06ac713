"""memctl search / worker / status."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from memctl.cli import main
from memctl.cli.common import config_options, console, emit_json, json_option, progress_bar
from memctl.cli.output import emit, results_console
from memctl.config import EXECUTORS, METHODS, SPACES, Config, replace_section
from memctl.errors import UserError

if TYPE_CHECKING:
    from memctl.launch.cluster import QueuedJob
    from memctl.report.collect import StudySnapshot

# Where each flag lands in the config; every flag is validated like a config field.
_FLAG_FIELDS = {"trials": ("search", "trials"), "workers": ("search", "workers"),
                "executor": ("search", "executor"), "storage": ("search", "storage"),
                "study": ("search", "study"), "partition": ("slurm", "partition"),
                "container": ("slurm", "container"), "method": ("peft", "method"),
                "space": ("peft", "space")}


def _apply_flags(cfg: Config, **flags: Any) -> Config:
    """Command-line flags win over the config file."""
    for flag, value in flags.items():
        if value is None or flag not in _FLAG_FIELDS:
            continue
        section, name = _FLAG_FIELDS[flag]
        cfg = replace_section(cfg, section, f"--{flag}", **{name: value})
    return cfg


def _parse_bits(text: str) -> list[int]:
    bits = text.replace(",", "").strip()
    if not bits or set(bits) - {"0", "1"}:
        raise UserError(f"--enqueue {text!r}: expected a string of 0/1 bits")
    return [int(b) for b in bits]


@main.command()
@config_options
@click.option("--trials", type=int, help="Complete trials the study should hold.")
@click.option("--workers", type=int, help="Worker jobs (a SLURM array of this size).")
@click.option("--partition", help="SLURM partition.")
@click.option("--executor", type=click.Choice(EXECUTORS),
              help="Where workers run: slurm (a job array), local (processes here), debug "
                   "(in this process).")
@click.option("--storage", help="SQLAlchemy URL or *.journal file (default: sqlite in run_dir).")
@click.option("--study", help="Study name.")
@click.option("--space", type=click.Choice(SPACES),
              help="Bit layout: one bit per U-Net transformer block (blocks16), two per "
                   "block: self- and cross-attention (attn32), or the official code's "
                   "13 slots (paper13).")
@click.option("--method", type=click.Choice(METHODS),
              help="PEFT method trained in the blocks a mask selects.")
@click.option("--container", help="Apptainer image every job runs in.")
@click.option("--enqueue", multiple=True, help="Extra mask to evaluate first, e.g. 1010...")
@click.option("--follow/--detach", default=True, show_default=True,
              help="Follow progress until done, or return after submitting.")
@json_option
def search(cfg: Config, config_given: bool, enqueue: tuple[str, ...], follow: bool,
           as_json: bool, **flags) -> None:
    """Search masks with NSGA-II; each worker job runs trials of one shared study."""
    from memctl.search.head import run_search
    from memctl.search.study import check_reachable, storage_url

    cfg = _apply_flags(cfg, **flags)
    masks = [_parse_bits(m) for m in enqueue]
    check_reachable(storage_url(cfg))  # an unreachable database is the only line printed
    console.print(f"study [bold]{cfg.search.study}[/]: {cfg.search.trials} trials, "
                  f"{cfg.search.workers} workers ({cfg.search.executor}), "
                  f"method {cfg.peft.method}/{cfg.peft.space}")
    with progress_bar("caching") as cache_update, progress_bar("trials") as trial_update:
        def on_poll(c) -> None:
            trial_update(c.complete, cfg.search.trials,
                         f"running {c.running}, failed {c.failed}")

        result = run_search(cfg, follow=follow, enqueue=masks, progress=cache_update,
                            on_poll=on_poll)
    summary = {"study": result.study, "storage": result.storage, "jobs": result.job_ids,
               "complete": result.counts.complete, "failed": result.counts.failed,
               "running": result.counts.running, "worker_errors": result.worker_errors,
               "job_folder": result.submitit_folder,
               "report": f"{cfg.run_dir}/reports/{result.study}"}
    if as_json:
        emit_json(summary)
    else:
        verb = "finished" if follow else "submitted"
        emit(f"search {verb}: {result.counts.complete} complete, {result.counts.failed} "
             f"failed; study {result.study!r} in {result.storage}")
        for err in result.worker_errors:
            emit(f"worker error {err}")
        console.print(f"next: `memctl status`, `memctl retrain --best`, `memctl report` "
                      f"(writes {summary['report']}/report.html)")


@main.command(hidden=True)
@config_options
@click.option("--storage", required=True, help="Storage URL of the study.")
@click.option("--study", required=True, help="Study name.")
@click.option("--trials", type=int, required=True,
              help="Complete trials the study should hold.")
@click.option("--index", type=int, default=None,
              help="Worker index (default: SLURM_ARRAY_TASK_ID or 0); seeds the sampler.")
def worker(cfg: Config, config_given: bool, storage: str, study: str, trials: int,
           index: int | None) -> None:
    """Run trials of an existing study until it is full (what each job runs)."""
    import os

    from memctl.search.objective import TrialContext
    from memctl.search.study import load_study
    from memctl.search.worker import WorkerSpec, run_worker
    from memctl.workspace import proxy_set

    cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, study=study))
    attrs = load_study(cfg, storage).user_attrs
    if "config" not in attrs:
        raise UserError(f"study {study!r} was not created by `memctl search`")
    from memctl.config import config_from_dict
    from memctl.data.cache import CacheReader

    cfg = config_from_dict(attrs["config"])
    proxy = proxy_set(cfg, CacheReader(attrs["cache_path"]))
    ctx = TrialContext(attrs["model_dir"], attrs["cache_path"], proxy.train_indices,
                       proxy.dmem_indices, int(attrs["n_bits"]), list(attrs["block_names"]))
    if index is None:
        index = int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))
    summary = run_worker(WorkerSpec(cfg.to_dict(), storage, ctx, trials, index))
    emit_json(summary)


@main.command()
@config_options
@click.option("--study", help="Study name (default: search.study of the config).")
@click.option("--storage", help="Storage URL (default: search.storage of the config).")
@click.option("--fix", is_flag=True,
              help="Fail RUNNING trials whose worker stopped sending heartbeats (and retry them).")
@json_option
def status(cfg: Config, config_given: bool, study: str | None, storage: str | None,
           fix: bool, as_json: bool) -> None:
    """Trials by state, running jobs, failures with reasons, ETA and the Pareto front."""
    import optuna

    from memctl.report.collect import collect
    from memctl.search.study import load_study, mask_url, storage_url

    cfg = _apply_flags(cfg, study=study, storage=storage)
    url = storage_url(cfg)
    st = load_study(cfg, url)
    if fix:
        before = {t.number for t in st.get_trials(deepcopy=False) if t.state.name == "RUNNING"}
        optuna.storages.fail_stale_trials(st)
        after = {t.number for t in st.get_trials(deepcopy=False) if t.state.name == "RUNNING"}
        console.print(f"failed {len(before - after)} stale trial(s): {sorted(before - after)}")
    snap = collect(st, mask_url(url))
    queued = _queued_workers(st.user_attrs)
    target = int(snap.config.get("search", {}).get("trials", 0))
    remaining = max(0, target - snap.counts.get("COMPLETE", 0))
    eta_h = remaining / snap.trials_per_hour if snap.trials_per_hour and remaining else None
    if as_json:
        emit_json({
            "study": snap.name, "storage": snap.storage, "counts": snap.counts,
            "target_trials": target, "eta_hours": eta_h,
            "hypervolume": snap.hypervolume, "trials_per_hour": snap.trials_per_hour,
            "picked": snap.picked,
            "front": [dataclasses.asdict(r) for r in snap.front],
            "failed": [dataclasses.asdict(r) for r in snap.rows if r.state == "FAIL"],
            "running": [dataclasses.asdict(r) for r in snap.rows if r.state == "RUNNING"],
            "slurm_jobs": [dataclasses.asdict(j) for j in queued],
        })
        return
    _print_status(snap, eta_h, remaining)
    out = results_console()
    for job in queued:  # e.g. a worker array SLURM cannot start (reason PartitionConfig)
        reason = f" ({job.reason})" if job.state == "PENDING" and job.reason else ""
        out.print(escape(f"slurm job {job.job_id}: {job.state.lower()}{reason}"))


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
        out.print(f"hypervolume {snap.hypervolume:.4f}"
                  + (f", {snap.trials_per_hour:.1f} trials/hour" if snap.trials_per_hour else "")
                  + (f", ETA {eta_h:.1f} h for {remaining} more" if eta_h else ""))
    table = Table(title="Pareto front")
    for col in ("trial", "mask", "d_mem", "fid", "trainable", "picked"):
        table.add_column(col)
    for r in sorted(snap.front, key=lambda r: r.d_mem):
        table.add_row(str(r.number), r.mask, f"{r.d_mem:.4f}", f"{r.fid:.2f}",
                      f"{r.trainable:,}" if r.trainable is not None else "",
                      "*" if r.picked else "")
    out.print(table)
    for r in snap.rows:
        if r.state == "RUNNING":
            out.print(escape(f"running: trial {r.number} on {r.node or '?'} "
                             f"job {r.slurm_job_id or '-'}"))
        if r.state == "FAIL":
            out.print("[red]failed[/]: " + escape(f"trial {r.number} mask {r.mask}: {r.error} "
                                                   f"{('log ' + r.log) if r.log else ''}"))
