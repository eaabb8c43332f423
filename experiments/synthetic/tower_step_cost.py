"""What does a tower training step cost at the next demo's clip against the first demo's (issue #46)? Both towers
(the recipe's `WanTransformer3DModel` and `StableAudioDiTModel`, random weights), forward and backward at the tower
stage's batch in float32, on latents of each demo's shapes, timed side by side in one run: the ratio is what scales
the recipe's tower stage.

    python experiments/synthetic/tower_step_cost.py [--repeats 3]     # about 2 minutes on 2 free cores
        # writes results/tower_step_cost.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from diffusers import StableAudioDiTModel, WanTransformer3DModel
from diffusers.models.embeddings import get_1d_rotary_pos_embed

from bridgedit.atomic import write_text_atomic
from bridgedit.synthetic.recipe import (
    DEMO_OOBLECK_VAE,
    DEMO_STABLE_AUDIO_TRANSFORMER,
    DEMO_WAN_TRANSFORMER,
    FIRST_VIDEO_CODEC,
    FIRST_WORLD,
    RecipeSettings,
)

RESULTS = Path(__file__).parent / "results"
TEXT_TOKENS = 32
HOP = math.prod(DEMO_OOBLECK_VAE["downsampling_ratios"])  # audio samples per latent


def latent_shapes(settings: RecipeSettings) -> tuple[tuple[int, int, int], int]:
    """((latent frames, latent height, latent width), audio latents) of one clip of the recipe's world."""
    world = settings.world_settings
    side = world.height // settings.video_codec["patch_size"]
    return (world.standard.num_frames, side, side), round(world.seconds * DEMO_OOBLECK_VAE["sampling_rate"] / HOP)


def step_seconds(settings: RecipeSettings, repeats: int) -> dict[str, float]:
    (frames, height, width), audio_length = latent_shapes(settings)
    batch = settings.batch_size
    torch.manual_seed(0)
    video = WanTransformer3DModel(**DEMO_WAN_TRANSFORMER)
    audio = StableAudioDiTModel(**DEMO_STABLE_AUDIO_TRANSFORMER)
    head_dim = DEMO_STABLE_AUDIO_TRANSFORMER["attention_head_dim"]
    rotary = get_1d_rotary_pos_embed(head_dim // 2, audio_length + 1, use_real=True, repeat_interleave_real=False)

    def video_step() -> None:
        out = video(
            hidden_states=torch.randn(batch, 16, frames, height, width),
            timestep=torch.rand(batch) * 1000,
            encoder_hidden_states=torch.randn(batch, TEXT_TOKENS, DEMO_WAN_TRANSFORMER["text_dim"]),
            return_dict=False,
        )[0]
        out.pow(2).mean().backward()

    def audio_step() -> None:
        out = audio(
            hidden_states=torch.randn(batch, DEMO_STABLE_AUDIO_TRANSFORMER["in_channels"], audio_length),
            timestep=torch.rand(batch),
            encoder_hidden_states=torch.randn(
                batch, TEXT_TOKENS + 1, DEMO_STABLE_AUDIO_TRANSFORMER["cross_attention_dim"]
            ),  # the caption's tokens and the duration token, as the projection model gives them
            global_hidden_states=torch.randn(batch, 1, DEMO_STABLE_AUDIO_TRANSFORMER["global_states_input_dim"]),
            rotary_embedding=rotary,
            return_dict=False,
        )[0]
        out.pow(2).mean().backward()

    timings = {}
    for name, step in (("video", video_step), ("audio", audio_step)):
        step()  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            step()
        timings[name] = (time.perf_counter() - started) / repeats
    timings["both"] = timings["video"] + timings["audio"]
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    demos = {
        "first demo": RecipeSettings(world=dict(FIRST_WORLD), video_codec=dict(FIRST_VIDEO_CODEC)),
        "next demo": RecipeSettings(),
    }
    rows = {}
    for name, settings in demos.items():
        (frames, height, width), audio_length = latent_shapes(settings)
        video_tokens = frames * (height // 2) * (width // 2)  # the Wan tower's 1 x 2 x 2 patches
        rows[name] = {
            "video_tokens": video_tokens,
            "audio_latents": audio_length,
            **step_seconds(settings, args.repeats),
        }
        print(f"{name}: {video_tokens} video tokens, {audio_length} audio latents; step s " + ", ".join(
            f"{key} {rows[name][key]:.2f}" for key in ("video", "audio", "both")
        ))  # fmt: skip
    ratio = rows["next demo"]["both"] / rows["first demo"]["both"]
    print(f"next demo / first demo, both towers: {ratio:.2f}x")
    result = {
        "experiment": "tower_step_cost",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "batch": RecipeSettings().batch_size,
        "threads": torch.get_num_threads(),
        "rows": rows,
        "ratio": ratio,
    }
    RESULTS.mkdir(exist_ok=True)
    write_text_atomic(RESULTS / "tower_step_cost.json", json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'tower_step_cost.json'}")


if __name__ == "__main__":
    main()
