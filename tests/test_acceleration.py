"""Speed and memory options give the default's output: regionally compiled blocks, memory levels."""

import numpy as np
import pytest
import torch

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
