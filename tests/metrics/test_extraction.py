import math

import numpy as np
import torch

from memctl.metrics import extraction_attack
from memctl.metrics.extraction import largest_clique


def adjacency(n: int, edges: list[tuple[int, int]]) -> np.ndarray:
    adj = np.zeros((n, n), dtype=bool)
    for i, j in edges:
        adj[i, j] = adj[j, i] = True
    return adj


def test_chain_is_not_one_group():
    # Connected components would report one group of 6; the largest clique is an edge.
    chain = adjacency(6, [(i, i + 1) for i in range(5)])
    assert largest_clique(chain) == (0, 1)


def test_finds_the_clique_beside_a_longer_chain():
    edges = [(a, b) for a in range(4) for b in range(a + 1, 4)]  # K4 on 0..3
    edges += [(3, 4)] + [(i, i + 1) for i in range(5, 11)]  # tail and a 7-node chain
    assert largest_clique(adjacency(12, edges)) == (0, 1, 2, 3)


def test_edgeless_and_empty_graphs():
    assert largest_clique(np.zeros((3, 3), dtype=bool)) == (0,)
    assert largest_clique(np.zeros((0, 0), dtype=bool)) == ()


def _images(n: int, value: float, noise: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (value + noise * torch.randn(n, 3, 16, 16, generator=gen)).clamp(0, 1)


def test_memorised_prompt_is_extracted_and_novel_prompt_is_not():
    train = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    # Prompt 0: 12 near-copies of train[1] among 8 unrelated images.
    copies = (train[1] + 0.01 * torch.randn(12, 3, 16, 16)).clamp(0, 1)
    gens0 = torch.cat([torch.rand(8, 3, 16, 16), copies])
    # Prompt 1: 20 unrelated images.
    gens1 = torch.rand(20, 3, 16, 16)
    result = extraction_attack([gens0, gens1], [train, train])
    first, second = result.records
    assert first.clique == tuple(range(8, 20))
    assert first.memorised and first.extracted
    assert first.nearest_train == 1 and first.nearest_generation in first.clique
    assert first.min_train_l2 < 0.02
    assert first.extracted_train == (1,)  # the replayed training image, not its neighbour
    assert not second.memorised and not second.extracted and second.extracted_train == ()
    assert result.n_extracted == 1 and result.n_memorised == 1
    assert result.to_dict()["n_extracted"] == 1


def test_memorised_but_far_from_training_data_is_not_extracted():
    gens = _images(10, 0.3, 0.005, seed=1)
    train = torch.full((1, 3, 16, 16), 0.9)
    record = extraction_attack([gens], [train]).records[0]
    assert record.memorised and not record.extracted
    assert record.min_train_l2 > 0.5


def test_gradual_chain_of_images_is_not_memorised():
    # Each step moves every pixel by 0.06: neighbours are linked (< 0.1), images two steps
    # apart are not, so the chain has 12 connected images but no clique larger than 2.
    gens = torch.stack([torch.full((3, 16, 16), 0.1 + 0.06 * k) for k in range(12)])
    result = extraction_attack([gens], [gens[:1]], edge_threshold=0.1, clique_size=3)
    assert result.records[0].clique_size == 2
    assert not result.records[0].memorised and result.n_extracted == 0


def test_missing_training_images():
    record = extraction_attack([_images(10, 0.5, 0.001, seed=2)], [None]).records[0]
    assert record.memorised and not record.extracted
    assert math.isnan(record.min_train_l2)
