"""A global search on the embedded default: one study per method, one union front that
status, retrain --best and report share, `--method` restricting them to one study."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SMALL
from tests.report.browser import render


def memctl(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "memctl", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)
    assert (proc.returncode == 0) == ok, f"memctl {' '.join(args)}:\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_global_search_over_two_methods(tmp_path):
    out = json.loads(memctl(tmp_path, "search", "--method", "difffit,attention", "--executor",
                            "debug", "--trials", "2", "--workers", "1", "--json",
                            *SMALL).stdout)
    assert [s["study"] for s in out["studies"]] == ["memctl-difffit", "memctl-attention"]
    assert out["complete"] == 4

    status = json.loads(memctl(tmp_path, "status", "--json").stdout)
    assert sorted(status["studies"]) == ["memctl-attention", "memctl-difffit"]
    front = status["front"]
    assert {r["method"] for r in front} <= {"difffit", "attention"}
    picked = [r for r in front if r["picked"]]
    assert len(picked) == 1 and picked[0]["study"] == status["picked_study"]

    one = json.loads(memctl(tmp_path, "status", "--method", "difffit", "--json").stdout)
    assert one["studies"] == ["memctl-difffit"] and one["counts"]["COMPLETE"] == 2
    memctl(tmp_path, "retrain", "--trial", "0", *SMALL, ok=False)  # which study's trial 0?

    best = json.loads(memctl(tmp_path, "retrain", "--best", "--evaluate", "--json",
                             *SMALL).stdout)
    assert best["out_dir"].endswith(f"{picked[0]['study']}-trial{picked[0]['number']}")
    assert best["mask"] == picked[0]["mask"]
    evaluation = json.loads((tmp_path / best["out_dir"] / "evaluation.json").read_text())
    attack = evaluation["extraction"]
    assert {"n_extracted", "n_extracted_images", "attack_prompts", "generations_per_prompt",
            "clique_size", "extraction_threshold"} <= set(attack)

    runs = json.loads(memctl(tmp_path, "baselines", "--methods", "freeze,full", "--mitigations",
                             "none,rwa", "--json", *SMALL).stdout)
    assert sorted(runs) == ["freeze", "freeze-rwa", "full", "full-rwa"]
    assert runs["freeze-rwa"]["same_as"] == "freeze"  # freeze trains nothing to mitigate
    assert all("n_extracted_images" in r["extraction"] for r in runs.values())

    report = json.loads(memctl(tmp_path, "report", "--json").stdout)
    trials = json.loads((tmp_path / report["trials.json"]).read_text())
    assert sorted(trials["studies"]) == ["memctl-attention", "memctl-difffit"]
    assert len(trials["trials"]) == 4
    # The union front: no front trial is dominated by any complete trial of either study.
    done = [t for t in trials["trials"] if t["state"] == "COMPLETE"]
    for r in front:
        assert not any(o["d_mem"] <= r["d_mem"] and o["fid"] <= r["fid"]
                       and (o["d_mem"], o["fid"]) != (r["d_mem"], r["fid"]) for o in done)
    on_front = {(t["study"], t["number"]) for t in done
                if not any(o["d_mem"] <= t["d_mem"] and o["fid"] <= t["fid"]
                           and (o["d_mem"], o["fid"]) != (t["d_mem"], t["fid"]) for o in done)}
    assert on_front == {(r["study"], r["number"]) for r in front}

    # Training pixels only on request: the attack's nearest pairs, kept owner-only.
    nearest = tmp_path / best["out_dir"] / "nearest.npz"
    assert nearest.stat().st_mode & 0o077 == 0
    assert 'class="nn"' not in (tmp_path / report["report.html"]).read_text()
    with_images = json.loads(memctl(tmp_path, "report", "--include-images", "--out", "imgs",
                                    "--json").stdout)
    assert 'class="nn"' in (tmp_path / with_images["report.html"]).read_text()

    page = render(tmp_path / report["report.html"], ["#table1 tr.model", "#mask-map tr"],
                  ["figure3", "hypervolume", "trials-over-time"])
    assert page.errors == [] and all(page.images_decoded.values()) and page.ink > 0.02
    assert page.counts["#table1 tr.model"] == 5  # the pick's retrain and 4 baselines
    assert page.counts["#mask-map tr"] == len(front) + 1
