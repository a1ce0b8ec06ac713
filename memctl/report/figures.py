"""Figures as PNG bytes (embedded in the HTML report, also written as files)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # batch nodes have no display
import matplotlib.pyplot as plt  # noqa: E402

from memctl.report.collect import StudySnapshot  # noqa: E402
from memctl.report.compare import EvaluationRow  # noqa: E402

_METHOD_COLOURS = ("#4c78a8", "#59a14f", "#b07aa1", "#9c755f", "#76b7b2", "#ff9da7")
_STATE_COLOURS = {"COMPLETE": "#59a14f", "RUNNING": "#4c78a8", "FAIL": "#d1495b",
                  "PRUNED": "#9aa5b1", "WAITING": "#edae49"}


def _png(fig: plt.Figure) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def pareto_scatter(snap: StudySnapshot, baselines: Sequence[EvaluationRow] = ()) -> bytes:
    """The paper's Figure 3: every complete trial in (d_mem, FID) (coloured by method when
    several were searched), the union front joined, the pick starred, and each evaluated
    model as a square (its FID is on the test split, the trials' on validation)."""
    done = [r for r in snap.rows if r.state == "COMPLETE"]
    front = sorted(snap.front, key=lambda r: (r.d_mem, r.fid))
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    methods = snap.methods if len(snap.studies) > 1 else []
    for i, method in enumerate(methods or [None]):
        mine = [r for r in done if method is None or r.method == method]
        ax.scatter([r.d_mem for r in mine], [r.fid for r in mine], s=18,
                   c=_METHOD_COLOURS[i % len(_METHOD_COLOURS)] if method else "#9aa5b1",
                   label=f"{method or 'trials'} (n={len(mine)})")
    if front:
        ax.plot([r.d_mem for r in front], [r.fid for r in front], "-o", c="#d1495b", ms=5,
                mfc="none", label=f"Pareto front (n={len(front)})")
    for r in done:
        if r.picked:
            ax.scatter([r.d_mem], [r.fid], s=180, marker="*", c="#edae49", edgecolors="k",
                       zorder=5, label=f"picked: {r.study} trial {r.number}")
    for row in baselines:
        if row.same_as:
            continue  # drawn under the run it equals
        ax.scatter([row.d_mem], [row.fid], s=60, marker="s", facecolors="none",
                   edgecolors="#333", zorder=4)
        ax.annotate(row.name, (row.d_mem, row.fid), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    if baselines:
        ax.scatter([], [], s=60, marker="s", facecolors="none", edgecolors="#333",
                   label="evaluated models (test FID)")
    ax.set_xlabel("d_mem (memorisation, lower is better)")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title(f"{snap.name}: {snap.method} / {snap.space}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def hypervolume_history(snap: StudySnapshot) -> bytes:
    """Hypervolume of the front after each complete trial, against the fixed reference."""
    fig, ax = plt.subplots(figsize=(6.4, 3.0), dpi=120)
    ax.plot(range(1, len(snap.hv_history) + 1), snap.hv_history, "-", c="#4c78a8")
    ref = ", ".join(f"{v:g}" for v in snap.hv_reference)
    ax.set_xlabel("complete trials (in the order they finished)")
    ax.set_ylabel("hypervolume")
    ax.set_title(f"reference (d_mem, FID) = ({ref})"
                 + ("" if snap.hv_reference_recorded else " derived, not recorded"), fontsize=9)
    ax.grid(alpha=0.3)
    return _png(fig)


def trials_over_time(snap: StudySnapshot) -> bytes:
    """Trials by state over wall-clock time: finished ones cumulatively, running ones as
    how many ran at each moment."""
    fig, ax = plt.subplots(figsize=(6.4, 3.0), dpi=120)
    started = [dt.datetime.fromisoformat(r.started) for r in snap.rows if r.started]
    if started:
        t0 = min(started)

        def hours(stamp: str) -> float:
            return (dt.datetime.fromisoformat(stamp) - t0) / dt.timedelta(hours=1)

        for state in ("COMPLETE", "FAIL", "PRUNED"):
            ends = sorted(hours(r.completed) for r in snap.rows
                          if r.state == state and r.completed)
            if ends:
                ax.step([0.0, *ends], range(len(ends) + 1), where="post",
                        c=_STATE_COLOURS[state], label=f"{state.lower()} ({len(ends)})")
        events = sorted([(hours(r.started), 1) for r in snap.rows if r.started]
                        + [(hours(r.completed), -1) for r in snap.rows if r.completed])
        running, xs, ys = 0, [0.0], [0]
        for when, change in events:
            running += change
            xs.append(when)
            ys.append(running)
        ax.step(xs, ys, where="post", c=_STATE_COLOURS["RUNNING"], alpha=0.7,
                label="running")
        ax.legend(fontsize=7)
    ax.set_xlabel("hours since the first trial started")
    ax.set_ylabel("trials")
    ax.grid(alpha=0.3)
    return _png(fig)
