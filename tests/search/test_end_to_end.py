"""The spine on the embedded default: search (local executor) -> status -> retrain ->
evaluate / baselines -> report."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SMALL


def memctl(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "memctl", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"memctl {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_search_retrain_report_on_embedded_default(tmp_path):
    out = memctl(tmp_path, "search", "--executor", "local", "--trials", "3", "--workers", "2",
                 "--json", *SMALL)
    summary = json.loads(out.stdout)
    assert summary["complete"] == 3 and summary["failed"] == 0
    assert summary["storage"].startswith("sqlite:///")

    status = json.loads(memctl(tmp_path, "status", "--json").stdout)
    assert status["counts"]["COMPLETE"] == 3
    assert status["front"] and status["picked"] in [r["number"] for r in status["front"]]
    first = min(status["front"] + [], key=lambda r: r["number"])
    assert len(first["mask"]) == 16
    # Each trial's folder holds its mask file, which `retrain --mask FOLDER` reads.
    for row in status["front"]:
        trial_mask = json.loads(
            (tmp_path / f"memctl-runs/trials/memctl/{row['number']:05d}/mask.json").read_text())
        assert trial_mask["bits"] == row["mask"] and trial_mask["method"] == "attention"
        assert trial_mask["source"] == f"study memctl trial {row['number']}"

    attack = ["eval.extraction_prompts=2", "eval.extraction_generations=4", "eval.clique_size=2"]
    retrain = json.loads(memctl(tmp_path, "retrain", "--best", "--evaluate", "--json",
                                *SMALL, *attack).stdout)
    assert retrain["evaluation"]["mask"] == retrain["mask"]
    run = Path(tmp_path / retrain["out_dir"])
    assert {"pipeline", "mask.json", "config.yaml", "metrics.json", "adapter.safetensors"} <= {
        p.name for p in run.iterdir()}
    assert (run / "config.yaml").read_text().startswith("# memctl retrain")
    mask = json.loads((run / "mask.json").read_text())
    assert mask["bits"] == retrain["mask"] and 0 < mask["trainable"] < mask["total"]

    # Two data-parallel ranks (CPU processes here, one per GPU on a node) export the same way.
    picked = status["picked"]
    two = json.loads(memctl(tmp_path, "retrain", "--trial", str(picked), "--gpus", "2",
                            "--out", "two-ranks", "--json", *SMALL).stdout)
    assert two["mask"] == retrain["mask"] and (tmp_path / "two-ranks" / "pipeline").is_dir()

    # The exported pipeline loads in stock diffusers (no memctl import) and generates.
    script = (
        "import sys, torch\n"
        "from diffusers import StableDiffusionPipeline\n"
        "pipe = StableDiffusionPipeline.from_pretrained(sys.argv[1])\n"
        "img = pipe('Small left pleural effusion.', num_inference_steps=2,\n"
        "           generator=torch.Generator().manual_seed(0), output_type='np').images[0]\n"
        "assert img.shape == (32, 32, 3) and img.std() > 0, img.shape\n"
        "assert 'memctl' not in sys.modules\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", script, str(run / "pipeline")], check=True, env=env,
                   cwd=tmp_path, timeout=300)

    # The comparison: the retrained mask and one baseline, evaluated the same way.
    ev = json.loads(memctl(tmp_path, "evaluate", str(run), "--json", *attack).stdout)
    assert ev["mask"] == retrain["mask"] and ev["extraction"]["prompts"] == 2
    base = json.loads(memctl(tmp_path, "baselines", "--methods", "full", "--mitigations", "none",
                             "--json",
                             *SMALL, *attack).stdout)
    assert base["full"]["method"] == "full" and base["full"]["trainable"] == mask["total"]

    report = json.loads(memctl(tmp_path, "report", "--json").stdout)
    with open(tmp_path / report["comparison.csv"]) as fh:
        assert [r["name"] for r in csv.DictReader(fh)] == [run.name, "full"]
    html = Path(tmp_path / report["report.html"]).read_text()
    assert "data:image/png;base64," in html and "Pareto front" in html
    csv_lines = Path(tmp_path / report["trials.csv"]).read_text().splitlines()
    assert len(csv_lines) == 1 + 3
    # Owner-only outputs (medical data).
    for path in (tmp_path / "memctl-runs").rglob("*"):
        assert path.stat().st_mode & 0o077 == 0, path
