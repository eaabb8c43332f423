"""Evaluation (§4.1): distribution statistics, AV-Align, feature extractors, and scoring generated sets."""

from .av_align import av_align
from .statistics import frechet_distance, kl_divergence, mmd2_polynomial

__all__ = ["av_align", "frechet_distance", "kl_divergence", "mmd2_polynomial"]
