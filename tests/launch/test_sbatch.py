"""slurm/*.sbatch and the worker-array submission rendered by submitit.

Cluster tests read the dev cluster's env file (slurm/dev/up.sh writes it) and skip without
it, or fail when MEMCTL_REQUIRE_INFRA=1. Jobs run "in the image" through the pass-through
apptainer shim of test_container.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memctl.config import SlurmConfig
from memctl.launch.executors import make_executor
from tests.conftest import require_dev_env
from tests.launch._shim import read_calls, write_shim

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "slurm").glob("*.sbatch"))
GOLDEN = Path(__file__).parent / "golden" / "worker_array.sbatch"
UPDATE_ENV = "MEMCTL_UPDATE_GOLDEN"
VENV_BIN = Path(sys.executable).parent


def _names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_every_workflow_step_has_a_script():
    assert set(_names(SCRIPTS)) >= {"search.sbatch", "worker.sbatch", "retrain.sbatch",
                                    "baselines.sbatch", "evaluate.sbatch", "cache.sbatch",
                                    "storage-proxy.sbatch"}


@pytest.mark.parametrize("script", SCRIPTS, ids=_names(SCRIPTS))
def test_bash_syntax(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _directives(script: Path) -> dict[str, str]:
    out = {}
    for line in script.read_text().splitlines():
        if line.startswith("#SBATCH "):
            key, _, value = line.removeprefix("#SBATCH ").strip().lstrip("-").partition("=")
            out[key] = value
    return out


def _minutes(limit: str) -> int:
    days, _, rest = limit.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    h, m = (parts + [0, 0])[:2] if len(parts) > 1 else (0, parts[0])
    return int(days or 0) * 1440 + h * 60 + m


@pytest.mark.parametrize("script", SCRIPTS, ids=_names(SCRIPTS))
def test_header(script):
    text = script.read_text()
    d = _directives(script)
    assert d["job-name"].startswith("memctl-")
    # Trapped by the batch shell (B:), 120 s ahead as for submitit's workers.
    assert d["signal"] == "B:USR2@120"
    assert "requeue" in d and d["open-mode"] == "append"
    assert "%x" in d["output"]
    # SLURM may send the signal up to 60 s early: the limit must leave room for both.
    assert _minutes(d["time"]) * 60 > 120 + 60
    lines = text.splitlines()
    first_command = next(i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#"))
    assert all(not ln.startswith("#SBATCH") for ln in lines[first_command:]), \
        "sbatch ignores #SBATCH lines after the first command"
    assert f"sbatch slurm/{script.name}" in text, "usage line"
    assert "containers/slurm-job.sh" in text and "job_init" in text



# ---------------------------------------------------------------------------------------------
# golden worker array


def render_worker_array(tmp: Path) -> str:
    """The sbatch text submitit writes for a 16-worker array of a fixed config, paths masked."""
    scratch, models = tmp / "scratch", tmp / "models"
    (scratch / "run").mkdir(parents=True)
    models.mkdir()
    image = tmp / "images" / "memctl.sif"
    image.parent.mkdir()
    image.write_bytes(b"")
    slurm = SlurmConfig(partition="gpu", gpus_per_node=1, cpus_per_task=8, mem_gb=64,
                        time_min=240, account="proj-memctl", qos="normal", constraint="a100",
                        array_parallelism=4, extra_sbatch=["--mail-type=END"],
                        setup=["module load apptainer"], container=str(image))
    folder = scratch / "run" / "jobs" / "mimic-sd15-svdiff" / "20260101-000000"
    executor = make_executor("slurm", folder, slurm, name="memctl-mimic-sd15-svdiff",
                             workers=16, binds=[scratch / "run", models])
    inner = executor._executor
    from submitit.slurm.slurm import _make_sbatch_string

    params = dict(inner.parameters, map_count=16)  # what map_array adds for 16 jobs
    text = _make_sbatch_string(command=inner._submitit_command_str, folder=inner.folder, **params)
    return text.replace(str(tmp), "<TMP>")


def test_worker_array_matches_golden(tmp_path, monkeypatch):
    for var in ("MEMCTL_APPTAINER", "MEMCTL_BINDS", "MEMCTL_CACHE", "MEMCTL_SLURM_BINDS"):
        monkeypatch.delenv(var, raising=False)
    text = render_worker_array(tmp_path)
    if os.environ.get(UPDATE_ENV) == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert GOLDEN.exists(), f"{GOLDEN} missing: rerun with {UPDATE_ENV}=1"
    assert text == GOLDEN.read_text(), (
        f"rendered worker array differs from {GOLDEN.name}; if intended, rerun with "
        f"{UPDATE_ENV}=1 and review the diff")


def test_golden_runs_every_task_inside_the_image():
    text = GOLDEN.read_text()
    assert "#SBATCH --array=0-15%4" in text
    assert "#SBATCH --signal=USR2@120" in text  # submitit's own handler, inside the image
    srun = next(ln for ln in text.splitlines() if ln.startswith("srun "))
    assert ("apptainer exec --nv --bind <TMP>/models,<TMP>/scratch/run "
            "<TMP>/images/memctl.sif python -u -m submitit.core._submit") in srun


# ---------------------------------------------------------------------------------------------
# the dev cluster


@pytest.fixture(scope="module")
def cluster_env() -> dict[str, str]:
    return require_dev_env()


def _job_env(cluster_env: dict[str, str], **extra: str) -> dict[str, str]:
    # The venv first on PATH: jobs inherit it, and the shim's `python` must be memctl's.
    return {**os.environ, **cluster_env, "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "HF_HUB_OFFLINE": "1", **extra}


# The dev node has 2 CPUs, ~21 GB and 2 fake GPUs: shrink what the scripts ask for.
_FIT = ["--mem=1G", "--cpus-per-task=1"]


@pytest.mark.slurm
@pytest.mark.parametrize("script", SCRIPTS, ids=_names(SCRIPTS))
def test_sbatch_test_only(cluster_env, script):
    fit = _FIT + (["--gpus-per-node=2"] if "gpus-per-node" in _directives(script) else [])
    arg = "memctl-runs" if script.name == "evaluate.sbatch" else "configs/mimic-sd15.yaml"
    proc = subprocess.run(["sbatch", "--test-only", *fit, str(script), arg],
                          capture_output=True, text=True, env=_job_env(cluster_env),
                          timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "to start at" in proc.stderr, proc.stderr


def _sacct_state(job_id: str, env: dict[str, str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"],
                             capture_output=True, text=True, env=env).stdout.strip()
        state = out.splitlines()[0] if out else ""
        if state and state not in ("PENDING", "RUNNING", "COMPLETING"):
            return state
        time.sleep(0.5)
    return state


def _site(tmp: Path, shim: Path, image: Path, scratch: Path, cache: Path) -> Path:
    site = tmp / "site.env"
    site.write_text(f"MEMCTL_IMAGE={image}\nMEMCTL_APPTAINER={shim}\nMEMCTL_BINDS={scratch}\n"
                    f"MEMCTL_CACHE={cache}\nMEMCTL_MAX_REQUEUES=1\n")
    return site


def _sbatch_wait(script: str, args: list[str], env: dict[str, str], out: Path,
                 extra: list[str]) -> str:
    cmd = ["sbatch", "--wait", "--parsable", "--partition=gpu", "--gpus-per-node=1", *_FIT,
           "--time=10", f"--output={out}", *extra, f"slurm/{script}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=540)
    job_id = proc.stdout.strip().split(";")[0]
    assert proc.returncode == 0, f"{shlex.join(cmd)}: {proc.stderr}\n" + (
        out.read_text() if out.exists() else "")
    return job_id


@pytest.fixture
def stage(tmp_path):
    """Shim, fake image, scratch (bound by the site), cache root, and a site.env using them."""
    shim, calls = write_shim(tmp_path / "shim")
    image = tmp_path / "images" / "fake.sif"
    image.parent.mkdir()
    image.write_bytes(b"")
    scratch, cache = tmp_path / "scratch", tmp_path / "cache"
    scratch.mkdir()
    site = _site(tmp_path, shim, image, scratch, cache)
    return dict(shim=shim, calls=calls, image=image, scratch=scratch, cache=cache, site=site)


def _covered(path: Path, binds: list[str]) -> bool:
    return any(str(path) == b.split(":")[0] or str(path).startswith(b.split(":")[0] + "/")
               for b in binds)


@pytest.mark.slurm
def test_cache_sbatch_runs_in_the_image_and_logs_under_the_run_dir(cluster_env, stage,
                                                                   tmp_path):
    run = stage["scratch"] / "run"
    config = tmp_path / "tiny.yaml"
    config.write_text(f"run_dir: {run}\ndata:\n  synth_n: 24\n")
    env = _job_env(cluster_env, MEMCTL_SITE_ENV=str(stage["site"]))
    job_id = _sbatch_wait("cache.sbatch", [str(config)], env, tmp_path / "boot.out", [])
    assert _sacct_state(job_id, env) == "COMPLETED"
    assert list((run / "cache").glob("synth-*.h5")), "no cache written"
    log = run / "logs" / "slurm" / f"memctl-cache-{job_id}.log"
    assert log.is_file() and "exit 0" in log.read_text(), log.read_text()
    assert f"log: {log}" in (tmp_path / "boot.out").read_text()
    calls = read_calls(stage["calls"])
    build = [c for c in calls if c["argv"][:3] == ["memctl", "cache", "build"]]
    assert len(build) == 1 and len(calls) == 2  # config resolution, then the build
    call = build[0]
    assert call["nv"] and call["image"] == str(stage["image"])
    for path in (run, REPO, stage["cache"], stage["scratch"]):
        assert _covered(path, call["binds"]), (path, call["binds"])
    assert call["env"]["HF_HUB_OFFLINE"] == "1"
    assert call["env"]["TORCH_EXTENSIONS_DIR"] == f"{stage['cache']}/torch_extensions"
    assert call["cwd"] == str(REPO)


@pytest.mark.slurm
@pytest.mark.slow
def test_search_through_container_passthrough_shim_on_slurm(cluster_env, stage, tmp_path):
    """A real `memctl search --executor slurm --container IMG`: each worker job runs through
    the shim, which checks `exec --nv --bind ...`, that every bound path exists and that the
    submitit folder is bound, applies the image's %environment, then runs the worker."""
    run = stage["scratch"] / "run"
    submit = tmp_path / "submit"  # the head's working directory: not bound, not the run dir
    submit.mkdir()
    config = tmp_path / "search.yaml"
    config.write_text(f"run_dir: {run}\nsearch:\n  study: shim\n")
    overrides = ["data.synth_n=60", "train.steps=4", "eval.fid_samples=4",
                 "eval.num_inference_steps=2", "search.trials=2", "search.workers=2",
                 "slurm.partition=gpu", "slurm.cpus_per_task=1", "slurm.mem_gb=2",
                 "slurm.time_min=10"]
    env = _job_env(cluster_env, MEMCTL_APPTAINER=str(stage["shim"]),
                   MEMCTL_BINDS=str(stage["scratch"]), MEMCTL_CACHE=str(stage["cache"]))
    proc = subprocess.run(
        [sys.executable, "-m", "memctl", "search", "-c", str(config), "--executor", "slurm",
         "--container", str(stage["image"]), "--json", *overrides],
        capture_output=True, text=True, env=env, cwd=submit, timeout=570)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert summary["worker_errors"] == [], summary
    assert (summary["complete"], summary["failed"]) == (2, 0), summary

    calls = read_calls(stage["calls"])
    assert len(calls) == 2, calls  # one per array task, each through the image
    assert sorted(c["env"]["SLURM_ARRAY_TASK_ID"] for c in calls) == ["0", "1"]
    folder = Path(summary["job_folder"])
    for call in calls:
        assert call["image"] == str(stage["image"]) and call["nv"]
        assert call["argv"][:5] == ["python", "-u", "-m", "submitit.core._submit", str(folder)]
        for path in (folder, run, run / "studies.db", stage["cache"]):
            assert _covered(path, call["binds"]), (path, call["binds"])
        assert call["env"]["HF_HUB_OFFLINE"] == "1"
        assert call["env"]["HF_HOME"] == f"{stage['cache']}/huggingface"
    assert len(list((run / "trials" / "shim").iterdir())) == 2

    # slurm/worker.sbatch against the same study: full already, so the worker only checks.
    env = _job_env(cluster_env, MEMCTL_SITE_ENV=str(stage["site"]))
    job_id = _sbatch_wait("worker.sbatch", [str(config), "search.trials=2"], env,
                          tmp_path / "worker.out", ["--array=0"])
    log = run / "logs" / "slurm" / f"memctl-worker-{job_id}_0.log"
    assert "worker 1000: study shim, until 2 complete trials" in log.read_text()
    assert _sacct_state(f"{job_id}_0", env) == "COMPLETED", log.read_text()
    worker = [c for c in read_calls(stage["calls"]) if c["argv"][:2] == ["memctl", "worker"]]
    assert len(worker) == 1 and re.search(r"--index 1000\b", " ".join(worker[0]["argv"]))


