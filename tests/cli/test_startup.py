"""Commands that only read a config or a study answer without importing the ML stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "diffusers", "transformers", "deepspeed")

# Runs a command in-process, then reports its exit code and which heavy modules it loaded.
_PROBE = """
import json, sys
from memctl.cli import main
try:
    main(sys.argv[1:], prog_name="memctl")
    code = 0
except SystemExit as exit:
    code = exit.code
heavy = [m for m in {heavy!r} if m in sys.modules]
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.__stderr__)
"""


def _probe(args: list[str], cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    return json.loads(proc.stderr.strip().splitlines()[-1])


def test_loading_a_config_imports_no_torch(tmp_path):
    code = ("import sys; from memctl.config import load_config; "
            "load_config(None, ['train.lr=1e-3']); "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout
    assert out.strip() == "[]"


def test_bad_config_is_rejected_before_heavy_imports(tmp_path):
    result = _probe(["search", "search.trials=0"], tmp_path)
    assert result == {"code": 2, "heavy": []}


def test_status_imports_no_torch(tmp_path):
    import optuna
    from optuna.distributions import CategoricalDistribution

    from memctl.config import Config
    from memctl.search.space import params_from_mask
    from memctl.search.study import create_study, default_storage_url

    cfg = Config(run_dir=str(tmp_path / "memctl-runs"))
    cfg.run_path.mkdir()
    study = create_study(cfg, default_storage_url(cfg))
    study.set_user_attr("config", cfg.to_dict())
    study.set_user_attr("n_bits", 16)
    params = params_from_mask([1, 0] * 8)
    study.add_trial(optuna.trial.create_trial(
        params=params, distributions={k: CategoricalDistribution([0, 1]) for k in params},
        values=[0.5, 20.0]))
    result = _probe(["status"], tmp_path)
    assert result == {"code": 0, "heavy": []}
