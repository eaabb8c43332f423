"""FAD's backbone: VGGish (Hershey et al. 2017), 128-d embeddings of 0.96 s log-mel examples of 16 kHz audio.

No well-kept package loads VGGish offline (the FAD packages fetch its code and weights through torch.hub at run
time), so the network and its input features are written here after the reference release
(tensorflow/models research/audioset/vggish: vggish_params, mel_features, vggish_input, vggish_slim). The module
layout matches torchvggish's port, whose weights (`vggish-10086976.pth`) convert with
`bridgedit convert-weights vggish-10086976.pth vggish.safetensors`.

Embeddings follow the FAD reference (Kilgour et al. 2019; google-research/frechet_audio_distance): the 128-d output
of the last fully connected layer before its ReLU, without the PCA / quantisation post-processing of the AudioSet
release.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..media import MediaError
from .extractors import load_converted_weights, mono_audio

SAMPLE_RATE = 16_000
STFT_WINDOW_SECONDS, STFT_HOP_SECONDS = 0.025, 0.010
MEL_BANDS, MEL_LOW_HZ, MEL_HIGH_HZ, LOG_OFFSET = 64, 125.0, 7500.0, 0.01
EXAMPLE_FRAMES = 96  # 0.96 s of 10 ms frames; examples do not overlap
WEIGHTS_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"


def hertz_to_mel(hertz: np.ndarray) -> np.ndarray:
    """The HTK mel scale, as VGGish uses it."""
    return 1127.0 * np.log1p(np.asarray(hertz, dtype=np.float64) / 700.0)


def mel_matrix(spectrum_bins: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(spectrum_bins, MEL_BANDS) triangles that are linear in mel between equally spaced mel edges; the DC bin is
    left out. (librosa's triangles are linear in hertz, hence not reused.)"""
    bins_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2, spectrum_bins))
    edges = np.linspace(hertz_to_mel(MEL_LOW_HZ), hertz_to_mel(MEL_HIGH_HZ), MEL_BANDS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    return weights


def log_mel_examples(audio: np.ndarray) -> np.ndarray:
    """Mono 16 kHz audio -> (examples, 96, 64) log-mel examples; audio shorter than one example gives none."""
    window = round(STFT_WINDOW_SECONDS * SAMPLE_RATE)  # 400 samples
    hop = round(STFT_HOP_SECONDS * SAMPLE_RATE)  # 160 samples
    fft_size = 2 ** int(np.ceil(np.log2(window)))  # 512
    if len(audio) < window:
        return np.zeros((0, EXAMPLE_FRAMES, MEL_BANDS))
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(audio, dtype=np.float64), window)[::hop]  # (T, 400)
    periodic_hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
    magnitude = np.abs(np.fft.rfft(frames * periodic_hann, fft_size))  # (T, 257)
    log_mel = np.log(magnitude @ mel_matrix(magnitude.shape[1]) + LOG_OFFSET)  # (T, 64)
    count = len(log_mel) // EXAMPLE_FRAMES
    return log_mel[: count * EXAMPLE_FRAMES].reshape(count, EXAMPLE_FRAMES, MEL_BANDS)


class VGGish(nn.Module):
    """(N, 1, 96, 64) log-mel examples -> (N, 128) embeddings (before the last ReLU)."""

    CONVOLUTIONS = (64, "pool", 128, "pool", 256, 256, "pool", 512, 512, "pool")

    def __init__(self) -> None:
        super().__init__()
        layers, channels = [], 1
        for width in self.CONVOLUTIONS:
            if width == "pool":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
                channels = width
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 128)
        )

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        maps = self.features(examples)  # (N, 512, 6, 4)
        # TensorFlow flattens channels last: (N, 6, 4, 512) -> (N, 12288)
        return self.embeddings(maps.permute(0, 2, 3, 1).flatten(1))


class VGGishExtractor:
    """`features(clip)` -> (examples, 128): one embedding per 0.96 s of the clip, pooled over the set by FAD."""

    def __init__(self, model: VGGish, name: str, *, batch_size: int = 64) -> None:
        self.model, self.name, self.batch_size = model.eval(), name, batch_size

    @classmethod
    def from_pretrained(cls, path: str) -> VGGishExtractor:
        """`path`: a .safetensors file, or a folder holding `vggish.safetensors`."""
        model = VGGish()
        file = load_converted_weights(
            model, "VGGish", path, "vggish.safetensors", "vggish-10086976.pth", WEIGHTS_URL, "--vggish-weights"
        )
        return cls(model, f"VGGish ({file.name}), 128-d embeddings before PCA")

    @torch.no_grad()
    def features(self, clip) -> np.ndarray:
        examples = torch.from_numpy(log_mel_examples(mono_audio(clip, SAMPLE_RATE))).float()[:, None]  # (N, 1, 96, 64)
        if len(examples) == 0:
            raise MediaError(f"{clip.stem}: shorter than one VGGish example (0.96 s), so FAD cannot read it")
        return (
            torch.cat(
                [
                    self.model(examples[start : start + self.batch_size])
                    for start in range(0, len(examples), self.batch_size)
                ]
            )
            .double()
            .numpy()
        )
