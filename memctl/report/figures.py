"""Figures as PNG bytes (embedded in the HTML report, also written as files)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # batch nodes have no display
import matplotlib.pyplot as plt  # noqa: E402

from memctl.report.collect import StudySnapshot  # noqa: E402


def pareto_scatter(snap: StudySnapshot) -> bytes:
    """All complete trials, the front highlighted and joined, the picked mask marked."""
    done = [r for r in snap.rows if r.state == "COMPLETE"]
    front = sorted(snap.front, key=lambda r: r.d_mem)
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    ax.scatter([r.d_mem for r in done], [r.fid for r in done], s=18, c="#9aa5b1",
               label=f"trials (n={len(done)})")
    if front:
        ax.plot([r.d_mem for r in front], [r.fid for r in front], "-o", c="#d1495b", ms=5,
                label=f"Pareto front (n={len(front)})")
    for r in done:
        if r.picked:
            ax.scatter([r.d_mem], [r.fid], s=180, marker="*", c="#edae49", edgecolors="k",
                       zorder=5, label=f"picked: trial {r.number}")
    ax.set_xlabel("d_mem (memorisation, lower is better)")
    ax.set_ylabel("FID on validation (lower is better)")
    ax.set_title(f"{snap.name}: {snap.method} / {snap.space}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
