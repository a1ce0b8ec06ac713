"""The embedded testbed memorises: full fine-tuning replays duplicated training images, the
frozen pretrained model replays none. Run with the embedded default's own settings, so a sign
error in the attack, a broken VAE or data that cannot be memorised fails here."""

import dataclasses

import pytest

from memctl.config import load_config

pytestmark = pytest.mark.slow


def test_full_fine_tuning_extracts_duplicated_images_and_freeze_none(tmp_path, tiny_model_dir):
    from memctl.search.baselines import run_baselines

    cfg = load_config(None, [f"run_dir={tmp_path}"])
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, path=str(tiny_model_dir)))
    results = run_baselines(cfg, ("freeze", "full"), command="test")
    freeze, full = results["freeze"]["extraction"], results["full"]["extraction"]
    assert freeze["prompts"] == full["prompts"] == cfg.eval.extraction_prompts
    assert freeze["n_extracted"] == 0
    assert full["n_extracted"] >= 1
    # Replay is close to the training image, far closer than any two distinct images are.
    best = min(r["min_train_l2"] for r in full["records"])
    assert best <= cfg.eval.extraction_threshold
