"""Verify certifies everything a result says, or says it did not (issue 11, auctions/GNE/generic).

Oracles: a brute-force best reply over a fine bid grid, evaluated by the PSP allocation and
exclusion-compensation rules themselves, against the exact best-reply gain; the issue's
perturbation matrix (every numeric field of a saved solution moved by 1e-3 relative, prices also
×2, must fail verify unless listed under ``not_checked`` with a reason); edited kinds; the
no-solution case through the CLI.
"""

from __future__ import annotations

import copy
import itertools
import json
import math

import numpy as np
import pytest

from datamarkets.errors import InvalidInputError
from datamarkets.graphs.market import data_share_market, market_arrays, single_resource
from datamarkets.models.psp import allocate
from datamarkets.models.psp_certificate import certify_psp, exact_best_replies, psp_outcome
from datamarkets.models.valuations import QuadraticValuation
from datamarkets.registry import get_formulation
from datamarkets.result import NO_SOLUTION, NOT_CHECKED, Certificate, Result
from datamarkets.status import Status


# ------------------------------------------------------------------------------- no solution
@pytest.mark.parametrize("status", [s for s in Status if not s.has_solution])
def test_no_solution_never_carries_a_passed_certificate(status):
    r = Result("demo", status, "direct", {"x": None}, Certificate())
    d = r.to_dict()
    assert d["certificate"]["passed"] is False and NO_SOLUTION in d["certificate"]["failures"]
    assert not r.certified
    back = Result.from_dict(d)
    assert not back.certificate.passed


def test_solution_results_are_unaffected():
    r = Result("demo", Status.OPTIMAL, "direct", {"x": 1.0}, Certificate())
    assert r.to_dict()["certificate"]["passed"] is True and NO_SOLUTION not in r.certificate.residuals


@pytest.fixture
def overflow_market(tmp_path):
    """The issue's case: one seller, a buyer with a = 1e300, b = 1e-300 (Clarabel: NumericalError)."""
    data = {
        "directed": False,
        "multigraph": False,
        "graph": {},
        "nodes": [
            {"id": "s", "role": "seller", "supply": 1.0},
            {"id": "b", "role": "buyer", "valuation": {"kind": "quadratic", "a": 1e300, "b": 1e-300}},
        ],
        "links": [{"source": "b", "target": "s"}],
    }
    path = tmp_path / "one.json"
    path.write_text(json.dumps(data))
    return path


def test_status_error_through_the_cli_is_one_line_and_never_certified(cli, overflow_market, tmp_path):
    out = tmp_path / "r.json"
    code, _, err = cli("auction", "solve", "--graph", overflow_market, "--out", out, "--json")
    saved = json.loads(out.read_text())
    assert saved["status"] == "error"
    assert code == 3
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "status error" in lines[0] and "no solution" in lines[0], err
    assert saved["certificate"]["passed"] is False and NO_SOLUTION in saved["certificate"]["failures"]
    code, stdout, _ = cli("verify", out)
    assert code == 4 and "no_solution" in stdout
    # an edited file claiming a pass for the error status is refused all the same
    saved["certificate"] = {"passed": True, "residuals": {}, "tolerances": {}, "failures": {}, "details": {}}
    out.write_text(json.dumps(saved))
    code, stdout, _ = cli("verify", out, "--json")
    fails = json.loads(stdout)["certificate"]["failures"]
    assert code == 4 and {"no_solution", "passed_claimed_without_solution"} <= set(fails)


# ------------------------------------------------------------------------------- edited kinds
@pytest.fixture(scope="module")
def psp_saved():
    f = get_formulation("auction-psp")
    r = f.solve(f.instance({"size": 6, "seed": 1, "epsilon": 0.01}))
    assert r.certified, r.certificate.failures
    return json.loads(r.to_json())


@pytest.mark.parametrize("kind", ["auction-optimum", "gne", "bogus"])
def test_edited_kind_is_an_error(cli, psp_saved, kind, tmp_path):
    bad = copy.deepcopy(psp_saved)
    bad["kind"] = kind
    with pytest.raises(InvalidInputError, match="cannot be verified"):
        get_formulation("auction-psp").verify(bad)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(bad))
    code, _, err = cli("verify", path)
    assert code == 2 and err.count("\n") == 1, err
    # even with the recorded formulation edited to match, the PSP instance is not a market graph
    bad["meta"]["formulation"] = {"auction-optimum": "auction-welfare", "gne": "gne"}.get(kind, "bogus")
    path.write_text(json.dumps(bad))
    code, _, err = cli("verify", path)
    assert code == 2, err


