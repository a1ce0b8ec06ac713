"""Checks of the dev cluster started by slurm/dev/up.sh (SLURM + slurmdbd, PostgreSQL).

The tests read the env file up.sh writes ($MEMCTL_DEV_STATE/env, default
<repo>/.dev-cluster/env). Without it they skip, or fail when MEMCTL_REQUIRE_INFRA=1 (CI).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import require_dev_env

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dev_env() -> dict[str, str]:
    return require_dev_env()


@pytest.fixture
def cluster_env(dev_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Put the env file's variables in os.environ (sbatch, sacct and submitit read SLURM_CONF)."""
    for key, value in dev_env.items():
        monkeypatch.setenv(key, value)
    return dev_env


def _run(*cmd: str, timeout: float = 60) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{shlex.join(cmd)} exited {proc.returncode}: {proc.stderr}"
    return proc.stdout


def _sacct_state(job_id: str, timeout: float = 20) -> str:
    # The controller reports a finished job to slurmdbd asynchronously: poll briefly.
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        out = _run("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State")
        state = out.strip().splitlines()[0] if out.strip() else ""
        if state and state not in ("PENDING", "RUNNING", "COMPLETING"):
            return state
        time.sleep(0.3)
    return state


@pytest.mark.slurm
def test_sbatch_gpu_job_completes_and_sacct_sees_it(cluster_env, tmp_path):
    out = tmp_path / "job.out"
    job_id = (
        _run(
            "sbatch",
            "--wait",
            "--parsable",
            "--partition",
            cluster_env.get("MEMCTL_TEST_SLURM_GPU_PARTITION", "gpu"),
            "--gpus-per-node=1",
            "--time=2",
            "--output",
            str(out),
            "--wrap",
            'echo "gpus=$CUDA_VISIBLE_DEVICES"',
            timeout=120,
        )
        .strip()
        .split(";")[0]
    )
    assert job_id.isdigit(), job_id
    assert "gpus=" in out.read_text()
    assert out.read_text().strip() != "gpus=", "no fake GPU was bound to the job"
    assert _sacct_state(job_id) == "COMPLETED"


@pytest.mark.slurm
@pytest.mark.parametrize(
    "partition_key,gpus",
    [("MEMCTL_TEST_SLURM_PARTITION", 0), ("MEMCTL_TEST_SLURM_GPU_PARTITION", 1)],
)
def test_submitit_runs_a_function(cluster_env, tmp_path, partition_key, gpus):
    submitit = pytest.importorskip("submitit")
    # A fresh folder: job ids restart after a state wipe, and old pickles would be returned.
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit")
    assert executor.cluster == "slurm"
    params = {"slurm_partition": cluster_env[partition_key]}
    if gpus:
        params["gpus_per_node"] = gpus
    # submitit signals USR2 90 s before the limit, possibly 60 s early: keep timeout > 150 s.
    executor.update_parameters(timeout_min=5, **params)

    # Defined here so cloudpickle ships it by value: this test module is not importable
    # from the job's Python (tests/ is not on its path).
    def double(x: int) -> tuple[int, str | None]:
        return 2 * x, os.environ.get("CUDA_VISIBLE_DEVICES")

    job = executor.submit(double, 21)
    value, devices = job.result()
    assert value == 42
    if gpus:
        assert devices not in (None, ""), "no fake GPU was bound to the job"
    assert _sacct_state(str(job.job_id)) == "COMPLETED"


@pytest.mark.postgres
def test_postgres_accepts_the_url(cluster_env):
    psycopg2 = pytest.importorskip("psycopg2")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    url = sqlalchemy.make_url(cluster_env["MEMCTL_TEST_PG_URL"])
    assert url.password, "the URL must carry a password (masking is tested against it)"
    conn = psycopg2.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database,
        connect_timeout=10,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, current_database()")
            assert cur.fetchone() == (url.username, url.database)
    finally:
        conn.close()


@pytest.mark.postgres
def test_postgres_restart_keeps_data(cluster_env):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(cluster_env["MEMCTL_TEST_PG_URL"], pool_pre_ping=True)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS devcluster_probe")
            conn.exec_driver_sql("CREATE TABLE devcluster_probe (v int)")
            conn.exec_driver_sql("INSERT INTO devcluster_probe VALUES (7)")
        _run(cluster_env["MEMCTL_TEST_PG_RESTART"], timeout=60)
        # pool_pre_ping replaces the pooled connection the restart cut.
        with engine.begin() as conn:
            assert conn.exec_driver_sql("SELECT v FROM devcluster_probe").scalar() == 7
            conn.exec_driver_sql("DROP TABLE devcluster_probe")
    finally:
        engine.dispose()
