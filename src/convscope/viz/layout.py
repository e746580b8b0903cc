"""A layered drawing of a directed graph (Sugiyama's steps, kept small): what `plot_model` uses for
functional models.

1. Ranks: the longest path from an input (a box with no incoming edge has rank 0).
2. Edges that span several ranks get a dummy point on each rank they cross, so they
   bend around the boxes instead of running through them.
3. Order within each rank: barycenter sweeps (down by the predecessors' positions, up
   by the successors'), keeping the order with the fewest crossings seen.
4. Positions: each box as near the mean of its predecessors as the gaps allow.

Everything is computed in "along" (the rank direction) and "across" coordinates, so
the four `rankdir`s share one layout.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

SWEEPS = 8
DUMMY_SIZE = 8.0


def longest_path_ranks(count: int, edges: Sequence[Tuple[int, int]]) -> List[int]:
    """Rank of each of `count` boxes: 0 without incoming edges, else 1 + the largest predecessor's rank.

    Edges that would close a cycle (a shared layer called before and after another
    layer) are ignored here; they are drawn as plain arrows.
    """
    rank = [0] * count
    incoming: Dict[int, List[int]] = {i: [] for i in range(count)}
    for a, b in edges:
        if a != b:
            incoming[b].append(a)
    state = [0] * count   # 0 unseen, 1 on the stack, 2 done
    for root in reversed(range(count)):   # from the outputs: in a cycle, the later box goes lower
        if state[root]:
            continue
        stack = [(root, iter(incoming[root]))]
        state[root] = 1
        while stack:                      # depth-first without recursion (deep models)
            node, parents = stack[-1]
            parent = next(parents, None)
            if parent is None:
                # parents still on the stack are back edges (a cycle): they do not push the box down
                rank[node] = max([rank[p] + 1 for p in incoming[node] if state[p] == 2] or [0])
                state[node] = 2
                stack.pop()
            elif state[parent] == 0:
                state[parent] = 1
                stack.append((parent, iter(incoming[parent])))
    return rank


def split_long_edges(ranks: List[int], edges: Sequence[Tuple[int, int]]):
    """(ranks with dummies appended, unit edges, the chain of points of each edge).

    A forward edge from rank r to rank r + k becomes k unit edges through k − 1 dummies;
    other edges (back edges, same rank) keep their two ends and no dummies.
    """
    ranks = list(ranks)
    unit_edges: List[Tuple[int, int]] = []
    chains: List[List[int]] = []
    for a, b in edges:
        if ranks[b] <= ranks[a]:
            chains.append([a, b])
            continue
        chain = [a]
        for r in range(ranks[a] + 1, ranks[b]):
            ranks.append(r)
            chain.append(len(ranks) - 1)
        chain.append(b)
        unit_edges += list(zip(chain, chain[1:]))
        chains.append(chain)
    return ranks, unit_edges, chains


def order_ranks(ranks: List[int], unit_edges: Sequence[Tuple[int, int]]) -> List[List[int]]:
    """The boxes of each rank, left to right, after barycenter sweeps (fewest crossings kept)."""
    layers: List[List[int]] = [[] for _ in range(max(ranks) + 1)]
    for node, r in enumerate(ranks):
        layers[r].append(node)
    preds: Dict[int, List[int]] = {n: [] for n in range(len(ranks))}
    succs: Dict[int, List[int]] = {n: [] for n in range(len(ranks))}
    for a, b in unit_edges:
        succs[a].append(b)
        preds[b].append(a)
    best, best_crossings = [list(layer) for layer in layers], crossings(layers, unit_edges)
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        order = range(1, len(layers)) if down else range(len(layers) - 2, -1, -1)
        for r in order:
            fixed = layers[r - 1] if down else layers[r + 1]
            position = {n: i for i, n in enumerate(fixed)}
            neighbours = preds if down else succs
            layers[r] = _by_barycenter(layers[r], neighbours, position)
        count = crossings(layers, unit_edges)
        if count < best_crossings:
            best, best_crossings = [list(layer) for layer in layers], count
    return best


def _by_barycenter(layer: List[int], neighbours, position) -> List[int]:
    """`layer` sorted by the mean position of each box's neighbours in the fixed rank (ties: as before)."""
    def key(item):
        index, node = item
        found = [position[n] for n in neighbours[node] if n in position]
        return (sum(found) / len(found) if found else index, index)
    return [node for _, node in sorted(enumerate(layer), key=key)]


def crossings(layers: List[List[int]], unit_edges: Sequence[Tuple[int, int]]) -> int:
    """How many pairs of unit edges between neighbouring ranks cross."""
    position = {n: i for layer in layers for i, n in enumerate(layer)}
    rank = {n: r for r, layer in enumerate(layers) for n in layer}
    by_rank: Dict[int, List[Tuple[int, int]]] = {}
    for a, b in unit_edges:
        if rank[b] == rank[a] + 1:
            by_rank.setdefault(rank[a], []).append((position[a], position[b]))
    total = 0
    for pairs in by_rank.values():
        for i, (a1, b1) in enumerate(pairs):
            total += sum(1 for a2, b2 in pairs[i + 1:] if (a1 - a2) * (b1 - b2) < 0)
    return total


def place(layers: List[List[int]], across_size: List[float], along_size: List[float],
          unit_edges: Sequence[Tuple[int, int]], gap_across: float, gap_along: float, margin: float):
    """(across centre, along start of each box's rank, along size of each rank): boxes near their
    predecessors' mean, never closer than `gap_across`; ranks `gap_along` apart."""
    preds: Dict[int, List[int]] = {}
    for a, b in unit_edges:
        preds.setdefault(b, []).append(a)
    centre: Dict[int, float] = {}
    for layer in layers:
        wanted = [sum(centre[p] for p in preds[n]) / len(preds[n]) if preds.get(n) else None for n in layer]
        xs, edge = [], None
        for n, want in zip(layer, wanted):
            lowest = -1e18 if edge is None else edge + gap_across + across_size[n] / 2
            x = max(lowest, want if want is not None else lowest if edge is not None else 0.0)
            xs.append(x)
            edge = x + across_size[n] / 2
        shifts = [w - x for w, x in zip(wanted, xs) if w is not None]
        shift = sum(shifts) / len(shifts) if shifts else 0.0
        for n, x in zip(layer, xs):
            centre[n] = x + shift
    low = min(centre[n] - across_size[n] / 2 for n in centre)
    for n in centre:
        centre[n] += margin - low
    rank_size = [max(along_size[n] for n in layer) for layer in layers]
    starts, position = [], margin
    for size in rank_size:
        starts.append(position)
        position += size + gap_along
    return centre, starts, rank_size
