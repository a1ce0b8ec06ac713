"""memctl search."""

from __future__ import annotations

import click

from memctl.cli import main
from memctl.cli.common import (
    apply_flags,
    config_options,
    console,
    emit_json,
    json_option,
    progress_bar,
)
from memctl.cli.output import emit
from memctl.config import EXECUTORS, SEARCHABLE, SPACES, Config, replace_section
from memctl.errors import UserError


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
@click.option("--method", "methods",
              help="PEFT method trained in the blocks a mask selects; several, comma-separated "
                   "(svdiff,difffit,attention), run a global search: one study per method, "
                   f"their fronts joined. Choices: {', '.join(SEARCHABLE)}.")
@click.option("--container", help="Apptainer image every job runs in.")
@click.option("--enqueue", multiple=True, help="Extra mask to evaluate first, e.g. 1010...")
@click.option("--follow/--detach", default=True, show_default=True,
              help="Follow progress until done, or return after submitting.")
@json_option
def search(cfg: Config, config_given: bool, enqueue: tuple[str, ...], follow: bool,
           as_json: bool, methods: str | None, **flags) -> None:
    """Search masks with NSGA-II; each worker job runs trials of one shared study."""
    from memctl.search.head import run_searches
    from memctl.search.study import check_reachable, storage_url

    cfg = _with_methods(apply_flags(cfg, **flags), methods)
    masks = [_parse_bits(m) for m in enqueue]
    check_reachable(storage_url(cfg))  # an unreachable database is the only line printed

    def on_study(one: Config) -> None:
        console.print(f"study [bold]{one.search.study}[/]: {one.search.trials} trials, "
                      f"{one.search.workers} workers ({one.search.executor}), "
                      f"method {one.peft.method}/{one.peft.space}")

    with progress_bar("caching") as cache_update, progress_bar("trials") as trial_update:
        def on_poll(c) -> None:
            trial_update(c.complete, cfg.search.trials,
                         f"running {c.running}, failed {c.failed}")

        results = run_searches(cfg, follow=follow, enqueue=masks, progress=cache_update,
                               on_study=on_study, on_poll=on_poll)
    studies = [_summary(r, cfg) for r in results]
    summary = studies[0] if len(studies) == 1 else {
        "study": cfg.search.study, "methods": cfg.search.methods, "studies": studies,
        "storage": results[0].storage, **{k: sum(s[k] for s in studies)
                                          for k in ("complete", "failed", "running")},
        "report": f"{cfg.run_dir}/reports/{cfg.search.study}"}
    if as_json:
        emit_json(summary)
        return
    verb = "finished" if follow else "submitted"
    for r in results:
        emit(f"search {verb}: {r.counts.complete} complete, {r.counts.failed} "
             f"failed; study {r.study!r} in {r.storage}")
        for err in r.worker_errors:
            emit(f"worker error {err}")
    console.print(f"next: `memctl status`, `memctl retrain --best`, `memctl report` "
                  f"(writes {summary['report']}/report.html)")


def _with_methods(cfg: Config, methods: str | None) -> Config:
    """--method M sets peft.method; --method A,B,C a global search (search.methods)."""
    if methods is None:
        return cfg
    names = [m.strip() for m in methods.split(",") if m.strip()]
    bad = [m for m in names if m not in SEARCHABLE]
    if bad or not names:
        raise UserError(f"--method: unknown {', '.join(bad) or '(none given)'}; choose from "
                        f"{', '.join(SEARCHABLE)}")
    if len(names) == 1:
        cfg = replace_section(cfg, "search", "--method", methods=[])
        return replace_section(cfg, "peft", "--method", method=names[0])
    return replace_section(cfg, "search", "--method", methods=list(dict.fromkeys(names)))


def _summary(result, cfg: Config) -> dict:
    return {"study": result.study, "storage": result.storage, "jobs": result.job_ids,
            "complete": result.counts.complete, "failed": result.counts.failed,
            "running": result.counts.running, "worker_errors": result.worker_errors,
            "job_folder": result.submitit_folder,
            "report": f"{cfg.run_dir}/reports/{result.study}"}
