"""The search's d_mem objective (search.dmem): noised data or the sampling trajectory."""

from __future__ import annotations

import dataclasses
import math

import pytest

from memctl.metrics import SamplingSettings, d_mem
from memctl.runs import scoring
from memctl.runs.scoring import dmem_of


def _with_dmem(cfg, variant: str, **eval_changes):
    return dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, dmem=variant),
                               eval=dataclasses.replace(cfg.eval, **eval_changes))


@pytest.fixture(scope="module")
def scored(prepared):
    """(cfg, reader, D_mem rows, the pretrained model's components)."""
    from memctl.models.load import load_components
    from memctl.workspace import proxy_set

    cfg, ws = prepared
    reader = ws.reader()
    return cfg, reader, proxy_set(cfg, reader).dmem_indices, load_components(
        ws.model_dir, text=False)


def test_trajectory_d_mem_differs_from_noised_and_is_deterministic(scored):
    cfg, reader, dmem, comps = scored
    noised = dmem_of(comps, reader, _with_dmem(cfg, "noised"), dmem)
    trajectory = dmem_of(comps, reader, _with_dmem(cfg, "trajectory"), dmem)
    assert math.isfinite(noised) and math.isfinite(trajectory) and trajectory > 0
    assert trajectory != pytest.approx(noised, rel=1e-3)
    assert dmem_of(comps, reader, _with_dmem(cfg, "trajectory"), dmem) == trajectory
    # The default follows search.dmem; `variant` overrides it.
    assert dmem_of(comps, reader, _with_dmem(cfg, "noised"), dmem, "trajectory") == trajectory
    assert dmem_of(comps, reader, cfg, dmem) == noised  # the embedded default: noised


def test_trajectory_is_the_sampling_path_with_the_eval_settings(scored):
    cfg, reader, dmem, comps = scored
    data = reader.load(dmem)
    expected = d_mem(comps.unet, data.prompt_embeds[data.prompt_index], data.empty_embed,
                     comps.scheduler, SamplingSettings(
                         num_inference_steps=cfg.eval.num_inference_steps,
                         guidance_scale=cfg.eval.guidance_scale, seed=cfg.eval.seed,
                         latent_shape=tuple(data.latent_mean.shape[1:])), generations=1)
    assert dmem_of(comps, reader, _with_dmem(cfg, "trajectory"), dmem) == pytest.approx(
        expected, rel=1e-6)
    # Steps, sampler and seed are the evaluation's.
    base = dmem_of(comps, reader, _with_dmem(cfg, "trajectory"), dmem)
    for change in ({"sampler": "dpm"}, {"seed": 7}, {"num_inference_steps": 2}):
        other = dmem_of(comps, reader, _with_dmem(cfg, "trajectory", **change), dmem)
        assert other != pytest.approx(base, rel=1e-6), change


@pytest.mark.parametrize("variant", ["trajectory", "noised"])
def test_a_search_trial_scores_the_configured_d_mem(prepared, tmp_path, monkeypatch, variant):
    from memctl import peft
    from memctl.models.load import load_components
    from memctl.search.objective import TrialContext, run_trial
    from memctl.workspace import proxy_set

    cfg, ws = prepared
    cfg = _with_dmem(cfg, variant)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=1))
    called: dict[str, float] = {}

    def spy(name, real):
        def wrapped(*args, **kwargs):
            called[name] = real(*args, **kwargs)
            return called[name]
        return wrapped

    monkeypatch.setattr(scoring, "d_mem", spy("trajectory", scoring.d_mem))
    monkeypatch.setattr(scoring, "d_mem_noised", spy("noised", scoring.d_mem_noised))
    reader = ws.reader()
    unet = load_components(ws.model_dir, text=False).unet
    proxy = proxy_set(cfg, reader)
    ctx = TrialContext(str(ws.model_dir), str(ws.cache_path), proxy.train_indices[:8],
                       proxy.dmem_indices, peft.num_bits(unet, cfg.peft.space))
    scores = run_trial(cfg, ctx, [1] * ctx.n_bits, tmp_path)
    assert list(called) == [variant]
    if variant == "trajectory":
        assert scores.d_mem == called["trajectory"]
    else:  # the mean over eval.dmem_noise_seeds (1 here) draws
        assert scores.d_mem == pytest.approx(called["noised"])
