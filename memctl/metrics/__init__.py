"""Memorisation and quality metrics: d_mem, FID, AMD, extraction attack; batched sampling.

Every function takes plain tensors (features, images in [0, 1], cached latents and text
embeddings) so the search objective, evaluation and tests share one implementation.
"""

from memctl.metrics.amd import amd, nearest_cosine_distance
from memctl.metrics.dmem import d_mem, d_mem_noised
from memctl.metrics.extraction import ExtractionResult, PromptExtraction, extraction_attack
from memctl.metrics.frechet import fid, frechet_distance, frechet_from_stats, gaussian_stats
from memctl.metrics.sampling import GenerationResult, SamplingSettings, generate
from memctl.metrics.tiled import normalised_l2, tiled_l2

__all__ = [
    "ExtractionResult",
    "GenerationResult",
    "PromptExtraction",
    "SamplingSettings",
    "amd",
    "d_mem",
    "d_mem_noised",
    "extraction_attack",
    "fid",
    "frechet_distance",
    "frechet_from_stats",
    "gaussian_stats",
    "generate",
    "nearest_cosine_distance",
    "normalised_l2",
    "tiled_l2",
]
