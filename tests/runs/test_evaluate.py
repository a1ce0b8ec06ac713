"""Evaluation and baselines on the tiny model: what lands on disk, resuming, the attack's wiring."""

import dataclasses
import json

import pytest
from click.testing import CliRunner

from memctl.cli import main
from memctl.errors import UserError
from memctl.runs.baselines import BASELINES, baseline_config, run_baselines
from memctl.runs.evaluate import attacked_prompts, extraction


def _eval_cfg(cfg, **changes):
    ev = dataclasses.replace(cfg.eval, extraction_prompts=2, extraction_generations=4,
                             clique_size=2, **changes)
    return dataclasses.replace(cfg, eval=ev)


def test_baseline_configs_change_only_method_and_mitigation(prepared):
    cfg, _ = prepared
    assert baseline_config(cfg, "full").peft.method == "full"
    for name in ("peft", "rwa", "threshold"):
        b = baseline_config(cfg, name)
        assert b.peft.method == cfg.peft.method
        assert b.train.mitigation == ("none" if name == "peft" else name)
        assert b.train.retrain_steps == cfg.train.retrain_steps
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_config(cfg, "nope")
    assert baseline_config(cfg, "freeze").train.mitigation == "none"
    assert set(BASELINES) == {"freeze", "full", "peft", "rwa", "threshold"}


def test_attacked_prompts_are_distinct_dmem_prompts(prepared):
    from memctl.workspace import proxy_set

    cfg, ws = prepared
    reader = ws.reader()
    dmem = proxy_set(cfg, reader).dmem_indices
    rows = attacked_prompts(reader, dmem, 100)
    prompts = [int(reader.prompt_index[r]) for r in rows]
    assert len(set(prompts)) == len(prompts) == len({int(reader.prompt_index[r]) for r in dmem})
    assert set(rows) <= set(dmem)
    assert attacked_prompts(reader, dmem, 1) == rows[:1]


def test_extraction_thresholds_decide_memorised_and_extracted(prepared):
    from memctl.models.load import load_components
    from memctl.workspace import proxy_set

    cfg, ws = prepared
    reader = ws.reader()
    dmem = proxy_set(cfg, reader).dmem_indices
    comps = load_components(ws.model_dir, text=False)
    # Every pair linked and every image "close": all attacked prompts memorised and extracted.
    loose = _eval_cfg(cfg, edge_threshold=10.0, extraction_threshold=10.0)
    summary, d_mem_sampling = extraction(comps, reader, loose, dmem)
    assert summary["prompts"] == 2
    assert summary["n_memorised"] == summary["n_extracted"] == 2
    assert all(r["clique_size"] == 4 for r in summary["records"])
    assert d_mem_sampling is not None and d_mem_sampling > 0
    # Nothing linked: no clique beyond one generation, nothing memorised.
    strict = _eval_cfg(cfg, edge_threshold=1e-9, extraction_threshold=1e-9)
    summary, _ = extraction(comps, reader, strict, dmem)
    assert summary["n_memorised"] == summary["n_extracted"] == 0
    assert all(r["clique_size"] == 1 for r in summary["records"])


def test_baselines_retrain_evaluate_and_resume(prepared):
    cfg, ws = prepared
    cfg = _eval_cfg(cfg)
    results = run_baselines(cfg, ("peft",), "memctl baselines --only peft")
    ev = results["peft"]
    out = cfg.run_path / "baselines" / "peft"
    assert json.loads((out / "evaluation.json").read_text()) == ev
    assert ev["mask"] == "1" * 16 and ev["method"] == cfg.peft.method
    assert ev["n_fid"] == cfg.eval.fid_samples and ev["fid_test"] >= 0
    assert 0 <= ev["amd"] <= 2 and ev["d_mem"] > 0
    assert ev["extraction"]["prompts"] == 2 and len(ev["extraction"]["records"]) == 2
    assert ev["text_image"]["value"] is None and "none" in ev["text_image"]["reason"]
    # Medical data: scores and row numbers only, owner-only files.
    text = (out / "evaluation.json").read_text()
    assert not any(c and c in text for c in ws.reader().captions)
    assert (out / "evaluation.json").stat().st_mode & 0o077 == 0
    # A second run neither retrains nor re-evaluates.
    stamps = {p: (out / p).stat().st_mtime_ns for p in ("metrics.json", "evaluation.json")}
    again = run_baselines(cfg, ("peft",), "memctl baselines --only peft")
    assert again["peft"] == ev
    assert stamps == {p: (out / p).stat().st_mtime_ns for p in stamps}
    # Other evaluation settings: evaluated again, not retrained.
    more = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, extraction_prompts=1))
    third = run_baselines(more, ("peft",), "memctl baselines --only peft")
    assert third["peft"]["extraction"]["prompts"] == 1
    assert (out / "metrics.json").stat().st_mtime_ns == stamps["metrics.json"]
    # Other training settings: refused rather than silently reusing stale weights.
    other = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, retrain_steps=2))
    with pytest.raises(UserError, match="another mask or config"):
        run_baselines(other, ("peft",), "memctl baselines --only peft")


def test_cli_rejects_bad_input_with_exit_2(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["evaluate", str(tmp_path)])
    assert res.exit_code == 2 and f"{tmp_path}: no pipeline/" in res.output
    res = runner.invoke(main, ["baselines", "--only", "full,bogus"])
    assert res.exit_code == 2 and "unknown baseline bogus" in res.output
    res = runner.invoke(main, ["baselines", "eval.text_image=dall-e"])
    assert res.exit_code == 2 and "text_image" in res.output
