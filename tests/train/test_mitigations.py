"""RWA and the d_mem threshold: what they change, and only that."""

from __future__ import annotations

import json

import pytest
import torch

from memctl import peft
from memctl.models.tiny import build_tokenizer
from memctl.train.batches import Batch
from memctl.train.loop import micro_step, train
from memctl.train.mitigations.rwa import RandomWordAugmentation
from memctl.train.mitigations.threshold import ThresholdFilter
from tests.train._tiny import (
    MASK_UP,
    SCALE,
    make_data,
    make_scheduler,
    make_unet,
    run,
    train_config,
)

CAPTIONS = ["small left pleural effusion", "the heart is mildly enlarged",
            "no acute cardiopulmonary process"]


@pytest.fixture(scope="module")
def text():
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = build_tokenizer()
    torch.manual_seed(0)
    enc = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, hidden_size=32, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=4, max_position_embeddings=tok.model_max_length,
    )).eval()
    return tok, enc


def _rwa(text, prob: float, seed: int = 0) -> RandomWordAugmentation:
    return RandomWordAugmentation(*text, prob=prob, n_tokens=2, seed=seed)


def _cached_set(rwa: RandomWordAugmentation, n: int = 12):
    data = make_data(n=n, prompts=len(CAPTIONS), tokens=rwa.tokenizer.model_max_length)
    data.prompt_embeds = rwa.encode(CAPTIONS)  # as the cache stores them (fp16-rounded)
    return data


def test_rwa_inserts_vocabulary_words_into_the_caption(text):
    rwa = _rwa(text, prob=1.0)
    vocab = set(rwa.tokenizer.get_vocab()) - set(rwa.tokenizer.all_special_tokens)
    for caption in CAPTIONS:
        words = caption.split()
        new = rwa.augment(caption).split()
        assert len(new) == len(words) + 2
        it = iter(new)
        assert all(w in it for w in words)  # the original words, in order
        extra = list(new)
        for w in words:
            extra.remove(w)
        assert all(w in vocab for w in extra)


def test_rwa_rate_and_untouched_cached_embeddings(text):
    rwa = _rwa(text, prob=0.3)
    data = _cached_set(rwa)
    cached = data.prompt_embeds.clone()
    rows = torch.arange(200) % len(CAPTIONS)
    cond, new = rwa.conditioning(rows, data.prompt_embeds, CAPTIONS)
    changed = [c is not None for c in new]
    assert 0.22 < sum(changed) / len(changed) < 0.38  # p = 0.3, 200 draws
    assert torch.equal(data.prompt_embeds, cached)  # the cache is never written
    for j, c in enumerate(new):
        if c is None:
            assert torch.equal(cond[j], cached[rows[j]])
        else:
            assert c != CAPTIONS[rows[j]]
            torch.testing.assert_close(cond[j], rwa.encode([c])[0])


def test_rwa_in_training(text, tmp_path):
    tok, enc = text
    data = _cached_set(_rwa(text, 0.0))
    losses = {}
    for prob in (0.0, 1.0):
        unet = make_unet()
        cfg = train_config(steps=2, mitigation="rwa", rwa_prob=prob)
        adapter = peft.apply(unet, "attention", MASK_UP)
        result = train(unet, adapter.param_groups(cfg.lr), data, make_scheduler(), cfg,
                       scaling_factor=SCALE, out_dir=tmp_path / str(prob), tokenizer=tok,
                       text_encoder=enc, captions=CAPTIONS)
        losses[prob] = result.losses
        log = [json.loads(x) for x in (tmp_path / str(prob) / "metrics.jsonl").read_text()
               .splitlines()]
        assert [x["augmented"] for x in log] == [int(prob * cfg.batch_size)] * 2
    assert losses[0.0] != losses[1.0]  # augmented captions condition differently


def test_threshold_drops_at_or_above():
    f = ThresholdFilter(threshold=3.0, quantile=0.9, calibration_steps=1)
    assert f.keep(torch.tensor([1.0, 2.999, 3.0, 4.0])).tolist() == [True, True, False, False]


def test_threshold_calibrates_on_first_steps():
    f = ThresholdFilter(threshold=0.0, quantile=0.5, calibration_steps=2)
    seen = torch.tensor([[1.0, 5.0], [3.0, 7.0]])
    for norms in seen:
        assert f.keep(norms).all()  # nothing dropped while calibrating
        f.end_step()
    assert f.threshold == pytest.approx(float(torch.quantile(seen.flatten().double(), 0.5)))
    assert f.keep(torch.tensor([3.9, 4.0, 4.1])).tolist() == [True, False, False]


class _Recorder:
    """An engine stand-in: forwards to the U-Net and records what each call saw."""

    device = torch.device("cpu")

    def __init__(self, unet) -> None:
        self.unet, self.calls = unet, []

    def forward(self, sample, t, cond):
        self.calls.append((t.clone(), torch.is_grad_enabled()))
        return self.unet(sample, t, cond).sample


def _batch(n: int = 6) -> Batch:
    data, g = make_data(), torch.Generator().manual_seed(3)
    idx = torch.arange(n)
    return Batch(idx, data.latent_mean[idx] * SCALE, data.prompt_embeds[data.prompt_index[idx]],
                 torch.randn(n, 4, 8, 8, generator=g), torch.randperm(1000, generator=g)[:n])


def test_threshold_removes_exactly_the_samples_above_it():
    unet, batch, sched = make_unet(), _batch(), make_scheduler()
    empty = make_data().empty_embed
    engine = _Recorder(unet)
    noisy = sched.add_noise(batch.latents, batch.noise, batch.t)
    norms = ThresholdFilter.norms(engine.forward, noisy, batch.t, batch.cond, empty)
    cut = float(norms.sort().values[3])  # a threshold equal to a sample's own norm
    engine.calls.clear()
    loss, dropped = micro_step(engine, batch, sched, empty, ThresholdFilter(cut, 0.9, 1))
    assert dropped == int((norms >= cut).sum()) == 3
    (check_t, check_grad), (train_t, train_grad) = engine.calls
    assert not check_grad and train_grad  # the check runs under no_grad, the loss does not
    assert torch.equal(train_t, batch.t[norms < cut])
    assert loss.requires_grad


def test_threshold_dropping_everything_keeps_the_step_but_moves_nothing(tmp_path):
    result = run(str(tmp_path), steps=2, bits=MASK_UP, mitigation="threshold", threshold=1e-9)
    assert result["dropped"] == 2 * 2  # steps x batch
    start = dict(make_unet().named_parameters())
    assert all(torch.equal(v, start[k]) for k, v in result["state"].items())  # zero grads
    log = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["dropped"] for x in log] == [2, 2] and log[-1]["dropped_total"] == 4
