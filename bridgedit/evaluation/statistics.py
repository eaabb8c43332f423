"""The distribution statistics of §4.1 as plain functions over feature arrays (N, D)."""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax


def _mean_and_covariance(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature vectors of shape (N, D); got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _trace_sqrt_product(sigma_a: np.ndarray, sigma_b: np.ndarray) -> float:
    """Tr(sqrt(A B)) for covariances A, B, computed as Tr(sqrt(sqrt(A) B sqrt(A))): a symmetric PSD matrix, whose
    eigenvalues are clipped at 0, so the result is real and >= 0 even for near-singular covariances."""
    values, vectors = np.linalg.eigh(sigma_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root_a @ sigma_b @ root_a
    middle = (middle + middle.T) / 2
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0, None)).sum())


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of Gaussians fitted to two feature sets (FVD, FAD)."""
    mu_a, sigma_a = _mean_and_covariance(feats_a)
    mu_b, sigma_b = _mean_and_covariance(feats_b)
    distance = float(
        np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a) + np.trace(sigma_b) - 2 * _trace_sqrt_product(sigma_a, sigma_b)
    )
    return max(distance, 0.0)


def mmd2_polynomial(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3 (KID's; KVD on video features)."""
    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"need two feature sets (N >= 2, D equal); got {a.shape} and {b.shape}")
    d = a.shape[1]
    k_aa, k_bb, k_ab = (a @ a.T / d + 1) ** 3, (b @ b.T / d + 1) ** 3, (a @ b.T / d + 1) ** 3
    m, n = len(a), len(b)
    within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(within_a + within_b - 2 * k_ab.mean())


def kl_divergence(logits_ref: np.ndarray, logits_gen: np.ndarray) -> float:
    """Mean over paired clips of KL(softmax(ref) || softmax(gen)) (the KL of §4.1; classifier logits (N, C))."""
    ref, gen = np.asarray(logits_ref, dtype=np.float64), np.asarray(logits_gen, dtype=np.float64)
    if ref.shape != gen.shape or ref.ndim != 2:
        raise ValueError(f"KL pairs clips: logits must have equal shapes (N, C); got {ref.shape} and {gen.shape}")
    log_p, log_q = log_softmax(ref, axis=1), log_softmax(gen, axis=1)
    return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=1)))
