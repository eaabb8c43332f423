"""KL's backbone: an AudioSet classifier's logits per clip, through transformers' audio classification models.

The default is AST (Gong et al. 2021, `MIT/ast-finetuned-audioset-10-10-0.4593`, 527 AudioSet classes), the AudioSet
tagger that transformers carries; PaSST and PANNs (the paper's family of classifiers) have no well-kept package that
loads offline without torchaudio. Any `AutoModelForAudioClassification` folder works; the report names the one used.
AST reads 10.24 s: longer clips are cut there, shorter ones padded (the paper's clips are 5.4 s).
"""

from __future__ import annotations

import numpy as np
import torch

from .defaults import AUDIOSET_CLASSIFIER_DEFAULT
from .extractors import load_or_explain, mono_audio


class AudioSetClassifier:
    """`features(clip)` -> (1, classes) logits, compared between paired clips by `kl_divergence`."""

    def __init__(self, model, feature_extractor, name: str) -> None:
        self.model, self.feature_extractor, self.name = model.eval(), feature_extractor, name

    @classmethod
    def from_pretrained(cls, path_or_id: str = AUDIOSET_CLASSIFIER_DEFAULT) -> AudioSetClassifier:
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        model = load_or_explain("AudioSet classifier", path_or_id, AutoModelForAudioClassification.from_pretrained)
        return cls(
            model,
            AutoFeatureExtractor.from_pretrained(path_or_id),
            f"{type(model).__name__} ({path_or_id}), softmax over {model.config.num_labels} classes",
        )

    @torch.no_grad()
    def features(self, clip) -> np.ndarray:
        rate = self.feature_extractor.sampling_rate
        inputs = self.feature_extractor(mono_audio(clip, rate), sampling_rate=rate, return_tensors="pt")
        return self.model(**inputs).logits.double().numpy()  # (1, classes)
