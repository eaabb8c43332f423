"""The learned backbones' protocols and shared loading: each loads its weights from a local path or hub id (through
transformers where it carries the network), says which backbone it is (`name`), and without weights fails naming
what is missing and how to get it.

Two kinds: scorers, one number per clip (CLIP for CLIPSIM and LAION-CLAP for the CLAP score, here, with a caption;
`imagebind.ImageBindScorer` for IB-VA), and feature extractors, an array per clip that the statistics compare across
sets (`audioset.AudioSetClassifier` for KL, `vggish.VGGishExtractor` for FAD, `i3d.I3DExtractor` for FVD / KVD).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..errors import ExtractorUnavailable
from .defaults import CLAP_DEFAULT, CLIP_DEFAULT, WEIGHTS_DIR


class ClipFeatureExtractor(Protocol):
    """Features of one clip, (windows, D): one row per clip (I3D, the AudioSet classifier's logits) or one per window
    of the clip (VGGish's 0.96 s examples). `name` names the backbone and its weights for the report."""

    name: str

    def features(self, clip) -> np.ndarray: ...


class TextAlignmentScorer(Protocol):
    """Scores how well one clip's modality matches a text: 100 x cosine similarity of the two embeddings."""

    name: str

    def score(self, clip, text: str) -> float: ...


class AudioVisualScorer(Protocol):
    """Scores how well one clip's audio matches its video: 100 x cosine similarity of the two embeddings."""

    name: str

    def score(self, clip) -> float: ...


def _embedding(output) -> torch.Tensor:
    # transformers 5 returns model outputs whose pooler_output is the projected embedding; 4.x returned tensors
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def mono_audio(clip, rate: int) -> np.ndarray:
    """The clip's audio as one float32 channel at `rate` Hz (channels averaged, resampled by librosa)."""
    import librosa

    audio = librosa.to_mono(np.asarray(clip.audio, dtype=np.float32))
    if clip.sample_rate != rate:
        audio = librosa.resample(audio, orig_sr=clip.sample_rate, target_sr=rate)
    return audio


def load_or_explain(kind: str, path_or_id: str, loader, how_to_get: str | None = None):
    """`loader(path_or_id)`, or ExtractorUnavailable naming what is missing and how to get it."""
    try:
        return loader(path_or_id)
    except (OSError, ValueError) as error:
        how_to_get = how_to_get or (
            f"Download them once where the hub is reachable (e.g. `hf download {path_or_id}`) and pass the local "
            "folder, or allow downloads (unset HF_HUB_OFFLINE)"
        )
        raise ExtractorUnavailable(
            f"{kind} weights not found at {path_or_id!r} ({type(error).__name__}). {how_to_get}"
        ) from None


def load_converted_weights(
    model: torch.nn.Module,
    kind: str,
    path: str,
    file_name: str,
    source_checkpoint: str,
    url: str,
    option: str,
    keep=None,
) -> Path:
    """Load a checkpoint converted by `bridgedit convert-weights` (a .safetensors file, or a folder holding
    `file_name`) into a network written here; `keep(name)` selects the tensors used. Returns the file read."""
    from safetensors.torch import load_file

    file = Path(path) / file_name if Path(path).is_dir() else Path(path)
    how = (
        f"Get {source_checkpoint} once ({url}), convert it with `bridgedit convert-weights {source_checkpoint} "
        f"{WEIGHTS_DIR / file_name}` (looked for there by default) or pass the converted file ({option})"
    )
    state = load_or_explain(kind, str(file), load_file, how)
    _load_checkpoint(model, kind, {k: v for k, v in state.items() if keep is None or keep(k)}, file)
    return file


def _load_checkpoint(model: torch.nn.Module, kind: str, state: dict[str, torch.Tensor], source) -> None:
    """Load a converted checkpoint into a network written here, or say why it does not fit. Batch-norm step counters
    (`num_batches_tracked`, absent from older PyTorch checkpoints, unused in evaluation) may be missing."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    misshapen = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    if missing or unexpected or misshapen:
        problems = [
            f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen))
            if keys
        ]
        raise ExtractorUnavailable(f"{source} does not hold {kind} weights ({'; '.join(problems)})")
    model.load_state_dict(state, strict=False)


class ClipScorer:
    """CLIPSIM: the mean over frames of the cosine between the frame's and the video caption's CLIP embeddings."""

    def __init__(self, model, tokenizer, image_processor, name: str, *, batch_size: int = 16) -> None:
        self.model, self.tokenizer, self.image_processor = model.eval(), tokenizer, image_processor
        self.name, self.batch_size = name, batch_size

    @classmethod
    def from_pretrained(cls, path_or_id: str = CLIP_DEFAULT) -> ClipScorer:
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        model = load_or_explain("CLIP", path_or_id, CLIPModel.from_pretrained)
        return cls(
            model,
            AutoTokenizer.from_pretrained(path_or_id),
            AutoImageProcessor.from_pretrained(path_or_id),
            f"CLIP ({path_or_id})",
        )

    @torch.no_grad()
    def score(self, clip, text: str) -> float:
        tokens = self.tokenizer([text], padding=True, truncation=True, return_tensors="pt")
        text_embedding = torch.nn.functional.normalize(_embedding(self.model.get_text_features(**tokens)), dim=-1)
        similarities = []
        for start in range(0, len(clip.frames), self.batch_size):
            pixels = self.image_processor(
                images=list(clip.frames[start : start + self.batch_size]), return_tensors="pt"
            )
            image = torch.nn.functional.normalize(
                _embedding(self.model.get_image_features(pixel_values=pixels.pixel_values)), dim=-1
            )
            similarities.append(image @ text_embedding[0])
        return float(100 * torch.cat(similarities).mean())


class ClapScorer:
    """CLAP score: the cosine between the audio's and the audio caption's LAION-CLAP embeddings."""

    def __init__(self, model, tokenizer, feature_extractor, name: str) -> None:
        self.model, self.tokenizer, self.feature_extractor, self.name = model.eval(), tokenizer, feature_extractor, name

    @classmethod
    def from_pretrained(cls, path_or_id: str = CLAP_DEFAULT) -> ClapScorer:
        from transformers import AutoFeatureExtractor, AutoTokenizer, ClapModel

        model = load_or_explain("CLAP", path_or_id, ClapModel.from_pretrained)
        return cls(
            model,
            AutoTokenizer.from_pretrained(path_or_id),
            AutoFeatureExtractor.from_pretrained(path_or_id),
            f"LAION-CLAP ({path_or_id})",
        )

    @torch.no_grad()
    def score(self, clip, text: str) -> float:
        rate = self.feature_extractor.sampling_rate
        audio = mono_audio(clip, rate)
        features = self.feature_extractor([audio], sampling_rate=rate, return_tensors="pt")
        audio_embedding = _embedding(self.model.get_audio_features(**features))
        tokens = self.tokenizer([text], padding=True, truncation=True, return_tensors="pt")
        text_embedding = _embedding(self.model.get_text_features(**tokens))
        return float(100 * torch.nn.functional.cosine_similarity(audio_embedding, text_embedding)[0])
