"""Evaluation and baselines on the tiny model: what lands on disk, resuming, the attack's wiring."""

import dataclasses
import json

import pytest
from click.testing import CliRunner

from memctl.cli import main
from memctl.errors import UserError
from memctl.runs.baselines import Baseline, baseline_config, baseline_grid, run_baselines
from memctl.runs.evaluate import attacked_prompts, extraction


def _eval_cfg(cfg, **changes):
    ev = dataclasses.replace(cfg.eval, **{"extraction_prompts": 2, "extraction_generations": 4,
                                          "clique_size": 2, **changes})
    return dataclasses.replace(cfg, eval=ev)


def test_baseline_configs_change_only_method_and_mitigation(prepared):
    cfg, _ = prepared
    assert baseline_config(cfg, Baseline("full")).peft.method == "full"
    for mitigation in ("none", "rwa", "threshold"):
        b = baseline_config(cfg, Baseline("svdiff", mitigation))
        assert b.peft.method == "svdiff" and b.peft.space == cfg.peft.space
        assert b.train.mitigation == mitigation
        assert b.train.retrain_steps == cfg.train.retrain_steps
    assert baseline_config(cfg, Baseline("freeze")).train.mitigation == "none"
    with pytest.raises(ValueError, match="searched pick"):
        baseline_config(cfg, Baseline("memcontrol"))


def test_baseline_grid_crosses_methods_with_mitigations():
    grid = baseline_grid(["freeze", "peft", "full", "peft"], ["none", "rwa"], "difffit")
    assert [b.name for b in grid] == ["freeze", "freeze-rwa", "difffit", "difffit-rwa",
                                      "full", "full-rwa"]
    with pytest.raises(ValueError, match="--methods: unknown bogus"):
        baseline_grid(["full", "bogus"], ["none"], "svdiff")
    with pytest.raises(ValueError, match=r"--mitigations: unknown \(none given\)"):
        baseline_grid(["full"], [], "svdiff")


def test_a_baseline_equal_to_another_runs_once_and_shows_as_both(prepared):
    from memctl.runs.target import RetrainTarget
    from memctl.workspace import proxy_set

    cfg, ws = prepared
    cfg = dataclasses.replace(cfg, run_dir=str(cfg.run_path / "alias"))
    # The pick on every block is vanilla PEFT of its method; freeze is freeze under RWA.
    pick = RetrainTarget(cfg, [1] * 16, [], "study s trial 3", str(ws.model_dir),
                         str(ws.cache_path), proxy_set(cfg, ws.reader()).dmem_indices, "s-3")
    grid = baseline_grid(["freeze", "peft", "memcontrol"], ["none", "rwa"], cfg.peft.method)
    results = run_baselines(cfg, grid, "memctl baselines", evaluate_too=False, pick=pick)
    m = cfg.peft.method
    assert results["memcontrol"]["same_as"] == m
    assert results["memcontrol-rwa"]["same_as"] == f"{m}-rwa"
    assert results["freeze-rwa"]["same_as"] == "freeze" and "same_as" not in results[m]
    assert results["memcontrol"]["mask"] == results[m]["mask"] == "1" * 16
    base = cfg.run_path / "baselines"
    assert json.loads((base / "memcontrol-rwa" / "same_as.json").read_text()) == {
        "same_as": f"{m}-rwa"}
    assert not (base / "memcontrol" / "pipeline").exists()
    trained = sorted(p.parent.name for p in base.glob("*/pipeline"))
    assert trained == sorted(["freeze", m, f"{m}-rwa"])


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
    assert summary["prompts"] == 2 and summary["attack_prompts"] == "dmem"
    assert summary["n_memorised"] == summary["n_extracted"] == 2
    assert all(r["clique_size"] == 4 for r in summary["records"])
    assert d_mem_sampling is not None and d_mem_sampling > 0
    # Every training image of an attacked prompt is within reach: all count, once each.
    replayed = [row for r in summary["records"] for row in r["extracted_rows"]]
    assert {r["row"] for r in summary["records"]} <= set(replayed)
    assert summary["n_extracted_images"] == len(set(replayed)) >= 2
    assert {"generations_per_prompt", "clique_size", "edge_threshold",
            "extraction_threshold", "grid"} <= set(summary)
    # Nothing linked: no clique beyond one generation, nothing memorised.
    strict = _eval_cfg(cfg, edge_threshold=1e-9, extraction_threshold=1e-9)
    summary, _ = extraction(comps, reader, strict, dmem)
    assert summary["n_memorised"] == summary["n_extracted"] == 0
    assert summary["n_extracted_images"] == 0
    assert all(r["clique_size"] == 1 for r in summary["records"])


