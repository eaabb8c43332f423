"""IB-VA's backbone: ImageBind (Girdhar et al. 2023), `imagebind_huge`'s vision and audio encoders; the score is
100 x the cosine between a clip's video and audio embeddings.

ImageBind's own packages require torchvision, torchaudio, decord and pytorchvideo (which conflict with this project's
torch), so the two encoders and their input pipelines are written here after the reference release
(facebookresearch/ImageBind: models/imagebind_model.py, transformer.py, multimodal_preprocessors.py, data.py), with
its module names, so `imagebind_huge.pth` converts with `bridgedit convert-weights` (its text, depth, thermal and IMU
weights are ignored). The Kaldi filter bank that ImageBind takes from torchaudio comes from transformers' audio_utils.

Input protocol (the reference's data.py):
- video: 5 clips of 2 s, their starts i x max(duration - 2, 0) / 5; the first and last frame of each clip; short side
  resized to 224 (bilinear), CLIP's mean / std, left, centre and right 224 crops -> 15 views of (3, 2, 224, 224);
- audio: the first channel at 16 kHz; 3 clips of 2 s (starts i x max(duration - 2, 0) / 3), each less its mean, a
  128-band Kaldi filter bank (25 ms / 10 ms, Hanning), cut or zero-padded to 204 frames, (x + 4.268) / 9.138;
- each view's embedding is normalised, the views are averaged; IB-VA = 100 cos(video, audio).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..media import MediaError
from .extractors import load_converted_weights

WEIGHTS_URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
AUDIO_RATE, AUDIO_MEL_BANDS, AUDIO_FRAMES, AUDIO_MEAN, AUDIO_STD = 16_000, 128, 204, -4.268, 9.138
CLIP_SECONDS, VIDEO_CLIPS, AUDIO_CLIPS, IMAGE_SIZE = 2.0, 5, 3, 224
MODALITIES = ("vision", "audio")


@dataclass(frozen=True)
class EncoderSize:
    width: int
    blocks: int
    heads: int


HUGE = {"vision": EncoderSize(1280, 32, 16), "audio": EncoderSize(768, 12, 12), "embedding": 1024}


class Mlp(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block on (L, B, D) tokens (torch's MultiheadAttention, sequence first, as the reference)."""

    def __init__(self, width: int, heads: int, add_bias_kv: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, bias=True, add_bias_kv=add_bias_kv)
        self.norm_1, self.norm_2 = nn.LayerNorm(width, eps=1e-6), nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm_1(x)
        x = x + self.attn(normed, normed, normed, need_weights=False)[0]
        return x + self.mlp(self.norm_2(x))


