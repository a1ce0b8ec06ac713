"""Carlini et al. (2023) extraction attack: cliques of near-identical generations per prompt.

Paper defaults: 500 generations per prompt, 4 x 4 tiles, a prompt counts as memorised when
its largest clique has >= 10 members, and an image counts as extracted when a clique member is
within normalised l2 0.15 of a training image of that prompt. Unlike the official MemControl
code this uses maximal cliques (a chain a~b~c with a, c far apart is not one group, connected
components would merge it) and one vectorised distance matrix instead of a per-pair loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import networkx as nx
import numpy as np
import torch

from memctl.metrics._tensors import as_float_tensor
from memctl.metrics.tiled import tiled_l2

# Edge threshold on the tiled normalised l2 between two generations. The official code
# used 20 on raw tile l2, which depends on resolution and pixel range (about 0.21 on
# [0, 1] images at 224 px); we use the extraction threshold in normalised units instead.
DEFAULT_EDGE_THRESHOLD = 0.15
DEFAULT_CLIQUE_SIZE = 10
DEFAULT_EXTRACTION_THRESHOLD = 0.15


@dataclass(frozen=True)
class PromptExtraction:
    """Attack outcome for one prompt. Indices refer to that prompt's generations/train images."""

    prompt_index: int
    clique: tuple[int, ...]  # members of the largest maximal clique
    memorised: bool  # len(clique) >= clique_size
    min_train_l2: float  # min normalised l2, clique members vs train images (nan: none given)
    nearest_generation: int  # clique member achieving min_train_l2 (-1: none)
    nearest_train: int  # train image achieving min_train_l2 (-1: none)
    extracted: bool  # memorised and min_train_l2 <= extraction_threshold
    extracted_train: tuple[int, ...] = ()  # train images within the threshold of a member

    @property
    def clique_size(self) -> int:
        return len(self.clique)


@dataclass(frozen=True)
class ExtractionResult:
    records: tuple[PromptExtraction, ...]
    grid: int
    edge_threshold: float
    clique_size: int
    extraction_threshold: float

    @property
    def n_extracted(self) -> int:
        return sum(r.extracted for r in self.records)

    @property
    def n_memorised(self) -> int:
        return sum(r.memorised for r in self.records)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(n_extracted=self.n_extracted, n_memorised=self.n_memorised)
        return out


def largest_clique(adjacency: np.ndarray | torch.Tensor) -> tuple[int, ...]:
    """Largest maximal clique of an undirected graph given as a boolean (n, n) matrix.

    Ties go to the clique with the smallest sorted member indices, so results are stable.
    Bron-Kerbosch with pivoting (networkx) is fast on the near-duplicate graphs seen here,
    including the complete graph of a fully memorised prompt.
    """
    adj = np.asarray(adjacency, dtype=bool)
    n = adj.shape[0]
    if n == 0:
        return ()
    adj = adj & adj.T
    np.fill_diagonal(adj, False)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(zip(*np.nonzero(np.triu(adj)), strict=True))
    cliques = (tuple(sorted(int(v) for v in c)) for c in nx.find_cliques(graph))
    return min(cliques, key=lambda c: (-len(c), c))


def _attack_one(
    index: int,
    generations: torch.Tensor,
    train_images: torch.Tensor | None,
    grid: int,
    edge_threshold: float,
    clique_size: int,
    extraction_threshold: float,
) -> PromptExtraction:
    generations = as_float_tensor(generations)
    dist = tiled_l2(generations, generations, grid=grid)
    clique = largest_clique((dist < edge_threshold).cpu().numpy())
    memorised = len(clique) >= clique_size
    if train_images is None or len(train_images) == 0:
        return PromptExtraction(index, clique, memorised, float("nan"), -1, -1, False)
    members = generations[list(clique)]
    to_train = tiled_l2(members, as_float_tensor(train_images).to(generations.device), grid=1)
    flat = int(torch.argmin(to_train))
    row, col = divmod(flat, to_train.shape[1])
    min_l2 = float(to_train[row, col])
    extracted = memorised and min_l2 <= extraction_threshold
    # The paper counts extracted training images: every one some clique member replays.
    replayed = (tuple(int(i) for i in torch.nonzero(
        to_train.min(dim=0).values <= extraction_threshold).flatten()) if extracted else ())
    return PromptExtraction(index, clique, memorised, min_l2, clique[row], col, extracted,
                            replayed)


def extraction_attack(
    generations_per_prompt: Sequence[torch.Tensor],
    train_images_per_prompt: Sequence[torch.Tensor | None],
    *,
    grid: int = 4,
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
    clique_size: int = DEFAULT_CLIQUE_SIZE,
    extraction_threshold: float = DEFAULT_EXTRACTION_THRESHOLD,
) -> ExtractionResult:
    """Run the attack on each prompt's generations (G, C, H, W) in [0, 1].

    Two generations are linked when their tiled l2 is below ``edge_threshold``; a prompt is
    memorised when its largest clique has >= ``clique_size`` members; it is extracted when,
    in addition, some clique member is within normalised l2 ``extraction_threshold`` of one
    of the prompt's training images (K, C, H, W), which must match the generations' shape;
    each such training image counts as extracted.
    """
    if len(generations_per_prompt) != len(train_images_per_prompt):
        raise ValueError(
            f"{len(generations_per_prompt)} generation sets but "
            f"{len(train_images_per_prompt)} training-image sets"
        )
    records = tuple(
        _attack_one(i, gens, train, grid, edge_threshold, clique_size, extraction_threshold)
        for i, (gens, train) in enumerate(
            zip(generations_per_prompt, train_images_per_prompt, strict=True)
        )
    )
    return ExtractionResult(records, grid, edge_threshold, clique_size, extraction_threshold)
