"""``block_matrix`` against numpy's dense ``np.block`` on random block layouts (every block kind:
dense, CSR, CSC, COO, DIA, zero shapes, None), and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarkets.errors import InvalidInputError
from datamarkets.sparse_blocks import block_matrix, selection_rows

KINDS = ("dense", "csr", "csc", "coo", "dia", "shape", "none")


@settings(max_examples=60, deadline=None)
@given(
    heights=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    widths=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    seed=st.integers(0, 2**31 - 1),
    fmt=st.sampled_from(["csr", "csc"]),
)
def test_block_matrix_equals_the_dense_block_matrix(heights, widths, seed, fmt):
    rng = np.random.default_rng(seed)
    dense_rows, blocks = [], []
    for i, h in enumerate(heights):
        drow, brow = [], []
        for j, w in enumerate(widths):
            D = rng.normal(size=(h, w)) * (rng.random((h, w)) < 0.5)
            # the first block of each row and the first row of each column fix the sizes
            kind = KINDS[rng.integers(0, 5)] if (i == 0 or j == 0) else KINDS[rng.integers(0, len(KINDS))]
            if kind in ("shape", "none"):
                D = np.zeros((h, w))
            drow.append(D)
            brow.append(
                {
                    "dense": D,
                    "csr": sp.csr_array(D),
                    "csc": sp.csc_array(D),
                    "coo": sp.coo_array(D),
                    "dia": sp.dia_array(D),
                    "shape": (h, w),
                    "none": None,
                }[kind]
            )
        dense_rows.append(drow)
        blocks.append(brow)
    K = block_matrix(blocks, format=fmt)
    assert K.format == fmt and K.dtype == np.float64
    np.testing.assert_array_equal(K.toarray(), np.block(dense_rows))
    assert K.has_sorted_indices and K.nnz == np.count_nonzero(np.block(dense_rows))
    # canonical: the same structure scipy itself would store
    ref = sp.csr_array(np.block(dense_rows)) if fmt == "csr" else sp.csc_array(np.block(dense_rows))
    np.testing.assert_array_equal(K.indptr, ref.indptr)
    np.testing.assert_array_equal(K.indices, ref.indices)


def test_duplicate_entries_of_a_block_are_summed():
    B = sp.csr_array((np.array([1.0, 2.0]), np.array([0, 0]), np.array([0, 2])), shape=(1, 2))
    assert not B.has_canonical_format
    np.testing.assert_array_equal(block_matrix([[B]]).toarray(), [[3.0, 0.0]])


@pytest.mark.parametrize(
    "blocks,match",
    [
        ([[np.eye(2), np.eye(2)], [np.eye(2)]], "same number"),
        ([[np.eye(2), np.eye(3)]], "rows"),
        ([[np.eye(2), None], [None, None]], "known shape"),
        ([[np.ones(3)]], "2-d"),
        ([["abc"]], "block must be"),
    ],
)
def test_bad_layouts_are_rejected(blocks, match):
    with pytest.raises(InvalidInputError, match=match):
        block_matrix(blocks)


def test_selection_rows_are_scaled_identity_rows():
    I = np.eye(4)
    np.testing.assert_array_equal(selection_rows([3, 1], 4).toarray(), I[[3, 1]])
    np.testing.assert_array_equal(
        selection_rows(np.arange(3), 3, [1.0, 2.0, 3.0]).toarray(), np.diag([1, 2, 3])
    )
    assert selection_rows([], 5).shape == (0, 5)