class Trunk(nn.Module):
    def __init__(self, size: EncoderSize, *, pre_norm: bool, add_bias_kv: bool) -> None:
        super().__init__()
        self.pre_transformer_layer = nn.Sequential(nn.LayerNorm(size.width, eps=1e-6) if pre_norm else nn.Identity())
        self.blocks = nn.Sequential(*[Block(size.width, size.heads, add_bias_kv) for _ in range(size.blocks)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.pre_transformer_layer(tokens).transpose(0, 1)  # (B, L, D) -> (L, B, D)
        return self.blocks(x).transpose(0, 1)


class PatchStem(nn.Module):
    def __init__(self, projection: nn.Module, norm: nn.Module | None = None) -> None:
        super().__init__()
        self.proj, self.norm_layer = projection, norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(x).flatten(2).transpose(1, 2)  # (B, D, *grid) -> (B, patches, D)
        return tokens if self.norm_layer is None else self.norm_layer(tokens)


class PositionEmbedding(nn.Module):
    def __init__(self, tokens: int, width: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, width))


class Tokenizer(nn.Module):
    """Patches, a class token in front, learned positions (the reference's RGBDT / Audio preprocessors)."""

    def __init__(self, stem: PatchStem, patches: int, width: int) -> None:
        super().__init__()
        self.rgbt_stem = stem
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embedding_helper = PositionEmbedding(1 + patches, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.rgbt_stem(x)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)
        return tokens + self.pos_embedding_helper.pos_embed


class FirstToken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class ImageBindAudioVisual(nn.Module):
    """ImageBind's vision and audio encoders: (N, 3, 2, 224, 224) views or (N, 1, 128, 204) filter banks -> (N, E)
    unit embeddings."""

    def __init__(
        self,
        vision: EncoderSize = HUGE["vision"],
        audio: EncoderSize = HUGE["audio"],
        embedding: int = HUGE["embedding"],
    ) -> None:
        super().__init__()
        # the reference's stem starts with PadIm2Video (repeats a still image to 2 frames): an identity for video
        vision_stem = PatchStem(
            nn.Sequential(nn.Identity(), nn.Conv3d(3, vision.width, (2, 14, 14), (2, 14, 14), bias=False))
        )
        audio_stem = PatchStem(nn.Conv2d(1, audio.width, 16, 10, bias=False), nn.LayerNorm(audio.width))
        audio_grid = ((AUDIO_MEL_BANDS - 16) // 10 + 1) * ((AUDIO_FRAMES - 16) // 10 + 1)  # 12 x 19
        self.modality_preprocessors = nn.ModuleDict(
            {
                "vision": Tokenizer(vision_stem, (IMAGE_SIZE // 14) ** 2, vision.width),
                "audio": Tokenizer(audio_stem, audio_grid, audio.width),
            }
        )
        self.modality_trunks = nn.ModuleDict(
            {
                "vision": Trunk(vision, pre_norm=True, add_bias_kv=False),
                "audio": Trunk(audio, pre_norm=False, add_bias_kv=True),
            }
        )
        self.modality_heads = nn.ModuleDict(
            {
                name: nn.Sequential(
                    nn.LayerNorm(size.width, eps=1e-6), FirstToken(), nn.Linear(size.width, embedding, bias=False)
                )
                for name, size in (("vision", vision), ("audio", audio))
            }
        )

    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        tokens = self.modality_trunks[modality](self.modality_preprocessors[modality](x))
        return F.normalize(self.modality_heads[modality](tokens), dim=-1)


def clip_starts(duration: float, clips: int) -> list[float]:
    """pytorchvideo's ConstantClipsPerVideoSampler: `clips` starts spread over the time a 2 s clip can start."""
    return [i * max(duration - CLIP_SECONDS, 0.0) / clips for i in range(clips)]


def video_views(frames: np.ndarray, fps: float) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (15, 3, 2, 224, 224): 5 two-frame clips x 3 crops, CLIP-normalised."""
    count = len(frames)
    times = np.arange(count) / fps
    views = []
    for start in clip_starts(count / fps, VIDEO_CLIPS):
        inside = np.flatnonzero((times >= start) & (times < start + CLIP_SECONDS))
        chosen = inside[torch.linspace(0, len(inside) - 1, 2).long().numpy()]  # UniformTemporalSubsample(2)
        clip = torch.from_numpy(frames[chosen]).permute(0, 3, 1, 2).float() / 255  # (2, 3, H, W)
        height, width = clip.shape[2:]
        scale = IMAGE_SIZE / min(height, width)  # ShortSideScale(224)
        size = (IMAGE_SIZE, int(width * scale)) if height <= width else (int(height * scale), IMAGE_SIZE)
        clip = F.interpolate(clip, size=size, mode="bilinear", align_corners=False)
        clip = (clip - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(CLIP_STD)[:, None, None]
        views += [crop.permute(1, 0, 2, 3) for crop in three_crops(clip)]  # each (3, 2, 224, 224)
    return torch.stack(views)


def three_crops(clip: torch.Tensor) -> list[torch.Tensor]:
    """Left / top, centre, right / bottom 224 crops along the long side (the reference's SpatialCrop)."""
    height, width = clip.shape[2:]
    centre_y, centre_x = -(-(height - IMAGE_SIZE) // 2), -(-(width - IMAGE_SIZE) // 2)
    if height > width:
        offsets = [(0, centre_x), (centre_y, centre_x), (height - IMAGE_SIZE, centre_x)]
    else:
        offsets = [(centre_y, 0), (centre_y, centre_x), (centre_y, width - IMAGE_SIZE)]
    return [clip[:, :, y : y + IMAGE_SIZE, x : x + IMAGE_SIZE] for y, x in offsets]


def audio_views(audio: np.ndarray, sample_rate: int) -> torch.Tensor:
    """(channels, samples) -> (3, 1, 128, 204) normalised Kaldi filter banks of three 2 s clips of the first channel."""
    import librosa
    from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

    wave = np.asarray(audio, dtype=np.float32)[0]
    if sample_rate != AUDIO_RATE:
        wave = librosa.resample(wave, orig_sr=sample_rate, target_sr=AUDIO_RATE)
    with warnings.catch_warnings():  # one of Kaldi's 128 bands is empty at 512-point FFTs, in torchaudio too
        warnings.simplefilter("ignore", UserWarning)
        mel_filters = mel_filter_bank(
            num_frequency_bins=257,
            num_mel_filters=AUDIO_MEL_BANDS,
            min_frequency=20,
            max_frequency=AUDIO_RATE // 2,
            sampling_rate=AUDIO_RATE,
            norm=None,
            mel_scale="kaldi",
            triangularize_in_mel_space=True,
        )
    views = []
    for start in clip_starts(len(wave) / AUDIO_RATE, AUDIO_CLIPS):
        piece = wave[int(start * AUDIO_RATE) : int((start + CLIP_SECONDS) * AUDIO_RATE)].astype(np.float64)
        if len(piece) < 400:
            raise MediaError("ImageBind's audio clips need at least 25 ms of sound")
        # torchaudio.compliance.kaldi.fbank(htk_compat, Hanning, dither 0, no energy) as transformers computes it
        bank = spectrogram(
            piece - piece.mean(),
            window_function(400, "hann", periodic=False),
            frame_length=400,
            hop_length=160,
            fft_length=512,
            power=2.0,
            center=False,
            preemphasis=0.97,
            mel_filters=mel_filters,
            log_mel="log",
            mel_floor=1.192092955078125e-07,
            remove_dc_offset=True,
        )  # (128, frames)
        bank = np.pad(bank, ((0, 0), (0, max(AUDIO_FRAMES - bank.shape[1], 0))))[:, :AUDIO_FRAMES]
        views.append((bank - AUDIO_MEAN) / AUDIO_STD)
    return torch.from_numpy(np.stack(views)).float()[:, None]  # (3, 1, 128, 204)


class ImageBindScorer:
    """`score(clip)` -> IB-VA of one clip: 100 x cos(mean video view embedding, mean audio view embedding)."""

    def __init__(self, model: ImageBindAudioVisual, name: str, *, batch_size: int = 5) -> None:
        self.model, self.name, self.batch_size = model.eval(), name, batch_size

    @classmethod
    def from_pretrained(cls, path: str, sizes: dict = HUGE) -> ImageBindScorer:
        """`path`: a .safetensors file, or a folder holding `imagebind.safetensors` (all of imagebind_huge; `sizes`
        other than HUGE are for tests)."""
        prefixes = tuple(
            f"{part}.{modality}."
            for part in ("modality_preprocessors", "modality_trunks", "modality_heads")
            for modality in MODALITIES
        )
        model = ImageBindAudioVisual(sizes["vision"], sizes["audio"], sizes["embedding"])
        file = load_converted_weights(
            model,
            "ImageBind",
            path,
            "imagebind.safetensors",
            "imagebind_huge.pth",
            WEIGHTS_URL,
            "--imagebind-weights",
            keep=lambda name: name.startswith(prefixes),
        )
        return cls(model, f"ImageBind huge ({file.name}), 15 video / 3 audio views")

    def _embed(self, modality: str, views: torch.Tensor) -> torch.Tensor:
        embeddings = torch.cat(
            [self.model.embed(modality, views[i : i + self.batch_size]) for i in range(0, len(views), self.batch_size)]
        )
        return embeddings.mean(dim=0)

    @torch.no_grad()
    def similarity(self, frames: np.ndarray, fps: float, audio: np.ndarray, sample_rate: int) -> float:
        """cos(video, audio) in [-1, 1]: frames (F, H, W, 3) uint8, audio (channels, samples) or (samples,)."""
        video_embedding = self._embed("vision", video_views(frames, fps))
        audio_embedding = self._embed("audio", audio_views(np.atleast_2d(audio), sample_rate))
        return float(F.cosine_similarity(video_embedding, audio_embedding, dim=0))

    def score(self, clip) -> float:
        return 100 * self.similarity(clip.frames, clip.fps, clip.audio, clip.sample_rate)

    def as_prepare_filter(self, fps: float):
        """`prepare`'s audio-visual filter, fn(frames, audio, sample_rate) -> the cosine (the paper keeps > 0.3)."""
        return lambda frames, audio, sample_rate: self.similarity(frames, fps, audio, sample_rate)
