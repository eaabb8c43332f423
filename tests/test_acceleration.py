"""Speed and memory options give the default's output: regionally compiled blocks, memory levels."""

import numpy as np
import pytest
import torch
from conftest import open_gates, tiny_bridgedit, tiny_inputs

from bridgedit import tiny
from bridgedit.acceleration import REPEATED_BLOCKS, apply_memory_level, compile_blocks, is_compiled
from bridgedit.config import ConfigError

SIZE = dict(height=32, width=32, num_frames=9, num_inference_steps=3, max_sequence_length=16, progress=False)
PROMPTS = ("a red ball bounces on the floor", "a loud rubber thud")


def _generate(pipe, **kwargs):
    return pipe(*PROMPTS, **SIZE, generator=torch.Generator().manual_seed(0), output_type="latent", **kwargs)


@pytest.mark.slow  # compiles three block classes on a CPU (inductor's C++ code)
def test_compiled_blocks_give_the_eager_output():
    pipe = tiny.bridgedit_pipeline(seed=0)
    pipe.model.bridges.blocks[0].video.modulation.linear.weight.data.normal_(0, 0.1)  # a bridge that does something
    eager = _generate(pipe)
    count = compile_blocks(pipe, dynamic=False)
    blocks = [m for m in pipe.model.modules() if type(m).__name__ in REPEATED_BLOCKS]
    assert count == len(blocks) == 4 + 4 + 2 and all(is_compiled(block) for block in blocks)
    compiled = _generate(pipe)
    torch.testing.assert_close(compiled.video, eager.video, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(compiled.audio, eager.audio, rtol=1e-4, atol=1e-4)
    assert not torch.equal(eager.video, _generate(tiny.bridgedit_pipeline(seed=1)).video)  # the check can fail


def test_a_memory_level_gives_the_default_output():
    pipe = tiny.bridgedit_pipeline(seed=0)
    default = pipe(*PROMPTS, **SIZE, generator=torch.Generator().manual_seed(0))
    settings = apply_memory_level(pipe, "balanced")
    assert settings == {"offload_text_encoders": True} and pipe.video_pipe.vae.use_tiling
    balanced = pipe(*PROMPTS, **SIZE, generator=torch.Generator().manual_seed(0), **settings)
    np.testing.assert_array_equal(balanced.video, default.video)
    np.testing.assert_array_equal(balanced.audio, default.audio)
    assert apply_memory_level(pipe, "max") == {"offload_text_encoders": False} and not pipe.video_pipe.vae.use_tiling
    with pytest.raises(ConfigError, match="memory level 'tiny' is unknown"):
        apply_memory_level(pipe, "tiny")


def test_tiled_video_decoding_stays_close_to_the_whole_frame_decoding():
    """Wan's VAE decoding in tiles (here 32-pixel tiles over 64-pixel frames, so tiles really are blended) against
    whole frames: not equal (blended seams), but close: a mean difference under 2 % of the pixel range, on a random
    tiny VAE whose receptive field is large against its tiles (a trained VAE at real size tiles in 256 pixels)."""
    pipe = tiny.bridgedit_pipeline(seed=0)
    latents = torch.randn(1, 16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    whole = pipe.decode_video(latents, "pt")
    pipe.video_pipe.vae.enable_tiling(
        tile_sample_min_height=32, tile_sample_min_width=32, tile_sample_stride_height=16, tile_sample_stride_width=16
    )
    tiled = pipe.decode_video(latents, "pt")
    assert tiled.shape == whole.shape and not torch.equal(tiled, whole)  # tiles were decoded
    assert (tiled - whole).abs().mean() < 0.02


def test_the_step_cache_reuses_a_forward_only_when_both_towers_first_blocks_changed_little():
    from bridgedit.diffusion import StepCache

    model = tiny_bridgedit().eval()
    open_gates(model)  # bridges that do something
    first, other = tiny_inputs(seed=0), tiny_inputs(seed=1)
    moved_audio = {**first, "audio_latents": other["audio_latents"]}
    with torch.no_grad():
        plain = model(**first)
        cache = StepCache(threshold=0.05)
        computed = model(**first, step_cache=cache)  # nothing cached yet: computed whole
        again = model(**first, step_cache=cache)  # the same inputs: reused, the same prediction
        moved = model(**moved_audio, step_cache=cache)  # the video's first block is unchanged, the audio's is not
        moved_plain = model(**moved_audio)
    assert (cache.computed, cache.reused) == (2, 1)
    for a, b, c, d, e in zip(plain, computed, again, moved, moved_plain):
        assert torch.equal(a, b)  # running both first blocks ahead of the loop changes nothing
        torch.testing.assert_close(c, a, rtol=1e-5, atol=1e-6)
        assert torch.equal(d, e)  # computed whole, both towers (the bridges join them)


@pytest.mark.slow  # full samplings of the tiny pipeline
def test_a_step_cache_of_threshold_0_gives_the_default_output_and_a_positive_one_reuses_steps():
    pipe = tiny.bridgedit_pipeline(seed=0)
    default = _generate(pipe)
    never = _generate(pipe, step_cache=0.0)
    assert torch.equal(never.video, default.video) and torch.equal(never.audio, default.audio)
    assert (never.step_cache.computed, never.step_cache.reused) == (3, 0) and default.step_cache is None
    many = pipe(*PROMPTS, **{**SIZE, "num_inference_steps": 12}, output_type="latent", step_cache=0.5)
    assert many.step_cache.forwards == 12 and many.step_cache.reused > 0
    with pytest.raises(ConfigError, match="threshold must be a finite number, 0 or more; got -0.1"):
        _generate(pipe, step_cache=-0.1)


@pytest.mark.slow  # full samplings of the tiny pipeline
def test_low_memory_brings_every_weight_back_when_it_runs_and_gives_the_default_output(tmp_path):
    """Offloaded to disk, a weight between uses is an empty placeholder: a layer that ran without its weights brought
    back would change the output. The default output, bit for bit, shows that every one was."""
    pipe = tiny.bridgedit_pipeline(seed=0)
    pipe.model.bridges.blocks[0].video.modulation.linear.weight.data.normal_(0, 0.1)  # a bridge that does something
    default = _generate(pipe)
    weight = pipe.model.video_tower.transformer.proj_out.weight
    original = weight.detach().clone()
    settings = apply_memory_level(pipe, "low", offload_to_disk_path=str(tmp_path))
    assert settings == {"offload_text_encoders": True} and pipe.device == torch.device("cpu")
    assert list(tmp_path.glob("*.safetensors")) and not torch.equal(weight.data, original)  # on disk, a placeholder
    low = _generate(pipe, **settings)
    assert torch.equal(low.video, default.video) and torch.equal(low.audio, default.audio)
    with pytest.raises(ConfigError, match="offloaded already"):
        apply_memory_level(pipe, "max")
