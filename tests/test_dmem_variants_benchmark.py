"""benchmarks/dmem_variants.py runs end to end (few masks, on the session's small workspace)."""

from __future__ import annotations

import importlib.util
import json
import math

from tests.conftest import REPO, SMALL


def test_dmem_variants_benchmark_runs(prepared, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "dmem_variants", REPO / "benchmarks" / "dmem_variants.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cfg, _ = prepared
    out = tmp_path / "out.json"
    # The session's run directory: its model and cache are reused, not rebuilt.
    assert bench.main(["--quick", "--masks", "3", "--json", str(out), "--work-dir",
                       str(cfg.run_path), *SMALL, f"model.path={cfg.model.path}"]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 3 and result["masks"][0]["mask"] == "1" * 16
    assert len({r["mask"] for r in result["masks"]}) == 3
    for row in result["masks"]:
        assert math.isfinite(row["noised"]) and math.isfinite(row["trajectory"])
        assert row["noised_s"] > 0 and row["trajectory_s"] > 0
    assert -1 <= result["spearman_rho"] <= 1 and result["cost_ratio"] > 0
    assert "Spearman rho (noised vs trajectory, n = 3 masks)" in capsys.readouterr().out
