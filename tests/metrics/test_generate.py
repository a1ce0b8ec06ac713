import pytest
import torch

from memctl.metrics import generate
from memctl.metrics.sampling import SamplingSettings, denoise


def test_images_do_not_depend_on_batch_size(unet, vae, scheduler, embeds):
    prompts, empty = embeds
    kw = dict(num_inference_steps=3, seed=7)
    one = generate(unet, vae, scheduler, prompts, empty, SamplingSettings(batch_size=1, **kw))
    all_ = generate(unet, vae, scheduler, prompts, empty, SamplingSettings(batch_size=3, **kw))
    two = generate(unet, vae, scheduler, prompts, empty, SamplingSettings(batch_size=2, **kw))
    assert one.images.shape == (3, 3, 16, 16) and one.images.dtype == torch.float32
    assert one.images.min() >= 0 and one.images.max() <= 1
    torch.testing.assert_close(one.images, all_.images, atol=1e-5, rtol=0)
    torch.testing.assert_close(one.images, two.images, atol=1e-5, rtol=0)
    assert one.dmem is None


def test_seed_selects_the_noise(unet, vae, scheduler, embeds):
    prompts, empty = embeds
    a = generate(unet, vae, scheduler, prompts[:1], empty,
                 SamplingSettings(num_inference_steps=2, seed=0))
    b = generate(unet, vae, scheduler, prompts[:1], empty,
                 SamplingSettings(num_inference_steps=2, seed=1))
    assert not torch.allclose(a.images, b.images)
    # Row i uses seed + i: the second row at seed 0 is the first row at seed 1.
    c = generate(unet, vae, scheduler, prompts[[2, 0]], empty,
                 SamplingSettings(num_inference_steps=2, seed=0))
    torch.testing.assert_close(c.images[1], b.images[0], atol=1e-5, rtol=0)


def test_callers_scheduler_and_model_modes_are_untouched(unet, vae, scheduler, embeds):
    prompts, empty = embeds
    unet.train()
    try:
        generate(unet, vae, scheduler, prompts[:1], empty, SamplingSettings(num_inference_steps=2))
        assert unet.training and not vae.training
    finally:
        unet.eval()
    assert scheduler.num_inference_steps is None


def test_latents_follow_the_requested_shape(unet, scheduler, embeds):
    prompts, empty = embeds
    latents, _ = denoise(
        unet, scheduler, prompts[:2], empty,
        SamplingSettings(num_inference_steps=2, latent_shape=(4, 16, 8))
    )
    assert latents.shape == (2, 4, 16, 8)


def test_dpm_solver_is_batch_independent_and_follows_its_own_trajectory(
        unet, vae, scheduler, embeds):
    prompts, empty = embeds
    kw = dict(num_inference_steps=4, seed=3, sampler="dpm")
    one = generate(unet, vae, scheduler, prompts, empty, SamplingSettings(batch_size=1, **kw),
                   return_dmem=True)
    all_ = generate(unet, vae, scheduler, prompts, empty, SamplingSettings(batch_size=3, **kw),
                    return_dmem=True)
    torch.testing.assert_close(one.images, all_.images, atol=1e-5, rtol=0)
    assert one.dmem is not None and abs(one.dmem - all_.dmem) < 1e-4
    ddim = generate(unet, vae, scheduler, prompts, empty,
                    SamplingSettings(batch_size=3, **{**kw, "sampler": "ddim"}), return_dmem=True)
    assert not torch.allclose(ddim.images, one.images, atol=1e-4)
    with pytest.raises(ValueError, match="ddim, dpm"):
        generate(unet, vae, scheduler, prompts[:1], empty, SamplingSettings(sampler="euler"))
