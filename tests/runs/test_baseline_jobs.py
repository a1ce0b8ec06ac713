"""`memctl baselines --executor`: the grid as one job array, a task per run that trains its
own model, runs equal to another marked at submission; on the debug executor and on the dev
SLURM cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memctl.runs.baselines import Baseline, baseline_grid, plan_baselines
from memctl.runs.target import RetrainTarget
from tests.conftest import SMALL


def memctl(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "memctl", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=900, env=os.environ.copy())
    assert proc.returncode == 0, f"memctl {' '.join(args)}:\n{proc.stderr[-4000:]}"
    return proc


def test_the_plan_trains_each_model_once(tmp_path):
    from memctl.config import load_config

    cfg = load_config(None, [f"run_dir={tmp_path}"])
    pick = RetrainTarget(cfg, [1] * 16, [], "s 3", "", "", [], "s-3")
    grid = baseline_grid(["freeze", "peft", "memcontrol", "full"], ["none", "rwa"],
                         cfg.peft.method)
    m = cfg.peft.method
    assert [(b.name, same) for b, same in plan_baselines(cfg, grid, pick)] == [
        ("freeze", None), ("freeze-rwa", "freeze"), (m, None), (f"{m}-rwa", None),
        ("memcontrol", m), ("memcontrol-rwa", f"{m}-rwa"), ("full", None), ("full-rwa", None)]
    half = RetrainTarget(cfg, [1, 0] * 8, [], "s 4", "", "", [], "s-4")
    assert all(same is None for b, same in plan_baselines(cfg, grid, half)
               if b.method == "memcontrol")
    assert plan_baselines(cfg, [Baseline("full"), Baseline("full")])[1] == (Baseline("full"),
                                                                           "full")


def _check(run: Path, out: dict) -> None:
    assert sorted(out) == ["freeze", "freeze-rwa", "full", "full-rwa"]
    assert out["freeze-rwa"]["same_as"] == "freeze"
    assert all("n_extracted_images" in r["extraction"] for r in out.values())
    base = run / "baselines"
    assert json.loads((base / "freeze-rwa" / "same_as.json").read_text()) == {
        "same_as": "freeze"}
    for name in ("freeze", "full", "full-rwa"):
        assert (base / name / "evaluation.json").is_file()


@pytest.mark.slow
def test_the_grid_as_jobs_on_the_debug_executor(tmp_path):
    out = json.loads(memctl(tmp_path, "baselines", "--executor", "debug", "--methods",
                            "freeze,full", "--mitigations", "none,rwa", "--json",
                            *SMALL).stdout)
    _check(tmp_path / "memctl-runs", out)


@pytest.mark.slow
@pytest.mark.slurm
def test_the_grid_as_one_slurm_job_array(tmp_path, dev_cluster):
    from tests.search.test_slurm_search import TINY

    submitted = json.loads(memctl(
        tmp_path, "baselines", "--executor", "slurm", "--partition", "gpu", "--methods",
        "freeze,full", "--mitigations", "none,rwa", "--detach", "--json", *TINY,
        "train.retrain_steps=4").stdout)
    ids = submitted["job_ids"]
    assert sorted(ids) == ["freeze", "full", "full-rwa"]  # freeze-rwa is freeze: no task
    assert len({i.split("_")[0] for i in ids.values()}) == 1  # one array
    assert submitted["same_as"] == {"freeze-rwa": "freeze"}
    # Following: the finished tasks are reused, so this gathers their results.
    out = json.loads(memctl(tmp_path, "baselines", "--executor", "slurm", "--partition", "gpu",
                            "--methods", "freeze,full", "--mitigations", "none,rwa", "--json",
                            *TINY, "train.retrain_steps=4").stdout)
    _check(tmp_path / "memctl-runs", out)
