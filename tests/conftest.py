import os
import socket
import sys
from pathlib import Path

# nothing in the suite may reach a hub; set before diffusers / transformers are imported
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from bridgedit import tiny
from bridgedit.config import BridgeConfig, ModelConfig, TrainableConfig
from bridgedit.model import BridgeDiT
from bridgedit.towers import AudioConditions, VideoConditions

TOWER_DEPTH = 6


def free_port() -> int:
    """A local TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_cpu_processes() -> list[str]:
    """`accelerate launch` of two processes on this machine (a gloo group without GPUs); append the module or script."""
    return [
        str(Path(sys.executable).parent / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(free_port()),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]


VIDEO_BLOCKS, AUDIO_BLOCKS = (1, 3), (0, 2)


def tiny_model_config(fusion: str = "dca", *, policy: str = "bridges+last_blocks", width: int = 256) -> ModelConfig:
    """Two bridges after video blocks 1, 3 and audio blocks 0, 2 of 6-block towers; last 2 blocks trainable."""
    return ModelConfig(
        bridge=BridgeConfig(
            fusion=fusion,
            video_blocks=VIDEO_BLOCKS,
            audio_blocks=AUDIO_BLOCKS,
            width=width,
            num_heads=2,
            timestep_embed_dim=16,
        ),
        trainable=TrainableConfig(policy=policy, video_last_blocks=2, audio_last_blocks=2),
    )


def tiny_bridgedit(fusion: str = "dca", **kwargs) -> BridgeDiT:
    return BridgeDiT(
        tiny.wan_transformer(num_layers=TOWER_DEPTH, seed=0),
        tiny.stable_audio_transformer(num_layers=TOWER_DEPTH, seed=1),
        tiny_model_config(fusion, **kwargs),
    )


def tiny_inputs(batch_size: int = 2, *, seed: int = 0) -> dict:
    """Random BridgeDiT inputs for the tiny towers, with different timesteps per sample and per tower."""
    g = torch.Generator().manual_seed(seed)
    t_video = torch.linspace(900.0, 100.0, batch_size)
    return dict(
        video_latents=torch.randn(batch_size, 16, 3, 8, 12, generator=g),  # (B, C, F, H, W): grid 3 x 4 x 6
        audio_latents=torch.randn(batch_size, 4, 10, generator=g),  # (B, C, T)
        t_video=t_video,
        t_audio=torch.linspace(0.2, 0.7, batch_size),  # independent of t_video on purpose
        video_conditions=VideoConditions(torch.randn(batch_size, 7, tiny.TINY_TEXT_WIDTH, generator=g)),
        audio_conditions=AudioConditions(
            text_states=torch.randn(batch_size, 6, 16, generator=g),
            global_states=torch.randn(batch_size, 1, 32, generator=g),
        ),
    )


def open_gates(model: BridgeDiT, seed: int = 0) -> None:
    """Give every bridge non-zero modulation weights, so bridges stop being the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.bridges.blocks:
            for stream in (block.video, block.audio):
                linear = stream.modulation.linear
                linear.weight.copy_(0.2 * torch.randn(linear.weight.shape, generator=g))
                linear.bias.copy_(0.5 + 0.1 * torch.randn(linear.bias.shape, generator=g))


@pytest.fixture
def inputs():
    return tiny_inputs()


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """accelerate keeps one process-wide state, fixed by the first training run's mixed precision: each test's
    training runs (the recipe's in bf16, the others in float32) start from none."""
    from accelerate.state import AcceleratorState

    yield
    AcceleratorState._reset_state()