def test_unedited_psp_verifies(psp_saved):
    assert get_formulation("auction-psp").verify(psp_saved).certificate.passed


# ------------------------------------------------------------------------------- GNE: one certificate
def test_gne_ill_conditioned_solve_and_verify_agree(cli, tmp_path):
    out = tmp_path / "g.json"
    code, stdout, _ = cli("gne", "example", "--x1", "0.99999", "--json", "--out", out)
    assert code == 4
    solved = json.loads(stdout)["certificate"]
    assert "forward_error_bound_rel" in solved["failures"]
    code, stdout, _ = cli("verify", out, "--json")
    ver = json.loads(stdout)["certificate"]
    assert code == 4 and "forward_error_bound_rel" in ver["failures"]
    assert set(ver["residuals"]) == set(solved["residuals"])
    assert ver["tolerances"] == solved["tolerances"]


def test_gne_same_residuals_and_tolerances_from_every_entry_point(cli, tmp_path):
    from datamarkets.formulations.gne_certificate import certify_gne
    from datamarkets.formulations.gne_solve import solve_gne
    from datamarkets.graphs.estimation_market import two_firm_example

    out = tmp_path / "g.json"
    code, stdout, _ = cli("gne", "example", "--x1", "0.5", "--json", "--out", out)
    assert code == 0
    by_cli = json.loads(stdout)["certificate"]
    f = get_formulation("gne")
    by_plugin = f.solve(f.instance({"market": "two-firm", "x1": 0.5})).certificate
    by_verify = f.verify(json.loads(out.read_text())).certificate
    G = two_firm_example(0.5)
    by_function = certify_gne(G, solve_gne(G).solution)

    def core(names):  # claimed_<field>_rel exist for the fields a result reports (the CLI has no objective)
        return {k for k in names if not k.startswith("claimed_")}

    for cert in (by_plugin, by_verify, by_function):
        assert cert.passed, cert.failures
        assert core(cert.residuals) == core(by_cli["residuals"])
        assert all(
            cert.tolerances[k] == by_cli["tolerances"][k]
            for k in set(cert.tolerances) & set(by_cli["tolerances"])
        )


