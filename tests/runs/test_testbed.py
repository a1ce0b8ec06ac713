"""The embedded testbed memorises: full fine-tuning on duplicated D_mem pairs replays at
least one of them (extracted by the attack), brings generations for their prompts closer to
their training images and the generated set closer to the training set (AMD) than the frozen
pretrained model, which replays nothing. Run with the embedded default's own settings, so a
sign error in the attack, a broken VAE or data that cannot be told apart fails here."""

import dataclasses

import pytest

from memctl.config import load_config

pytestmark = pytest.mark.slow


def test_full_fine_tuning_extracts_dmem_and_freeze_extracts_none(tmp_path,
                                                                 tiny_model_dir):
    from memctl.runs.baselines import Baseline, run_baselines

    cfg = load_config(None, [f"run_dir={tmp_path}"])
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, path=str(tiny_model_dir)))
    results = run_baselines(cfg, [Baseline("freeze"), Baseline("full")], command="test")
    freeze, full = results["freeze"], results["full"]
    assert freeze["extraction"]["prompts"] == cfg.eval.extraction_prompts
    assert freeze["extraction"]["n_extracted"] == 0
    assert full["extraction"]["n_extracted"] >= 1, full["extraction"]["records"]
    assert freeze["trainable"] == 0 and full["trainable"] == full["total"]

    def nearest(result: dict) -> float:
        return min(r["min_train_l2"] for r in result["extraction"]["records"])

    assert nearest(full) < nearest(freeze)
    assert full["amd"] < freeze["amd"]