def test_the_attack_on_training_captions(prepared):
    from memctl.models.load import load_components
    from memctl.workspace import proxy_set

    cfg, ws = prepared
    reader = ws.reader()
    comps = load_components(ws.model_dir, text=False)
    on_train = _eval_cfg(cfg, attack_prompts="train", extraction_prompts=3,
                         edge_threshold=10.0, extraction_threshold=10.0)
    summary, _ = extraction(comps, reader, on_train, proxy_set(cfg, reader).dmem_indices)
    rows = [r["row"] for r in summary["records"]]
    assert summary["attack_prompts"] == "train" and summary["prompts"] == 3
    assert rows == attacked_prompts(reader, reader.usable("train"), 3)
    assert set(rows) <= set(reader.usable("train"))
    assert summary["n_extracted_images"] >= 3


def test_baselines_retrain_evaluate_and_resume(prepared):
    cfg, ws = prepared
    cfg = _eval_cfg(cfg)
    peft = [Baseline(cfg.peft.method)]
    results = run_baselines(cfg, peft, "memctl baselines --methods peft --mitigations none")
    ev = results[cfg.peft.method]
    out = cfg.run_path / "baselines" / cfg.peft.method
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
    again = run_baselines(cfg, peft, "memctl baselines")
    assert again[cfg.peft.method] == ev
    assert stamps == {p: (out / p).stat().st_mtime_ns for p in stamps}
    # Other evaluation settings: evaluated again, not retrained.
    more = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, extraction_prompts=1))
    third = run_baselines(more, peft, "memctl baselines")
    assert third[cfg.peft.method]["extraction"]["prompts"] == 1
    assert (out / "metrics.json").stat().st_mtime_ns == stamps["metrics.json"]
    # Another d_mem objective (search.dmem): evaluated again by it, not retrained.
    assert ev["d_mem_variant"] == "noised"
    traj = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, dmem="trajectory"))
    fourth = run_baselines(traj, peft, "memctl baselines")[cfg.peft.method]
    assert fourth["d_mem_variant"] == "trajectory" and fourth["d_mem"] != ev["d_mem"]
    assert (out / "metrics.json").stat().st_mtime_ns == stamps["metrics.json"]
    # Other training settings: refused rather than silently reusing stale weights.
    other = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, retrain_steps=2))
    with pytest.raises(UserError, match="another mask or config"):
        run_baselines(other, peft, "memctl baselines")


def test_cli_rejects_bad_input_with_exit_2(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["evaluate", str(tmp_path)])
    assert res.exit_code == 2 and f"{tmp_path}: no pipeline/" in res.output
    res = runner.invoke(main, ["baselines", "--methods", "full,bogus"])
    assert res.exit_code == 2 and "--methods: unknown bogus" in res.output
    res = runner.invoke(main, ["baselines", "--mitigations", "none,dropout"])
    assert res.exit_code == 2 and "--mitigations: unknown dropout" in res.output
    res = runner.invoke(main, ["baselines", "eval.text_image=dall-e"])
    assert res.exit_code == 2 and "text_image" in res.output


def test_an_evaluation_is_reused_only_for_the_same_d_mem_variant(tmp_path):
    from memctl.config import EvalConfig
    from memctl.data.json_files import write_json
    from memctl.runs.evaluate import evaluated_with

    settings = dataclasses.asdict(EvalConfig())
    write_json(tmp_path / "evaluation.json", {"eval_settings": settings, "d_mem": 1.0})
    assert evaluated_with(tmp_path, EvalConfig()) is not None  # recorded before: noised
    assert evaluated_with(tmp_path, EvalConfig(), "trajectory") is None
    write_json(tmp_path / "evaluation.json",
               {"eval_settings": settings, "d_mem": 1.0, "d_mem_variant": "trajectory"})
    assert evaluated_with(tmp_path, EvalConfig(), "trajectory")["d_mem"] == 1.0
    assert evaluated_with(tmp_path, EvalConfig(), "noised") is None