# ------------------------------------------------------------------------------- perturbation matrix
def _numeric_leaves(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return []
    if isinstance(v, int | float):
        return [v]
    if isinstance(v, dict):
        return [x for val in v.values() for x in _numeric_leaves(val)]
    if isinstance(v, list):
        return [x for val in v for x in _numeric_leaves(val)]
    return []


def _scale(v, factor):
    """Every number of a field × factor (ids and names untouched)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v * factor if factor != 1 else v
    if isinstance(v, float):
        return v * factor
    if isinstance(v, dict):
        return {k: (x if k in ("buyer", "seller") else _scale(x, factor)) for k, x in v.items()}
    if isinstance(v, list):
        return [_scale(x, factor) for x in v]
    return v


_RESERVED = {"kind", "status", "method", "certificate", "timings", "meta", "instance"}


def _saved(name):
    f = get_formulation(name)
    params = {
        "auction-welfare": ({"size": 8, "seed": 3}, "highs"),
        "auction-kkt": ({"size": 6, "seed": 3}, "highs"),
        "auction-psp": ({"size": 6, "seed": 1, "epsilon": 0.01}, "direct"),
        "gne": ({"market": "two-firm", "x1": 0.5}, "direct"),
    }[name]
    r = f.solve(f.instance(params[0]), params[1])
    assert r.certified, r.certificate.failures
    return f, json.loads(r.to_json())


_CACHE: dict[str, tuple] = {}


def _cached(name):
    if name not in _CACHE:
        _CACHE[name] = _saved(name)
    return _CACHE[name]


_FIELDS = {
    "auction-welfare": ["welfare", "allocation", "prices", "buyers", "objective"],
    "auction-kkt": ["welfare", "allocation", "prices", "buyers", "objective"],
    "auction-psp": [
        "welfare",
        "allocation",
        "prices",
        "bids",
        "payments",
        "buyer_quantity",
        "utilities",
        "epsilons",
        "epsilon",
        "objective",
    ],
    "gne": [
        "gamma",
        "xi",
        "alpha",
        "eta",
        "spectral_radius",
        "spectral_radius_bounds",
        "spectral_margin",
        "d",
        "d_total",
        "variance",
        "effort_equilibrium",
        "c_lower",
        "c_total",
        "c_point",
        "payment_range",
        "effort_optimal",
        "social_loss_equilibrium",
        "social_loss_optimal",
        "social_loss_gap",
        "price_of_anarchy",
        "objective",
    ],
}


@pytest.mark.parametrize("name", list(_FIELDS))
def test_every_numeric_field_is_checked_or_listed(name):
    """The fields listed above are every numeric field of the saved solution, except those the
    certificate lists as not checked — each with a reason, and few."""
    _, saved = _cached(name)
    listed = saved["certificate"]["details"].get(NOT_CHECKED, {})
    assert len(listed) <= 4 and all(isinstance(v, str) and len(v) > 20 for v in listed.values())
    numeric = {k for k, v in saved.items() if k not in _RESERVED and _numeric_leaves(v)}
    assert numeric - set(listed) == set(_FIELDS[name])
    assert not set(listed) & set(_FIELDS[name])


@pytest.mark.parametrize(
    ("name", "field", "factor"),
    [(n, fld, 1 + 1e-3) for n, fields in _FIELDS.items() for fld in fields]
    + [(n, "prices", 2.0) for n in ("auction-welfare", "auction-kkt", "auction-psp")],
)
def test_perturbed_field_fails_verify(name, field, factor):
    f, saved = _cached(name)
    assert f.verify(saved).certificate.passed
    leaves = _numeric_leaves(saved[field])
    if not any(x != 0 for x in leaves):
        pytest.skip(f"{name}: every number of {field!r} is 0 on this instance; scaling leaves it unchanged")
    bad = copy.deepcopy(saved)
    bad[field] = _scale(bad[field], factor)
    try:
        ver = f.verify(bad)
    except InvalidInputError:  # a structurally impossible claim (e.g. eta ≠ the instance's) is refused
        return
    assert not ver.certificate.passed, f"{name}: {field} × {factor} accepted"


# ------------------------------------------------------------------------------- exact best reply
def _brute_force_best(m, price, qty, i, n_q=161, near=True):
    """max u_i over a grid of i's bids: at each seller, prices {0, the others' prices ± tiny, above
    all} × quantities linspace(0, Q, n_q), within the budget on the actual charge."""
    own = list(range(m.buyer_ptr[i], m.buyer_ptr[i + 1]))
    grids = []
    for e in own:
        j = m.edge_seller[e]
        others = [k for k in np.flatnonzero(m.edge_seller == j) if k != e]
        ps = {0.0, float(max(price[others], default=0.0)) + 1.0}
        for k in others:
            ps |= (
                {float(price[k]) * (1 - 1e-9), float(price[k]), float(price[k]) * (1 + 1e-9)}
                if near
                else {float(price[k])}
            )
        grids.append([(p, q) for p in sorted(ps) for q in np.linspace(0.0, m.supply[j], n_q)])
    best = -math.inf
    for combo in itertools.product(*grids):
        p2, q2 = price.copy(), qty.copy()
        for e, (p, q) in zip(own, combo, strict=True):
            p2[e], q2[e] = p, q
        _, c_e, _, U = psp_outcome(m, p2, q2)
        if c_e[own].sum() > m.budget[i] + 1e-12:
            continue
        best = max(best, U[i])
    return best


@pytest.mark.parametrize("seed", range(3))
def test_exact_best_reply_gain_matches_brute_force_one_seller(seed):
    rng = np.random.default_rng(seed)
    vals = {
        f"b{k}": QuadraticValuation(float(rng.uniform(1, 4)), float(rng.uniform(0.3, 2))) for k in range(3)
    }
    G = single_resource(float(rng.uniform(1, 3)), vals)
    if seed % 2:
        G.nodes["b0"]["budget"] = 0.3
    m = market_arrays(G)
    price = rng.uniform(0.2, 2.0, m.n_edges)
    price[1] = price[2]  # a tie among the others
    qty = rng.uniform(0.2, 1.5, m.n_edges)
    best, _ = exact_best_replies(m, price, qty)
    for i in range(m.n_buyers):
        brute = _brute_force_best(m, price, qty, i, n_q=121)
        # the grid never beats the exact supremum, and comes within its spacing's worth of it
        assert brute <= best[i] + 1e-9
        assert brute >= best[i] - 2e-2 * max(1.0, abs(best[i])), (i, brute, best[i])


def test_exact_best_reply_gain_matches_brute_force_two_sellers():
    vals = {
        "x": QuadraticValuation(3.0, 1.0),
        "y": QuadraticValuation(2.5, 0.8),
        "z": QuadraticValuation(2.0, 0.5),
    }
    G = data_share_market(vals, {"s": 1.0, "t": 1.5})
    m = market_arrays(G)
    rng = np.random.default_rng(7)
    price = rng.uniform(0.3, 2.0, m.n_edges)
    qty = rng.uniform(0.2, 1.0, m.n_edges)
    best, _ = exact_best_replies(m, price, qty)
    i = m.buyers.index("x")
    brute = _brute_force_best(m, price, qty, i, n_q=11, near=False)
    assert best[i] - 0.05 <= brute <= best[i] + 1e-9


def test_issue_profile_gain_above_epsilon_fails_although_the_epsilon_reply_does_not():
    """θ(z) = 3z − 0.195 z², the other bid (1, 10) holds all 10 units: the exact best reply
    z = 2/0.39 gains 1/0.195 = 5.128 > ε = 5, the ε-best reply (step back ε/θ'(0)) only 4.59."""
    G = single_resource(10.0, {"x": QuadraticValuation(3.0, 0.39), "y": QuadraticValuation(3.0, 0.39)})
    bids = [
        {"buyer": "x", "seller": "s0", "price": 0.0, "quantity": 0.0},
        {"buyer": "y", "seller": "s0", "price": 1.0, "quantity": 10.0},
    ]
    from datamarkets.formulations.auction_certificate import epsilon_nash_check

    check = epsilon_nash_check(G, bids, 5.0, relative=False)
    assert check.solution["gains"]["x"] == pytest.approx(1 / 0.195, rel=1e-12)
    assert check.solution["epsilon_reply_gains"]["x"] <= 5.0
    assert not check.certificate.passed
    cert = certify_psp(G, {"bids": bids}, 5.0, relative=False)
    assert "best_reply_gain_over_eps_max" in cert.failures


def test_budget_violations_are_reported():
    """Budgets limit each reply's predicted charge only; the final charges can exceed them, and the
    certificate says so (residual = max (c_i − b_i)/max(1, b_i), recomputed here from payments)."""
    from datamarkets.models.psp_dynamics import psp_dynamics

    rng = np.random.default_rng(0)
    vals = {
        f"b{k}": QuadraticValuation(float(rng.uniform(2, 4)), float(rng.uniform(0.5, 1.5))) for k in range(10)
    }
    G = data_share_market(vals, {"s0": 2.0, "s1": 2.0})
    for k in range(10):
        G.nodes[f"b{k}"]["budget"] = 0.5
    r = psp_dynamics(G, 0.01)
    paid: dict[str, float] = {}
    for row in r.solution["payments"]:
        paid[row["buyer"]] = paid.get(row["buyer"], 0.0) + row["amount"]
    excess = max((c - 0.5) / 1.0 for c in paid.values())
    assert r.certificate.residuals["budget_excess_max"] == pytest.approx(max(excess, 0.0), abs=1e-12)
    violators = {b for b, c in paid.items() if c > 0.5 + 1e-9}
    assert len(violators) >= 3  # measured: 4 of 10 buyers end above their budget
    assert set(r.certificate.details["budget_violations"]) == violators
    assert ("budget_excess_max" in r.certificate.failures) == bool(violators)


# ------------------------------------------------------------------------------- ties
def test_mathematically_equal_prices_tie():
    """0.1 + 0.2 and 0.3 are one price: the unit splits in proportion to quantities, whatever the
    order and the last bits (before: the 4e-17 larger bid took everything)."""
    a = allocate(1.0, [0.1 + 0.2, 0.3], [1.0, 3.0])
    b = allocate(1.0, [0.3, 0.1 + 0.2], [3.0, 1.0])
    np.testing.assert_allclose(a, [0.25, 0.75], rtol=1e-15)
    np.testing.assert_allclose(b, [0.75, 0.25], rtol=1e-15)
    # distinct prices still order strictly
    np.testing.assert_allclose(allocate(1.0, [0.3 * (1 + 1e-9), 0.3], [1.0, 3.0]), [1.0, 0.0])
