"""Helpers for tests that drive jobs on the dev SLURM cluster."""

from __future__ import annotations

import subprocess
import time


def release_requeued(job_id: str, timeout: float = 150) -> None:
    """SLURM holds a requeued job back (reason BeginTime, ~2 min) before it may run again;
    lift that hold so the test does not idle. Changes nothing about what the job does.

    The new start is 2 s out: slurmd refuses a job whose credential was revoked (at the
    requeue) in the same second as the new one was issued ("Job credential revoked").
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T %r"], capture_output=True,
                             text=True, timeout=30).stdout.split()
        if out == ["PENDING", "BeginTime"]:
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now+2"],
                           check=True, timeout=30)
            return
        if not out:  # finished (or aged out): nothing to release
            return
        time.sleep(0.3)
