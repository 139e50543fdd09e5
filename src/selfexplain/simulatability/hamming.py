"""Hamming-ball counterfactual groups of the simulatability study, without an n x n distance matrix.

The original study (reference §2.1) makes every row of a binned table a candidate centre. Its counterfactuals are
other rows within Hamming distance `max_distance` over the feature columns (NaN never equals anything, not even
itself), drawn alternately from the different-label and the same-label pool, starting with different, falling back
to the other pool when one runs out, while the label imbalance of the group (centre counted as same-label) stays
below `max_imbalance`. Which draws happen depends only on the two pool sizes, so success and group size are a pure
function of them (`draw_plan`, `group_size`); only the identities of the drawn rows are random.

This module therefore:
* counts both pools for every row by grouping rows on keys with up to `max_distance` columns masked, and recovers
  the exact counts per distance by inclusion-exclusion (`pool_sizes`): O(n log n) per mask, never n x n;
* applies the original's optional cap (`random.Random(cap_seed).sample` of the successful centres in row order,
  which is what `random.seed(42); random.sample(...)` gives, in sample order) (`cap_centres`);
* enumerates the pools of the kept centres only, with the same masked keys, and draws their members with a
  generator seeded by (seed, centre row), so one centre's members never depend on another's (`build_groups`).

Rows are identified by position (0..n-1), as the original's `question_idx`.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from selfexplain.errors import ConfigError, InputError

# Candidate (centre, row) pairs gathered at once while enumerating the pools of kept centres.
PAIR_BUDGET = 4_000_000
# Masked-key sort orders kept in memory across chunks when masks x rows stays below this many elements.
ORDER_CACHE_LIMIT = 10_000_000
_RADIX_LIMIT = 2**62


@dataclass(frozen=True)
class BallParams:
    """Parameters of the Hamming-ball groups (paper: 2, 5, 10, 0.3; cap 500 for income and bank, cap_seed 42).

    max_imbalance is strict: a group is valid while |same - different| / size < max_imbalance.
    seed fixes the drawn members; it never changes which centres succeed or their group sizes.
    max_centres None keeps every successful centre.
    """

    max_distance: int = 2
    min_group_size: int = 5
    max_group_size: int = 10
    max_imbalance: float = 0.3
    seed: int = 0
    max_centres: int | None = None
    cap_seed: int = 42

    def __post_init__(self) -> None:
        def is_int(value: Any) -> bool:
            return isinstance(value, int | np.integer) and not isinstance(value, bool)

        if not is_int(self.max_distance) or self.max_distance < 0:
            raise ConfigError(f"hamming balls: max_distance must be an integer >= 0, got {self.max_distance!r}")
        if not is_int(self.min_group_size) or self.min_group_size < 1:
            raise ConfigError(f"hamming balls: min_group_size must be an integer >= 1, got {self.min_group_size!r}")
        if not is_int(self.max_group_size) or self.max_group_size < self.min_group_size:
            raise ConfigError(
                f"hamming balls: max_group_size must be an integer >= min_group_size ({self.min_group_size}), "
                f"got {self.max_group_size!r}"
            )
        imbalance = self.max_imbalance
        if isinstance(imbalance, bool) or not isinstance(imbalance, int | float) or not 0 < imbalance <= 1:
            raise ConfigError(f"hamming balls: max_imbalance must be a number in (0, 1], got {imbalance!r}")
        if not is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"hamming balls: seed must be an integer >= 0, got {self.seed!r}")
        if self.max_centres is not None and (not is_int(self.max_centres) or self.max_centres < 1):
            raise ConfigError(f"hamming balls: max_centres must be null or an integer >= 1, got {self.max_centres!r}")
        if not is_int(self.cap_seed):
            raise ConfigError(f"hamming balls: cap_seed must be an integer, got {self.cap_seed!r}")


@dataclass(frozen=True)
class BallGroup:
    """One kept centre and its counterfactuals (members exclude the centre, in draw order)."""

    centre: int
    centre_label: Any
    members: tuple[int, ...]
    member_labels: tuple[Any, ...]
    distances: tuple[int, ...]

    @property
    def size(self) -> int:
        """Group size including the centre (the original's len(subset))."""
        return 1 + len(self.members)


@dataclass(frozen=True, eq=False)
class PoolSizes:
    """Pool sizes of every row as a centre; the centre itself is never in its own pools.

    same_by_distance[d][i] and diff_by_distance[d][i] count the rows j != i at Hamming distance exactly d from row i
    with the same and with another label, for d = 0..min(max_distance, number of features).
    """

    n_same: np.ndarray
    n_diff: np.ndarray
    same_by_distance: np.ndarray
    diff_by_distance: np.ndarray


# ---------------------------------------------------------------------------------------------------------------
# The draw sequence as a function of the pool sizes


def draw_plan(n_same: int, n_diff: int, params: BallParams) -> tuple[bool, ...] | None:
    """Pools of the kept draws in order (True = same label, False = different label), or None if the centre fails.

    Follows the original: the group starts as [centre] (counted as same-label); draws alternate, starting with the
    different-label pool, and take the other pool when the wanted one is empty. It must reach min_group_size (else
    None) with imbalance < max_imbalance (else None); it then grows one draw at a time up to max_group_size,
    stopping when both pools are empty, and stopping without the new draw as soon as the imbalance would reach
    max_imbalance. The alternation continues from where the first phase left it.
    """
    if n_same < 0 or n_diff < 0:
        raise ValueError(f"pool sizes must be >= 0, got {n_same}, {n_diff}")
    left = {True: int(n_same), False: int(n_diff)}
    counts = {True: 1, False: 0}
    plan: list[bool] = []
    want_same = False

    def next_pool() -> bool | None:
        if left[want_same]:
            return want_same
        if left[not want_same]:
            return not want_same
        return None

    def imbalance() -> float:
        return abs(counts[True] - counts[False]) / (1 + len(plan))

    while 1 + len(plan) < params.min_group_size:
        pool = next_pool()
        if pool is None:
            return None
        left[pool] -= 1
        counts[pool] += 1
        plan.append(pool)
        want_same = not want_same
    if imbalance() >= params.max_imbalance:
        return None
    while 1 + len(plan) < params.max_group_size:
        pool = next_pool()
        if pool is None:
            break
        counts[pool] += 1
        plan.append(pool)
        if imbalance() >= params.max_imbalance:
            plan.pop()
            break
        left[pool] -= 1
        want_same = not want_same
    return tuple(plan)


def group_size(n_same: int, n_diff: int, params: BallParams) -> int:
    """Size of the centre's group including the centre, 0 when the centre fails."""
    plan = draw_plan(n_same, n_diff, params)
    return 0 if plan is None else 1 + len(plan)


def group_sizes(n_same: np.ndarray, n_diff: np.ndarray, params: BallParams) -> np.ndarray:
    """`group_size` for arrays of pool sizes (a pool never runs dry beyond max_group_size, so sizes are clipped)."""
    top = params.max_group_size
    table = np.array([[group_size(a, b, params) for b in range(top + 1)] for a in range(top + 1)], dtype=np.int64)
    same = np.minimum(np.asarray(n_same, dtype=np.int64), top)
    diff = np.minimum(np.asarray(n_diff, dtype=np.int64), top)
    return table[same, diff]


# ---------------------------------------------------------------------------------------------------------------
# Encoding and masked keys


def encode_features(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Integer codes (n x k, int64) of the feature columns; equal values share a code within a column.

    A missing value (NaN, None, pd.NA) gets a code of its own in every row, so it equals nothing, not even a missing
    value in another row, as with the original's elementwise `!=`.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"hamming balls: feature column {missing[0]!r} is not in the table")
    n = len(frame)
    codes = np.empty((n, len(columns)), dtype=np.int64)
    for j, column in enumerate(columns):
        col_codes, uniques = pd.factorize(frame[column], use_na_sentinel=True)
        col_codes = np.asarray(col_codes, dtype=np.int64)
        nan = col_codes < 0
        col_codes[nan] = len(uniques) + np.arange(int(nan.sum()), dtype=np.int64)
        codes[:, j] = col_codes
    return codes


def encode_labels(frame: pd.DataFrame, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, values): integer label codes per row and the label value of each code."""
    if label_column not in frame.columns:
        raise InputError(f"hamming balls: label column {label_column!r} is not in the table")
    codes, uniques = pd.factorize(frame[label_column], use_na_sentinel=True)
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise InputError(f"hamming balls: label column {label_column!r} is missing in row {row}")
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


class _MaskedKeys:
    """Per row, one int64 key of the feature tuple with some columns masked; equal keys <=> equal unmasked codes."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes
        self.radix_limit = radix_limit = _RADIX_LIMIT
        n, k = codes.shape
        self.cards = [int(codes[:, j].max()) + 1 if n else 1 for j in range(k)]
        self.full: np.ndarray | None = None
        if math.prod(self.cards) < radix_limit:
            strides = np.ones(k, dtype=np.int64)
            for j in range(k - 2, -1, -1):
                strides[j] = strides[j + 1] * self.cards[j + 1]
            self.strides = strides
            self.full = codes @ strides if k else np.zeros(n, dtype=np.int64)

    def key(self, mask: Sequence[int], rows: np.ndarray | None = None) -> np.ndarray:
        """Keys with the columns in `mask` ignored, of all rows or of `rows` only."""
        if self.full is not None:
            if rows is None:
                key = self.full.copy()
                for j in mask:
                    key -= self.codes[:, j] * self.strides[j]
                return key
            key = self.full[rows]
            for j in mask:
                key -= self.codes[rows, j] * self.strides[j]
            return key
        if rows is not None:
            return self.key(mask)[rows]
        # Too many combinations for one int64: build the key column by column, re-ranking it when it would overflow.
        n = self.codes.shape[0]
        key = np.zeros(n, dtype=np.int64)
        span = 1
        masked = set(mask)
        for j, card in enumerate(self.cards):
            if j in masked:
                continue
            if span * card >= self.radix_limit:
                _, key = np.unique(key, return_inverse=True)
                key = key.astype(np.int64).reshape(-1)
                span = int(key.max()) + 1 if n else 1
            key = key * card + self.codes[:, j]
            span *= card
        return key


def _group_counts(key: np.ndarray, labels: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how many rows share its key, and how many share its key and its label (both including itself)."""
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    keyed = inverse * n_labels + labels
    if len(counts) * n_labels <= 4 * len(key) + 16:
        same = np.bincount(keyed, minlength=len(counts) * n_labels)[keyed]
    else:
        _, inv2, counts2 = np.unique(keyed, return_inverse=True, return_counts=True)
        same = counts2[inv2.reshape(-1)]
    return counts[inverse], same


def _distance_histograms(
    keys: _MaskedKeys, labels: np.ndarray, n_labels: int, max_distance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all, same, cost): rows at each exact distance 0..D (row itself included at 0), and the pair cost per row.

    With E_M(i) the number of rows agreeing with row i outside the column set M, the sum A_m(i) of E_M(i) over all
    masks of size m counts a row at distance s exactly C(k - s, m - s) times; solving that triangular system gives
    the number of rows at each exact distance. cost = A_D, the candidates enumerated per centre by `_balls`.
    """
    n, k = keys.codes.shape
    top = min(max_distance, k)
    summed_all = np.zeros((top + 1, n), dtype=np.int64)
    summed_same = np.zeros((top + 1, n), dtype=np.int64)
    for m in range(top + 1):
        for mask in itertools.combinations(range(k), m):
            everyone, same = _group_counts(keys.key(mask), labels, n_labels)
            summed_all[m] += everyone
            summed_same[m] += same
    exact_all = np.zeros_like(summed_all)
    exact_same = np.zeros_like(summed_same)
    for m in range(top + 1):
        exact_all[m] = summed_all[m]
        exact_same[m] = summed_same[m]
        for s in range(m):
            exact_all[m] -= math.comb(k - s, m - s) * exact_all[s]
            exact_same[m] -= math.comb(k - s, m - s) * exact_same[s]
    return exact_all, exact_same, summed_all[top]


def _pool_sizes_from_codes(codes: np.ndarray, labels: np.ndarray, max_distance: int) -> tuple[PoolSizes, np.ndarray]:
    n_labels = int(labels.max()) + 1 if len(labels) else 1
    keys = _MaskedKeys(codes)
    exact_all, exact_same, cost = _distance_histograms(keys, labels, n_labels, max_distance)
    same = exact_same.copy()
    same[0] -= 1  # the row itself, at distance 0 under the per-row NaN codes
    diff = exact_all - exact_same
    return PoolSizes(same.sum(axis=0), diff.sum(axis=0), same, diff), cost


def pool_sizes(frame: pd.DataFrame, feature_columns: Sequence[str], label_column: str, max_distance: int) -> PoolSizes:
    """Same-label and other-label pool sizes of every row as a centre (Hamming distance <= max_distance)."""
    codes = encode_features(frame, feature_columns)
    labels, _ = encode_labels(frame, label_column)
    return _pool_sizes_from_codes(codes, labels, max_distance)[0]


# ---------------------------------------------------------------------------------------------------------------
# Centres, cap and members


def cap_centres(successful: Sequence[int], max_centres: int | None, cap_seed: int) -> list[int]:
    """The centres kept, in export order: all of them, or, when there are more than max_centres, the original's
    `random.seed(cap_seed); random.sample(successful, max_centres)` in sample order (private RNG instance)."""
    successful = [int(c) for c in successful]
    if max_centres is None or len(successful) <= max_centres:
        return successful
    return random.Random(cap_seed).sample(successful, max_centres)


def ball_summary(
    frame: pd.DataFrame, feature_columns: Sequence[str], label_column: str, params: BallParams
) -> pd.DataFrame:
    """One row per table row: label, pool sizes (also per exact distance), group size (0 = failed) and `kept`.

    `kept_rank` is the position of the centre in the export order (-1 when not kept).
    """
    codes = encode_features(frame, feature_columns)
    labels, values = encode_labels(frame, label_column)
    pools, _ = _pool_sizes_from_codes(codes, labels, params.max_distance)
    sizes = group_sizes(pools.n_same, pools.n_diff, params)
    kept = cap_centres(np.flatnonzero(sizes > 0), params.max_centres, params.cap_seed)
    rank = np.full(len(frame), -1, dtype=np.int64)
    rank[np.asarray(kept, dtype=np.int64)] = np.arange(len(kept))
    out = {"row": np.arange(len(frame), dtype=np.int64), "label": values[labels]}
    out["n_same"], out["n_diff"] = pools.n_same, pools.n_diff
    for d in range(len(pools.same_by_distance)):
        out[f"n_same_d{d}"] = pools.same_by_distance[d]
        out[f"n_diff_d{d}"] = pools.diff_by_distance[d]
    out["group_size"] = sizes
    out["kept_rank"] = rank
    return pd.DataFrame(out)


def _range_gather(order: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, rows): order[lo[i]:hi[i]] for every i, concatenated, with i as the owner of each element."""
    lengths = hi - lo
    total = int(lengths.sum())
    owner = np.repeat(np.arange(len(lo), dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    positions = np.arange(total, dtype=np.int64) - np.repeat(starts - lo, lengths)
    return owner, order[positions]


def _balls(
    keys: _MaskedKeys, centres: np.ndarray, cost: np.ndarray, max_distance: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(centre, rows within max_distance, ascending, the centre included) for each centre, in the given order.

    Every row within distance D of a centre shares its key under some mask of exactly min(D, k) columns, so the
    ball is the union of the centre's key groups over those masks (each row taken from exactly one of them, so no
    deduplication is needed). Centres are processed in chunks of at most PAIR_BUDGET candidate pairs (cost =
    candidates per centre, from the counting pass).
    """
    n, k = keys.codes.shape
    masks = list(itertools.combinations(range(k), min(max_distance, k)))
    cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] | None = (
        {} if len(masks) * n <= ORDER_CACHE_LIMIT else None
    )

    def sorted_key(mask: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        if cache is not None and mask in cache:
            return cache[mask]
        key = keys.key(mask)
        order = np.argsort(key, kind="stable")
        entry = (order, key[order])
        if cache is not None:
            cache[mask] = entry
        return entry

    start = 0
    while start < len(centres):
        stop, budget = start, 0
        while stop < len(centres) and (stop == start or budget + cost[centres[stop]] <= PAIR_BUDGET):
            budget += int(cost[centres[stop]])
            stop += 1
        chunk = centres[start:stop]
        owners, rows = [], []
        for mask in masks:
            order, ordered = sorted_key(mask)
            centre_keys = keys.key(mask, chunk)
            lo = np.searchsorted(ordered, centre_keys, side="left")
            hi = np.searchsorted(ordered, centre_keys, side="right")
            owner, found = _range_gather(order, lo, hi)
            # A row reached through several masks is kept from one only: the mask made of the columns where it
            # differs from the centre, filled up with the lowest other columns. So every column of the mask at or
            # above the lowest column outside the mask must differ.
            first_outside = next((j for j in range(k) if j not in mask), k)
            for j in mask:
                if j >= first_outside:
                    differs = keys.codes[found, j] != keys.codes[chunk[owner], j]
                    owner, found = owner[differs], found[differs]
            owners.append(owner)
            rows.append(found)
        pairs = np.concatenate(owners) * n + np.concatenate(rows)
        pairs.sort()
        owner, found = pairs // n, pairs % n
        bounds = np.searchsorted(owner, np.arange(len(chunk) + 1))
        for i, centre in enumerate(chunk):
            yield int(centre), found[bounds[i] : bounds[i + 1]]
        start = stop


def _draw(pool_same: np.ndarray, pool_diff: np.ndarray, plan: tuple[bool, ...], rng: np.random.Generator) -> list[int]:
    """Rows drawn in plan order, each uniformly from what is left of its pool (no replacement)."""
    pools = {True: pool_same.copy(), False: pool_diff.copy()}
    left = {True: len(pool_same), False: len(pool_diff)}
    drawn = []
    for pool in plan:
        items = pools[pool]
        j = int(rng.integers(left[pool]))
        last = left[pool] - 1
        drawn.append(int(items[j]))
        items[j], items[last] = items[last], items[j]
        left[pool] = last
    return drawn


def build_groups(
    frame: pd.DataFrame, feature_columns: Sequence[str], label_column: str, params: BallParams
) -> list[BallGroup]:
    """The kept groups in export order (row order, or the cap's sample order), members drawn with a per-centre seed."""
    codes = encode_features(frame, feature_columns)
    labels, values = encode_labels(frame, label_column)
    pools, cost = _pool_sizes_from_codes(codes, labels, params.max_distance)
    sizes = group_sizes(pools.n_same, pools.n_diff, params)
    kept = np.asarray(cap_centres(np.flatnonzero(sizes > 0), params.max_centres, params.cap_seed), dtype=np.int64)
    keys = _MaskedKeys(codes)
    groups = []
    for centre, ball in _balls(keys, kept, cost, params.max_distance):
        others = ball[ball != centre]
        same_mask = labels[others] == labels[centre]
        pool_same, pool_diff = others[same_mask], others[~same_mask]
        if len(pool_same) != pools.n_same[centre] or len(pool_diff) != pools.n_diff[centre]:
            raise AssertionError(f"hamming balls: pools of row {centre} disagree with the counting pass")
        plan = draw_plan(len(pool_same), len(pool_diff), params)
        assert plan is not None and 1 + len(plan) == sizes[centre]
        rng = np.random.default_rng([params.seed, centre])
        members = _draw(pool_same, pool_diff, plan, rng)
        member_idx = np.asarray(members, dtype=np.int64)
        distances = (codes[member_idx] != codes[centre]).sum(axis=1)
        groups.append(
            BallGroup(
                centre=centre,
                centre_label=values[labels[centre]],
                members=tuple(members),
                member_labels=tuple(values[labels[member_idx]]),
                distances=tuple(int(d) for d in distances),
            )
        )
    return groups


def original_group_sizes(original: pd.DataFrame) -> dict[int, int]:
    """Centre row -> group size (1 + counterfactuals per answer order) of an original counterfactual parquet
    (33-column schema), in the order the centres first appear, i.e. the original's export order."""
    for column in ("original_question_idx", "original_answer_first", "counterfactual_question_idx"):
        if column not in original.columns:
            raise InputError(f"original counterfactual table: column {column!r} is missing")
    orders = original["original_answer_first"].drop_duplicates().tolist()
    sizes: dict[int, int] | None = None
    for answer_first in orders:
        part = original[original["original_answer_first"] == answer_first]
        counts = part.groupby("original_question_idx", sort=False).size()
        these = {int(c): 1 + int(s) for c, s in counts.items()}
        if sizes is not None and sizes != these:
            raise InputError("original counterfactual table: the two answer orders hold different groups")
        sizes = these
    return sizes or {}