@pytest.mark.parametrize("mode,restarts,requeued", [
    ("requeue", "0", True), ("requeue", "5", False), ("stop", "0", False)])
def test_time_limit_signal_requeues_only_resumable_jobs(tmp_path, mode, restarts, requeued):
    """USR2 (sent by --signal=B:USR2@120) reaches the batch shell: it requeues a resumable
    job through scontrol, below MEMCTL_MAX_REQUEUES, and stops the work in both cases."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "scontrol.args"
    (bindir / "scontrol").write_text(f'#!/bin/sh\necho "$@" > {record}\n')
    (bindir / "scontrol").chmod(0o755)
    script = (f'source {REPO}/containers/slurm-job.sh\n'
              f'(sleep 1; kill -USR2 $$) &\n'
              f'job_run {mode} sleep 30 && echo rc=0 || echo rc=$?\n')
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "SLURM_JOB_ID": "77",
           "SLURM_RESTART_COUNT": restarts, "MEMCTL_MAX_REQUEUES": "5"}
    start = time.monotonic()
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                          timeout=25)
    assert time.monotonic() - start < 20, "the work was not stopped"
    assert "time limit close (USR2)" in proc.stdout
    assert "rc=143" in proc.stdout  # the child ended by SIGTERM, its status passed on
    assert (record.read_text().split() == ["requeue", "77"]) if requeued else not record.exists()
