"""`memctl retrain` as a batch job on the real dev SLURM cluster, requeued mid-run."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

import pytest

from tests.slurm_jobs import release_requeued

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

STEPS = 60
SMALL = [
    "data.synth_n=60", "data.dmem_size=4", "data.dmem_repeats=4", "train.batch_size=4",
    "train.lr=1e-3", "eval.fid_samples=4", "eval.num_inference_steps=2",
    "eval.dmem_timesteps=[500]", "eval.dmem_noise_seeds=1", f"train.retrain_steps={STEPS}",
    "train.log_every=1", "train.checkpoint_every=1000",  # only a stop checkpoints mid-run
]


def test_requeued_retrain_job_checkpoints_its_step_and_resumes_there(tmp_path, dev_cluster):
    subprocess.run([sys.executable, "-m", "memctl", "cache", "build", *SMALL], cwd=tmp_path,
                   check=True, capture_output=True, timeout=600)  # the job only trains
    mask = tmp_path / "mask.json"
    mask.write_text(json.dumps({"bits": "1" * 16, "method": "attention", "space": "blocks16"}))
    out, log = tmp_path / "retrain", tmp_path / "job.log"
    command = shlex.join([sys.executable, "-m", "memctl", "retrain", "--mask", str(mask),
                          "--out", str(out), *SMALL])
    job_id = subprocess.run(
        ["sbatch", "--parsable", "--partition", "cpu", "--time", "10", "--requeue",
         "--open-mode", "append", "--output", str(log), "--chdir", str(tmp_path),
         "--wrap", command], check=True, capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "1000"},  # rich: one log record per line
    ).stdout.strip().split(";")[0]

    deadline = time.monotonic() + 300
    while not (out / "metrics.jsonl").is_file() or not (out / "metrics.jsonl").read_text():
        assert time.monotonic() < deadline, f"no training step logged:\n{log.read_text()}"
        time.sleep(0.2)
    # SIGTERM now, SIGKILL KillWait later: the run checkpoints its current step and exits.
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)
    release_requeued(job_id)
    deadline = time.monotonic() + 400
    while not (out / "metrics.json").is_file():
        assert time.monotonic() < deadline, f"retrain did not finish:\n{log.read_text()}"
        time.sleep(1)

    text = log.read_text()
    stopped = [line for line in text.splitlines() if "training stopped after step" in line]
    assert stopped, text
    step = int(stopped[0].split("training stopped after step ")[1].split()[0])
    assert 0 < step < STEPS
    assert "the same command resumes from that step" in stopped[0]
    assert f"resuming from {out}/checkpoints/step-{step:08d} (step {step})" in text
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert kept == [f"step-{step:08d}", f"step-{STEPS:08d}"]  # off the every-1000 schedule
    logged = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(STEPS))  # every step trained once, none lost or repeated
    assert (out / "pipeline").is_dir()
