"""cvxpy players: LQ data derived from cvxpy's canonical form against matrices written by hand (and by
hypothesis on random LQ games), best responses against closed forms and against the direct Leontief
solve of the buyers' game, the two-sided gap certificate, limits and bad input."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarkets.errors import InvalidInputError, NonConvexGameError
from datamarkets.formulations.games import (
    NotLinearQuadraticError,
    Player,
    UnsupportedGameError,
    certify_cvxpy_game,
    cvxpy_game,
    solve_cvxpy_game,
)
from datamarkets.formulations.games.cvxpy_kkt import cone_violation, conic_kkt
from datamarkets.formulations.games.gne_buyers import buyers_d, buyers_x, gne_buyers_game
from datamarkets.formulations.gne_solve import solve_gne
from datamarkets.models.gne_equilibrium import as_gne_inputs
from datamarkets.status import Status

from helpers import random_gne_market


# ------------------------------------------------------------------ games written by hand
def cournot(a=10.0, b=1.0, costs=(1.0, 2.0)):
    """Firm i maximises q_i (a - b sum q) - c_i q_i; cost = b q_i^2 + b q_i q_-i - (a - c_i) q_i."""
    q = [cp.Variable(nonneg=True, name=f"q{i}") for i in range(len(costs))]
    players = []
    for i in range(len(costs)):
        others = sum(q[j] for j in range(len(costs)) if j != i)
        players.append(
            Player([q[i]], cp.Maximize((a - costs[i]) * q[i] - b * cp.square(q[i]) - b * q[i] * others))
        )
    return cvxpy_game(players, names=[f"f{i}" for i in range(len(costs))]), q


def test_cournot_lq_args_match_hand_matrices():
    a, b, c = 10.0, 1.5, (1.0, 2.0)
    game, _ = cournot(a, b, c)
    args = game.to_lq_args()
    Q_hand = [np.array([[2 * b, b], [b, 0.0]]), np.array([[0.0, b], [b, 2 * b]])]
    c_hand = [np.array([-(a - c[0]), 0.0]), np.array([0.0, -(a - c[1])])]
    for i in range(2):
        np.testing.assert_allclose(args["Q"][i], Q_hand[i], atol=1e-12)
        np.testing.assert_allclose(args["c"][i], c_hand[i], atol=1e-12)
    np.testing.assert_array_equal(args["lb"], [0.0, 0.0])
    assert np.all(np.isinf(args["ub"])) and args["A"] is None and args["Aeq"] is None
    assert args["sizes"] == [1, 1] and args["names"] == ["f0", "f1"]


@pytest.mark.parametrize("method", ["best_response", "jacobi"])
def test_cournot_best_responses_match_closed_form(method):
    a, b, c = 10.0, 1.5, (1.0, 2.0)
    game, _ = cournot(a, b, c)
    res = solve_cvxpy_game(game, method)
    # q_i = (a - 2 c_i + c_j) / (3 b)
    want = [(a - 2 * c[0] + c[1]) / (3 * b), (a - 2 * c[1] + c[0]) / (3 * b)]
    assert res.status is Status.OPTIMAL and res.certified
    np.testing.assert_allclose(res.solution["x"], want, rtol=1e-7)
    assert res.kind == "game" and res.solution["route"].startswith("best_response")
    assert res.solution["x_players"] == {"f0": [res.solution["x"][0]], "f1": [res.solution["x"][1]]}


def capacity_game():
    """Three players, two resources each; shared capacity sum_i x_i <= cap, shared budget equality,
    own box bounds, an own row x_i1 + x_i2 <= s_i, and a sum_squares objective (auxiliaries)."""
    rng = np.random.default_rng(5)
    N, m = 3, 2
    x = [cp.Variable(m, name=f"x{i}") for i in range(N)]
    target = rng.uniform(1.0, 2.0, (N, m))
    w = rng.uniform(0.5, 1.0, N)
    C = rng.uniform(0.0, 0.3, (N, N))
    cap = np.array([3.0, 2.5])
    s = rng.uniform(1.5, 2.5, N)
    players = []
    for i in range(N):
        obj = w[i] * cp.sum_squares(x[i] - target[i]) + sum(
            C[i, j] * (x[i] @ x[j]) for j in range(N) if j != i
        )
        cons = [x[i] >= 0, x[i] <= 2.0, cp.sum(x[i]) <= s[i]]
        players.append(Player([x[i]], cp.Minimize(obj), cons))
    shared = [sum(x) <= cap, x[0][0] + x[1][0] == 1.0]
    return cvxpy_game(players, shared), (N, m, target, w, C, cap, s)


def test_capacity_game_lq_args_match_hand_matrices():
    game, (N, m, target, w, C, cap, s) = capacity_game()
    args = game.to_lq_args()
    n = N * m
    for i in range(N):
        Q = np.zeros((n, n))
        c = np.zeros(n)
        bi = slice(i * m, (i + 1) * m)
        Q[bi, bi] = 2 * w[i] * np.eye(m)  # w ||x_i - t_i||^2
        c[bi] = -2 * w[i] * target[i]
        for j in range(N):
            if j != i:
                bj = slice(j * m, (j + 1) * m)
                Q[bi, bj] = Q[bj, bi] = C[i, j] * np.eye(m)  # C_ij x_i . x_j
        np.testing.assert_allclose(args["Q"][i], Q, atol=1e-10)
        np.testing.assert_allclose(args["c"][i], c, atol=1e-10)
    np.testing.assert_allclose(args["lb"], np.zeros(n), atol=0)
    np.testing.assert_allclose(args["ub"], np.full(n, 2.0))
    A_hand = [np.repeat(np.eye(N), m, axis=1)[i] for i in range(N)]  # own rows sum x_i <= s_i
    A_hand += [np.tile(np.eye(m)[r], N) for r in range(m)]  # shared capacity
    b_hand = list(s) + list(cap)
    got = sorted(map(tuple, np.column_stack([args["A"], args["b"]]).round(12)))
    want = sorted(map(tuple, np.column_stack([A_hand, b_hand]).round(12)))
    assert got == want
    Aeq = np.zeros((1, n))
    Aeq[0, [0, m]] = 1.0
    np.testing.assert_allclose(args["Aeq"], Aeq)
    np.testing.assert_allclose(args["beq"], [1.0])


def test_capacity_game_best_responses_reach_a_certified_gne():
    game, (N, m, *_rest) = capacity_game()
    x0 = np.tile([0.5, 0.5], N)
    res = solve_cvxpy_game(game, "best_response", x0=x0)
    assert res.status is Status.OPTIMAL and res.certified, res.certificate.failures
    x = np.asarray(res.solution["x"]).reshape(N, m)
    assert np.all(x.sum(axis=0) <= np.array([3.0, 2.5]) + 1e-7)
    assert x[0, 0] + x[1, 0] == pytest.approx(1.0, abs=1e-7)
    # a generalized NE, not the variational one: asking for it on best responses is refused
    with pytest.raises(UnsupportedGameError, match="variational"):
        solve_cvxpy_game(game, "best_response", variational=True)


# ------------------------------------------------------------------ hypothesis: random LQ games
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), N=st.integers(2, 3), shared=st.booleans())
def test_random_lq_games_round_trip(seed, N, shared):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, N)
    n = int(sizes.sum())
    off = np.concatenate([[0], np.cumsum(sizes)])
    x = [cp.Variable(int(k), name=f"x{i}") for i, k in enumerate(sizes)]
    Qs, cs, players = [], [], []
    for i in range(N):
        bi = slice(off[i], off[i + 1])
        M = rng.normal(size=(sizes[i], sizes[i]))
        Q = np.zeros((n, n))
        Q[bi, bi] = M @ M.T + 0.1 * np.eye(sizes[i])
        c = rng.normal(size=n)
        obj = 0.5 * cp.quad_form(x[i], Q[bi, bi]) + c[bi] @ x[i]
        for j in range(N):
            if j != i:
                bj = slice(off[j], off[j + 1])
                B = rng.normal(size=(sizes[i], sizes[j]))
                Q[bi, bj], Q[bj, bi] = B, B.T
                obj = obj + x[i] @ (B @ x[j]) + c[bj] @ x[j]
        lo = -rng.uniform(0.5, 2.0, sizes[i])
        players.append(Player([x[i]], cp.Minimize(obj), [x[i] >= lo]))
        Qs.append(Q)
        cs.append(c)
    A = rng.normal(size=(2, n))
    b = rng.uniform(1.0, 2.0, 2)
    xs = cp.hstack(x)
    game = cvxpy_game(players, [A @ xs <= b] if shared else None)
    args = game.to_lq_args()
    for i in range(N):
        np.testing.assert_allclose(args["Q"][i], Qs[i], atol=1e-9)
        np.testing.assert_allclose(args["c"][i], cs[i], atol=1e-9)
    assert np.all(np.isfinite(args["lb"])) and np.all(np.isinf(args["ub"]))
    if shared:
        np.testing.assert_allclose(args["A"], A, atol=1e-12)
        np.testing.assert_allclose(args["b"], b, atol=1e-12)
    else:
        assert args["A"] is None


def test_to_lq_defers_to_the_lq_layer_when_present():
    lq = pytest.importorskip("datamarkets.formulations.games.lq")
    game, _ = cournot()
    assert isinstance(game.to_lq(), lq.LQGame)
    res = solve_cvxpy_game(game, "auto")
    np.testing.assert_allclose(res.solution["x"], [10 / 3, 7 / 3], rtol=1e-6)
    assert res.meta["cvxpy_route"] == "lq" and res.solution["x_players"]["f1"] == [res.solution["x"][1]]
    # the LQ layer's variational equilibrium of the capacity game is a GNE of the cvxpy players
    cap, _ = capacity_game()
    r2 = solve_cvxpy_game(cap, "auto")
    assert r2.certified, r2.certificate.failures
    cert = certify_cvxpy_game(cap, r2.solution["x"])
    assert cert.passed, cert.failures


# ------------------------------------------------------------------ conic KKT
def test_conic_kkt_of_an_exp_and_soc_player():
    """min t - 2 log t + ||y - (1, 1)||  s.t. y_1 >= other: the re-solve satisfies all four KKT
    conditions and the Wolfe dual value matches the primal."""
    t, y = cp.Variable(name="t"), cp.Variable(2, name="y")
    z = cp.Variable(name="z")
    p1 = Player([t, y], cp.Minimize(t - 2 * cp.log(t) + cp.norm(y - np.ones(2)) + z * y[0]), [y[0] >= z])
    p2 = Player([z], cp.Minimize(cp.square(z - 0.5)), [z <= 3])
    game = cvxpy_game([p1, p2])
    st_, xi, raw = game.solve_player(0, np.array([1.0, 0.0, 0.0, 0.5]))
    assert st_ is Status.OPTIMAL
    assert xi[0] == pytest.approx(2.0, rel=1e-9)  # argmin t - 2 log t
    k = conic_kkt(raw)
    assert raw["dims"].exp == 1 and raw["dims"].soc
    for name in ("stationarity", "primal_cone", "dual_cone", "complementarity"):
        assert k[name] < 1e-9, name
    assert k["primal"] - k["dual"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(NotLinearQuadraticError):
        game.to_lq_args()


def test_cone_violation_detects_points_outside():
    class Dims:
        zero, nonneg, soc, psd, exp, p3d = 1, 1, [3], [2], 1, [0.3]

    inside = np.array([0.0, 1.0, 2.0, 1.0, 1.0, 1.0, 0.0, 1.0, -1.0, 1.0, 3.0, 1.0, 1.0, 0.5])
    assert np.max(cone_violation(inside, Dims, dual=False)) < 1e-12
    outside = inside.copy()
    outside[10] = 0.1  # exp: 1 * e^{-1/1} <= 0.1 fails
    assert cone_violation(outside, Dims, dual=False)[4] > 0.2


# ------------------------------------------------------------------ the buyers' game


def two_firm():
    from datamarkets.graphs.estimation_market import two_firm_example
    from datamarkets.models.estimators import market_coefficients

    return as_gne_inputs(market_coefficients(two_firm_example(0.3)))


@pytest.mark.parametrize(
    "make",
    [two_firm, lambda: random_gne_market(1), lambda: random_gne_market(4, K=3, N=6, uses_p=0.7)],
    ids=["two-firm", "m1", "m4"],
)
@pytest.mark.parametrize("method", ["best_response", "jacobi"])
def test_buyers_best_responses_match_leontief(make, method):
    inp = make()
    ref = solve_gne(inp, welfare=False)
    assert ref.status is Status.OPTIMAL
    d_ref = ref.solution["d"]
    game = gne_buyers_game(inp)
    res = solve_cvxpy_game(game, method, x0=buyers_x(game, inp.gamma_tilde))
    assert res.status is Status.OPTIMAL and res.certified, res.certificate.failures
    d = buyers_d(game, res.solution["x"])
    assert np.max(np.abs(d - d_ref)) / np.max(np.abs(d_ref)) < 1e-6
    assert np.all(d[~inp.uses] == 0.0)


@pytest.mark.parametrize("seed", [0, 3])
def test_buyers_single_best_responses_match_gne_best_response(seed):
    """Each player's best response of the cvxpy game = solve_best_response's (Lemma-1 program) at a
    random, non-equilibrium profile of the others (relative 1e-6)."""
    from datamarkets.formulations.gne_best_response import solve_best_response

    inp = random_gne_market(4, K=3, N=6, uses_p=0.7)
    rng = np.random.default_rng(seed)
    d = np.where(inp.uses, rng.uniform(0.5, 3.0, inp.uses.shape), 0.0)
    game = gne_buyers_game(inp)
    x = buyers_x(game, d)
    for k in range(inp.uses.shape[0]):
        status, x_k, _ = game.solve_player(k, x)
        assert status is Status.OPTIMAL
        blocks = game.split(x)
        blocks[k] = x_k
        d_k = buyers_d(game, np.concatenate(blocks))[k]
        ref = solve_best_response(inp, k, d)
        assert ref.status is Status.OPTIMAL
        assert np.max(np.abs(d_k - ref.d)) <= 1e-6 * np.max(np.abs(ref.d)), k
        assert np.all(d_k[~inp.uses[k]] == 0.0)


def test_buyers_certificate_passes_at_leontief_and_fails_when_perturbed():
    inp = random_gne_market(4, K=3, N=6, uses_p=0.7)
    d_ref = solve_gne(inp, welfare=False).solution["d"]
    game = gne_buyers_game(inp)
    cert = certify_cvxpy_game(game, buyers_x(game, d_ref))
    assert cert.passed, cert.failures
    lo, hi = cert.details["br_gap_lower"], cert.details["br_gap_upper"]
    assert all(lo_k <= hi_k + 1e-12 for lo_k, hi_k in zip(lo, hi, strict=True))
    d_bad = d_ref.copy()
    d_bad[1, inp.uses[1]] *= 1.01
    bad = certify_cvxpy_game(game, buyers_x(game, d_bad))
    assert not bad.passed and set(bad.failures) == {"br_gap_max"}
    assert bad.residuals["primal_feasibility_max"] < 1e-12  # buyers_x keeps tau consistent
    assert np.argmax(bad.details["br_gap_lower"]) != 1 or bad.details["br_gap_lower"][1] > 0


# ------------------------------------------------------------------ limits and honesty
def test_jacobi_cycles_in_three_firm_cournot_and_says_so():
    # simultaneous replies x <- (a - c - b sum_others)/(2b): iteration matrix -(J - I)/2 has eigenvalue -1
    game, _ = cournot(costs=(1.0, 1.0, 1.0))
    res = solve_cvxpy_game(game, "jacobi", x0=[1.0, 2.0, 3.0], max_iter=20)
    assert res.status is Status.ITERATION_LIMIT and not res.certified
    assert res.certificate.residuals["br_gap_max"] > 1e-3
    gs = solve_cvxpy_game(game, "best_response", max_iter=300)
    assert gs.status is Status.OPTIMAL
    np.testing.assert_allclose(gs.solution["x"], [9 / 4] * 3, rtol=1e-6)  # (a - c)/(b (N + 1))


def test_time_limit_is_reported():
    game, _ = cournot()
    res = solve_cvxpy_game(game, "best_response", time_limit=1e-9)
    assert res.status is Status.TIME_LIMIT


def test_damping_converges_to_the_same_point():
    game, _ = cournot()
    res = solve_cvxpy_game(game, "jacobi", damping=0.5)
    assert res.status is Status.OPTIMAL
    np.testing.assert_allclose(res.solution["x"], [10 / 3, 7 / 3], rtol=1e-7)


# ------------------------------------------------------------------ bad input
def test_bad_input_is_typed():
    x, y = cp.Variable(name="x"), cp.Variable(name="y")
    with pytest.raises(NonConvexGameError, match="not DCP"):
        cvxpy_game([Player([x], cp.Minimize(-cp.square(x))), Player([y], cp.Minimize(y**2))])
    with pytest.raises(NonConvexGameError, match="not DPP"):
        cvxpy_game([Player([x], cp.Minimize(x**2 + x * cp.square(y))), Player([y], cp.Minimize(y**2))])
    with pytest.raises(InvalidInputError, match="owned by both"):
        cvxpy_game([Player([x], cp.Minimize(x**2)), Player([x], cp.Minimize(x**2))])
    z = cp.Variable(name="z")
    with pytest.raises(InvalidInputError, match="no player owns"):
        cvxpy_game([Player([x], cp.Minimize(x**2 + z))])
    with pytest.raises(InvalidInputError, match="non-finite"):
        cvxpy_game([Player([x], cp.Minimize(x**2 + np.nan * x))])
    with pytest.raises(NonConvexGameError, match="integer"):
        cvxpy_game([Player([cp.Variable(integer=True)], cp.Minimize(0))])
    with pytest.raises(InvalidInputError, match="at least one"):
        cvxpy_game([])
    game = cvxpy_game([Player([x], cp.Minimize(x**2), [x >= y]), Player([y], cp.Minimize(y**2))])
    with pytest.raises(InvalidInputError, match="entries"):
        certify_cvxpy_game(game, [1.0])
    with pytest.raises(InvalidInputError, match="non-finite"):
        certify_cvxpy_game(game, [1.0, np.inf])
    with pytest.raises(NotLinearQuadraticError, match="shared"):
        game.to_lq_args()  # x >= y is x's own constraint coupling y
    with pytest.raises(InvalidInputError, match="method"):
        solve_cvxpy_game(game, "newton")


def test_certificate_flags_infeasible_profile():
    game, _ = cournot()
    cert = certify_cvxpy_game(game, [-1.0, 2.0])
    assert "primal_feasibility_max" in cert.failures


@pytest.mark.parametrize(
    "name",
    [
        "datamarkets.formulations.games.cvxpy_players",
        "datamarkets.formulations.games.cvxpy_routes",
        "datamarkets.formulations.games.cvxpy_kkt",
        "datamarkets.formulations.games.gne_buyers",
    ],
)
def test_module_examples_run(name):
    # tests/test_docstrings.py walks one level of subpackages only: run this subpackage's examples here
    import doctest
    import importlib

    mod = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder(exclude_empty=True).find(mod, name, globs=vars(mod).copy()):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and (result.attempted > 0 or name.endswith("kkt"))
