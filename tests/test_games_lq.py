"""LQ games: data model, validation at the door, JSON, KKT/certificate against closed forms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from datamarkets.errors import InvalidInputError, NonConvexGameError
from datamarkets.formulations.games import (
    LQGame,
    best_response_gaps,
    certify_game,
    kkt_residuals,
    lq_game,
    random_lq_game,
    recover_multipliers,
    solve_game,
)
from datamarkets.formulations.games.vi import gap_qp, joint_constraints, solve_vi

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data" / "game.json"


def duopoly(**kw):
    """Cournot duopoly, inverse demand 10 − x₁ − x₂, unit costs 1 and 2: player i minimises
    x_i² + x_i x_j − (10 − c_i) x_i; Nash equilibrium x = ((a − 2c₁ + c₂)/3, (a − 2c₂ + c₁)/3)."""
    return lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0, **kw)


def test_pseudo_gradient_and_closed_form_nash():
    g = duopoly()
    assert g.M.toarray().tolist() == [[2, 1], [1, 2]] and g.q.tolist() == [-9, -8]
    assert g.monotonicity_min_eig == pytest.approx(1.0, abs=1e-12)
    r = solve_game(g)
    np.testing.assert_allclose(r.solution["x"], [10 / 3, 7 / 3], atol=1e-8)
    assert r.certified and r.solution["route"] == "vi"


def test_example_game_closed_form_variational_equilibrium():
    # 3 Cournot sellers, a = 10, costs 1, 2, 3, shared capacity Σx ≤ 4: stationarity
    # x_i + Σx − (a − c_i) + λ = 0 ⇒ x_i = 6 − c_i − λ, Σ = 4 ⇒ λ = 8/3, x = (7/3, 4/3, 1/3)
    g = LQGame.from_dict(json.loads(EXAMPLE.read_text()))
    assert (g.N, g.n, g.m) == (3, 3, 1)
    r = solve_game(g)
    np.testing.assert_allclose(r.solution["x"], [7 / 3, 4 / 3, 1 / 3], atol=1e-7)
    np.testing.assert_allclose(r.solution["lambda"], [8 / 3], atol=1e-7)
    assert r.certified


def test_json_round_trip_dense_and_sparse():
    g = random_lq_game(30, seed=3)
    d = g.to_dict()
    g2 = LQGame.from_dict(json.loads(json.dumps(d)))
    assert g2.to_dict() == d
    assert (g2.M != g.M).nnz == 0
    # the sparse COO form is accepted for Q and A
    from datamarkets.formulations.games.lq import matrix_to_json

    d2 = dict(d, Q=[matrix_to_json(Q, dense_max=0) for Q in g.Q], A=matrix_to_json(g.A, dense_max=0))
    assert isinstance(d2["A"], dict)
    assert LQGame.from_dict(d2).to_dict() == d


def test_only_symmetric_part_of_Q_matters():
    Q1 = np.array([[2.0, 3.0], [-1.0, 0.0]])  # symmetric part [[2, 1], [1, 0]]
    g = lq_game([1, 1], [Q1, sp.csr_array([[0.0, 1.0], [1.0, 2.0]])], [[-9, 0], [0, -8]], lb=0)
    assert g.M.toarray().tolist() == [[2, 1], [1, 2]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sizes": [1, 1], "Q": [np.eye(2)], "c": np.zeros((2, 2))}, "list of 2 matrices"),
        ({"sizes": [1, 1], "Q": [np.eye(3), np.eye(3)], "c": np.zeros((2, 2))}, "shape"),
        ({"sizes": [1, 1], "Q": [np.eye(2), np.eye(2)], "c": np.zeros((2, 3))}, "c must have shape"),
        ({"sizes": [1, 0], "Q": [np.eye(1), np.eye(1)], "c": np.zeros((2, 1))}, "sizes"),
        ({"sizes": [1, 1], "Q": [[[np.nan, 0], [0, 1]], np.eye(2)], "c": np.zeros((2, 2))}, "NaN"),
        ({"sizes": [1, 1], "Q": [np.eye(2), np.eye(2)], "c": [[np.inf, 0], [0, 0]]}, "NaN or infinite"),
        (
            {
                "sizes": [1, 1],
                "Q": [np.eye(2), np.eye(2)],
                "c": np.zeros((2, 2)),
                "A": [[1, 1]],
                "b": [np.inf],
            },
            "infinite",
        ),
        (
            {"sizes": [1, 1], "Q": [np.eye(2), np.eye(2)], "c": np.zeros((2, 2)), "A": [[1, 1, 1]], "b": [1]},
            "shape",
        ),
        (
            {"sizes": [1, 1], "Q": [np.eye(2), np.eye(2)], "c": np.zeros((2, 2)), "A": [[1, 1]]},
            "both A and b",
        ),
        (
            {"sizes": [1, 1], "Q": [np.eye(2), np.eye(2)], "c": np.zeros((2, 2)), "lb": [1, 0], "ub": [0, 1]},
            "lb > ub",
        ),
        (
            {"sizes": [1, 1], "Q": [np.eye(2), np.eye(2)], "c": np.zeros((2, 2)), "lb": [np.inf, 0]},
            "infinite",
        ),
    ],
)
def test_bad_input_is_a_typed_error(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        lq_game(**kwargs)


def test_non_psd_own_block_is_rejected():
    with pytest.raises(NonConvexGameError, match=r"player 'p1'.*-1"):
        lq_game([1, 1], [np.eye(2), np.diag([1.0, -1.0])], np.zeros((2, 2)))
    # a non-PSD *other* block is fine: only the own block must be convex
    g = lq_game([1, 1], [np.diag([1.0, -1.0]), np.diag([-1.0, 1.0])], np.zeros((2, 2)))
    assert g.N == 2
    # NonConvexGameError is an InvalidInputError (exit 2 on the CLI)
    assert issubclass(NonConvexGameError, InvalidInputError)


def test_from_dict_rejects_missing_and_unknown_fields():
    with pytest.raises(InvalidInputError, match="missing"):
        LQGame.from_dict({"sizes": [1]})
    with pytest.raises(InvalidInputError, match="unknown"):
        LQGame.from_dict({"sizes": [1], "Q": [[[1]]], "c": [[0]], "R": 1})


def test_br_gap_matches_closed_form_on_a_perturbed_equilibrium():
    # player 1: φ(y) = y² + (x₂ − 9)y, BR (9 − x₂)/2, gap (x₁ − BR)²; player 2 likewise
    g = duopoly()
    for delta in (1e-3, 0.1, 0.7):
        x = np.array([10 / 3 + delta, 7 / 3])
        gaps, _, _ = best_response_gaps(g, x)
        np.testing.assert_allclose(gaps, [delta**2, (delta / 2) ** 2], rtol=1e-8, atol=1e-13)
        assert gaps.min() > 0
    cert = certify_game(g, [10 / 3 + 0.01, 7 / 3])
    assert not cert.passed and "br_gap_max" in cert.failures and "stationarity_max" in cert.failures


def test_certificate_on_random_game_passes_then_fails_when_perturbed():
    g = random_lq_game(40, seed=5)
    r = solve_game(g)
    assert r.certified
    x = np.asarray(r.solution["x"])
    bad = x.copy()
    bad[3] += 1e-2 * (1 + abs(bad[3])) * (1 if bad[3] < g.ub[3] - 0.1 else -1)
    cert = certify_game(g, bad)
    assert not cert.passed
    # the saved multipliers are judged as given: corrupting one breaks stationarity
    mult = {k: r.solution[k] for k in ("lambda", "mu", "nu_lower", "nu_upper")}
    mult["nu_lower"] = list(mult["nu_lower"])
    mult["nu_lower"][0] += 1.0
    assert "stationarity_max" in certify_game(g, x, mult).failures


def test_recovered_multipliers_match_the_solver_duals():
    g = random_lq_game(40, seed=7)
    out = solve_vi(g)
    rec = recover_multipliers(g, out.x)
    res = kkt_residuals(g, out.x, rec)
    assert res["stationarity_max"] < 1e-8
    np.testing.assert_allclose(rec.lam, out.multipliers.lam, atol=1e-6)


def test_gap_qp_objective_is_the_complementarity_gap():
    # on the feasible set of (11): xᵀMx + qᵀx + hᵀλ + eᵀμ = λᵀ(h − Gx) ≥ 0, and its optimum is 0
    rng = np.random.default_rng(0)
    g = random_lq_game(30, seed=2)
    G, h, fl, fu = joint_constraints(g)
    P, c, Aeq, beq, Ale, ble = gap_qp(g)
    x0 = np.asarray(solve_vi(g).x)
    for _ in range(5):
        x = 0.5 * x0 * rng.uniform(0, 1, g.n)  # inside X (0 ≤ x ≤ x0 keeps Ax ≤ b since A ≥ 0)
        lam_sh = rng.uniform(0, 2, g.m)
        r = g.M @ x + g.q + g.A.T @ lam_sh  # −ν⁻ + ν⁺ = −r
        nl, nu = np.maximum(r, 0.0), np.maximum(-r, 0.0)
        lam = np.concatenate([lam_sh, nl[fl], nu[fu]])
        v = np.concatenate([x, lam])
        assert np.abs(Aeq @ v - beq).max() < 1e-10 and np.all(Ale @ v <= ble + 1e-12)
        obj = 0.5 * v @ (P @ v) + c @ v
        assert obj == pytest.approx(lam @ (h - G @ x), rel=1e-10, abs=1e-10)
        assert obj > 0
    assert abs(solve_vi(g).objective) < 1e-6


@pytest.mark.parametrize(
    "module",
    [
        "lq",
        "spectral",
        "kkt",
        "best_response",
        "vi",
        "milp",
        "milp_bounds",
        "certificate",
        "generate",
        "solve",
        "__init__",
    ],
)
def test_module_examples_run(module):
    # tests/test_docstrings.py walks one level of each subpackage; the games modules are one deeper
    import doctest
    import importlib

    name = "datamarkets.formulations.games" + ("" if module == "__init__" else f".{module}")
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0


def _random_full_game(rng: np.random.Generator, sizes: list[int]) -> list[np.ndarray]:
    """Full n×n (non-symmetric) Hessians whose own blocks are PSD after symmetrising."""
    n = sum(sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    Qs = []
    for i, k in enumerate(sizes):
        Qi = rng.normal(size=(n, n))
        R = rng.normal(size=(k, k))
        Qi[starts[i] : starts[i + 1], starts[i] : starts[i + 1]] = R @ R.T
        Qs.append(Qi)
    return Qs


@pytest.mark.parametrize("seed", range(5))
def test_compact_rows_give_the_same_game_as_full_matrices(seed):
    rng = np.random.default_rng(seed)
    sizes = [int(s) for s in rng.integers(1, 4, size=int(rng.integers(2, 5)))]
    n, N = sum(sizes), len(sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    Qs = _random_full_game(rng, sizes)
    c = rng.normal(size=(N, n))
    full = lq_game(sizes, Qs, c, lb=-1, ub=1)
    sym = [(Q + Q.T) / 2 for Q in Qs]
    rows = [
        sp.csr_array(S[starts[i] : starts[i + 1], :]) if i % 2 else S[starts[i] : starts[i + 1], :]
        for i, S in enumerate(sym)
    ]
    compact = lq_game(sizes, rows, c, lb=-1, ub=1)
    assert compact.compact and not full.compact
    # the pseudo-gradient, built from the loop definition (2): block row i = sym(Q_i)[i, :]
    M_loop = np.vstack([sym[i][starts[i] : starts[i + 1], :] for i in range(N)])
    np.testing.assert_allclose(full.M.toarray(), M_loop, atol=1e-12)
    np.testing.assert_allclose(compact.M.toarray(), M_loop, atol=1e-12)
    # costs: the compact form drops ½ x_{-i}ᵀ sym(Q_i)[-i,-i] x_{-i}, a term player i does not control
    x = rng.normal(size=n)
    for i in range(N):
        mask = np.ones(n, bool)
        mask[starts[i] : starts[i + 1]] = False
        rest = 0.5 * x[mask] @ sym[i][np.ix_(mask, mask)] @ x[mask]
        assert full.cost(i, x) == pytest.approx(0.5 * x @ sym[i] @ x + c[i] @ x, abs=1e-10)
        assert compact.cost(i, x) == pytest.approx(full.cost(i, x) - rest, abs=1e-10)
        np.testing.assert_allclose(full.Q[i].toarray(), sym[i], atol=1e-12)
    # JSON round trips keep the form (and so the costs)
    for g in (full, compact):
        back = LQGame.from_dict(json.loads(json.dumps(g.to_dict())))
        assert back.compact == g.compact
        np.testing.assert_allclose(back.M.toarray(), g.M.toarray(), atol=1e-12)
        assert all(back.cost(i, x) == pytest.approx(g.cost(i, x), abs=1e-10) for i in range(N))


def test_compact_rows_psd_test_is_own_block_only_and_names_the_player():
    # player 1's rows carry a large indefinite coupling, its own block is PSD: accepted
    g = lq_game([1, 2], [[[1.0, 5.0, -7.0]], [[5.0, 2.0, 0.0], [-7.0, 0.0, 0.0]]], np.zeros((2, 3)))
    assert g.M.toarray()[1:, 1:].tolist() == [[2.0, 0.0], [0.0, 0.0]]
    # own block [[2, 3], [3, 1]] has eigenvalue 1.5 − √9.25 < 0
    with pytest.raises(NonConvexGameError, match=r"'b'.*Q\[1\]"):
        lq_game([1, 2], [[[1, 0, 0]], [[0, 2, 3], [0, 3, 1]]], np.zeros((2, 3)), names=["a", "b"])
    # own blocks of many sizes at once (batched by size): the one that is not PSD is named
    rng = np.random.default_rng(3)
    sizes = [1, 2, 3, 2, 1, 3]
    n = sum(sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    rows = []
    for i, k in enumerate(sizes):
        B = rng.normal(size=(k, k))
        R = rng.normal(size=(k, n))
        R[:, starts[i] : starts[i + 1]] = np.array([[-0.2]]) if i == 4 else B @ B.T
        rows.append(R)
    with pytest.raises(NonConvexGameError, match=r"'p4'.*-0.2"):
        lq_game(sizes, rows, np.zeros((len(sizes), n)))
    rows[4][0, starts[4]] = 0.0  # now every own block is PSD
    assert lq_game(sizes, rows, np.zeros((len(sizes), n))).n == n


@pytest.mark.parametrize(
    ("Q", "match"),
    [
        ([[[1.0, 0.0]], [[0.0, 1.0, 0.0]]], "Q\\[1\\] must have shape"),
        ([[[1.0, np.nan]], [[0.0, 1.0]]], "NaN"),
        ([sp.csr_array(np.array([[1.0, np.inf]])), [[0.0, 1.0]]], "NaN or infinite"),
    ],
)
def test_compact_rows_bad_input(Q, match):
    with pytest.raises(InvalidInputError, match=match):
        lq_game([1, 1], Q, np.zeros((2, 2)))
