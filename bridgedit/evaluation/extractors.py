"""Learned feature extractors behind one protocol: each loads its weights from a local folder or hub id through a
well-kept library, says which backbone it is, and without weights fails naming what is missing.

Implemented: CLIP (CLIPSIM) and LAION-CLAP (CLAP score), both through transformers. Not yet: I3D (FVD, KVD),
VGGish (FAD), PaSST / PANNs (KL), ImageBind (IB-VA); asking for their metrics is a clear error.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

CLIP_DEFAULT = "openai/clip-vit-base-patch32"
CLAP_DEFAULT = "laion/clap-htsat-unfused"


class ExtractorUnavailable(RuntimeError):
    """A metric's backbone cannot be loaded here; the message says what is missing and how to get it."""


class TextAlignmentScorer(Protocol):
    """Scores how well one clip's modality matches a text: 100 x cosine similarity of the two embeddings."""

    name: str

    def score(self, clip, text: str) -> float: ...


def _embedding(output) -> torch.Tensor:
    # transformers 5 returns model outputs whose pooler_output is the projected embedding; 4.x returned tensors
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _load(kind: str, path_or_id: str, loader):
    try:
        return loader(path_or_id)
    except (OSError, ValueError) as error:
        raise ExtractorUnavailable(
            f"{kind} weights not found at {path_or_id!r} ({type(error).__name__}). Download them once where the hub "
            f"is reachable (e.g. `huggingface-cli download {path_or_id}`) and pass the local folder, or allow "
            "downloads (unset HF_HUB_OFFLINE)"
        ) from None


class ClipScorer:
    """CLIPSIM: the mean over frames of the cosine between the frame's and the video caption's CLIP embeddings."""

    def __init__(self, model, tokenizer, image_processor, name: str, *, batch_size: int = 16) -> None:
        self.model, self.tokenizer, self.image_processor = model.eval(), tokenizer, image_processor
        self.name, self.batch_size = name, batch_size

    @classmethod
    def from_pretrained(cls, path_or_id: str = CLIP_DEFAULT) -> ClipScorer:
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        model = _load("CLIP", path_or_id, CLIPModel.from_pretrained)
        return cls(model, AutoTokenizer.from_pretrained(path_or_id), AutoImageProcessor.from_pretrained(path_or_id),
                   f"CLIP ({path_or_id})")

    @torch.no_grad()
    def score(self, clip, text: str) -> float:
        tokens = self.tokenizer([text], padding=True, truncation=True, return_tensors="pt")
        text_embedding = torch.nn.functional.normalize(_embedding(self.model.get_text_features(**tokens)), dim=-1)
        similarities = []
        for start in range(0, len(clip.frames), self.batch_size):
            pixels = self.image_processor(images=list(clip.frames[start : start + self.batch_size]), return_tensors="pt")
            image = torch.nn.functional.normalize(_embedding(self.model.get_image_features(pixel_values=pixels.pixel_values)), dim=-1)
            similarities.append(image @ text_embedding[0])
        return float(100 * torch.cat(similarities).mean())


class ClapScorer:
    """CLAP score: the cosine between the audio's and the audio caption's LAION-CLAP embeddings."""

    def __init__(self, model, tokenizer, feature_extractor, name: str) -> None:
        self.model, self.tokenizer, self.feature_extractor, self.name = model.eval(), tokenizer, feature_extractor, name

    @classmethod
    def from_pretrained(cls, path_or_id: str = CLAP_DEFAULT) -> ClapScorer:
        from transformers import AutoFeatureExtractor, AutoTokenizer, ClapModel

        model = _load("CLAP", path_or_id, ClapModel.from_pretrained)
        return cls(model, AutoTokenizer.from_pretrained(path_or_id), AutoFeatureExtractor.from_pretrained(path_or_id),
                   f"LAION-CLAP ({path_or_id})")

    @torch.no_grad()
    def score(self, clip, text: str) -> float:
        import librosa

        rate = self.feature_extractor.sampling_rate
        audio = librosa.to_mono(np.asarray(clip.audio, dtype=np.float32))
        if clip.sample_rate != rate:
            audio = librosa.resample(audio, orig_sr=clip.sample_rate, target_sr=rate)
        features = self.feature_extractor([audio], sampling_rate=rate, return_tensors="pt")
        audio_embedding = _embedding(self.model.get_audio_features(**features))
        tokens = self.tokenizer([text], padding=True, truncation=True, return_tensors="pt")
        text_embedding = _embedding(self.model.get_text_features(**tokens))
        return float(100 * torch.nn.functional.cosine_similarity(audio_embedding, text_embedding)[0])
