"""Tidy frames of every result type (``Result.to_frame``, :mod:`datamarkets.frames`).

Oracles: row counts equal entity counts; values equal the result's own solution arrays exactly;
sums equal the totals the result reports (allocation per buyer = buyer totals, per seller ≤ supply,
Σ_k d = D, Σ_k c = T); two algorithms agree where the package has two (Leontief vs LP vs best
response, closed-form vs LP payment ranges); the certificate table's ``passed`` column is exactly
the complement of ``Certificate.failures``; every table survives the JSON round trip unchanged.
"""

from __future__ import annotations

import doctest
import json
import math
import re

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import datamarkets.frames as F
from datamarkets.errors import InvalidInputError
from datamarkets.graphs.estimation_market import two_firm_example
from datamarkets.graphs.market import example1_market, market_arrays
from datamarkets.result import Certificate, Result
from datamarkets.status import Status

SNAKE_CASE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
"""A snake-case column name: lower-case words of letters and digits joined by single underscores."""

# ------------------------------------------------------------------------------------------------
# real results on tiny instances (computed once)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain():
    from datamarkets.models.chain_equilibrium import solve_equilibrium
    from datamarkets.models.chain_valuations import paper_model

    game = paper_model("paper-1", 3)
    eq = solve_equilibrium(game)
    return game, eq, eq.to_result()


@pytest.fixture(scope="module")
def chain_cert(chain):
    from datamarkets.formulations.chain_certificate import certify_equilibrium

    game, eq, _ = chain
    return certify_equilibrium(game, eq)


@pytest.fixture(scope="module")
def chain_opt():
    from datamarkets.models.chain_mechanism_opt import optimize_mechanism
    from datamarkets.models.chain_valuations import paper_model

    return optimize_mechanism(paper_model("paper-2", 2, "ave"), max_evals=300)


@pytest.fixture(scope="module")
def welfare():
    from datamarkets.formulations.welfare import solve_welfare

    return solve_welfare(example1_market())


@pytest.fixture(scope="module")
def kkt():
    from datamarkets.formulations.kkt_mpec import solve_kkt

    return solve_kkt(example1_market())


@pytest.fixture(scope="module")
def psp():
    from datamarkets.models.psp_dynamics import psp_dynamics

    return psp_dynamics(example1_market(), 1e-3)


@pytest.fixture(scope="module")
def data_share():
    from datamarkets.models.data_share import solve_example1

    return solve_example1(0.01)


@pytest.fixture(scope="module")
def auction_cert(welfare):
    from datamarkets.formulations.auction_certificate import certify_allocation

    return certify_allocation(example1_market(), welfare.solution["allocation"], optimum=welfare)


@pytest.fixture(scope="module")
def eps_nash(psp):
    from datamarkets.formulations.auction_certificate import epsilon_nash_check

    return epsilon_nash_check(example1_market(), psp.solution["bids"], 1e-3)


@pytest.fixture(scope="module")
def broker():
    from datamarkets.graphs.market import data_share_market
    from datamarkets.graphs.valuations import LinearValuation
    from datamarkets.models.brokers import broker_experiment

    A = data_share_market({"a1": LinearValuation(1.0, 30), "a2": LinearValuation(0.5, 30)}, {"SA": 100.0})
    B = data_share_market({"b1": LinearValuation(3.0, 40), "b2": LinearValuation(2.0, 40)}, {"SB": 50.0})
    return broker_experiment(A, B, "SA", "SB", 0.05)


@pytest.fixture(scope="module")
def gne():
    from datamarkets.formulations.gne_solve import solve_gne

    return solve_gne(two_firm_example(0.5))


@pytest.fixture(scope="module")
def gne_none():
    from datamarkets.formulations.gne_solve import solve_gne
    from datamarkets.models.gne_inputs import GNEInputs

    xi = np.full((2, 2, 2), 1.5) - 0.5 * np.eye(2)  # ξ = 1.5 off the diagonal: ρ(A) = 1.5 ≥ 1
    return solve_gne(GNEInputs.from_arrays(np.ones((2, 2)), xi, np.ones(2)), welfare=False)


@pytest.fixture(scope="module")
def existence_lp():
    from datamarkets.formulations.gne_lp import leontief_feasibility

    return leontief_feasibility(two_firm_example(0.5))


@pytest.fixture(scope="module")
def pay_range(gne):
    from datamarkets.formulations.gne_lp import payment_range

    return payment_range(two_firm_example(0.5), gne.solution["d"])


@pytest.fixture(scope="module")
def best_resp():
    from datamarkets.formulations.gne_best_response import best_response_iteration

    return best_response_iteration(two_firm_example(0.5), backend="closed")


@pytest.fixture(scope="module")
def welfare_effort():
    from datamarkets.formulations.welfare_effort import solve_welfare_effort

    return solve_welfare_effort(two_firm_example(0.5))


@pytest.fixture(scope="module")
def verification():
    from datamarkets.formulations.chain_formulation import ChainEquilibriumFormulation

    f = ChainEquilibriumFormulation()
    r = f.solve(f.instance({"model": "paper-1", "n": 2, "mechanism": "ave"}))
    return f.verify(r.to_dict())


ALL = (
    "chain",
    "chain_cert",
    "chain_opt",
    "welfare",
    "kkt",
    "psp",
    "data_share",
    "auction_cert",
    "eps_nash",
    "broker",
    "gne",
    "gne_none",
    "existence_lp",
    "pay_range",
    "best_resp",
    "welfare_effort",
    "verification",
)

EXPECTED_TABLES = {
    "chain-equilibrium": ["players", "trades", "strategies", "mechanism"],
    "chain-certificate": ["players", "strategies"],
    "chain-opt": ["mechanism", "baselines", "players", "trades", "strategies"],
    "auction-optimum": ["allocation", "prices", "buyers"],
    "auction-psp": ["allocation", "prices", "bids", "payments", "buyers", "stages"],
    "auction-data-share": ["allocation", "prices", "buyers", "history"],
    "auction-certificate": ["prices", "residuals"],
    "auction-epsilon-nash": ["buyers"],
    "broker-experiment": ["history", "prices"],
    "gne": ["pairs", "sources", "buyers", "xi"],
    "gne-existence-lp": ["pairs"],
    "gne-payment-range": ["buyers"],
    "gne-best-response": ["pairs", "iterations"],
    "welfare-effort": ["sources"],
    "verification": ["comparison"],
}


def _result(request, name: str) -> Result:
    r = request.getfixturevalue(name)
    return r[2] if isinstance(r, tuple) else r


def _supply(G: nx.Graph) -> dict:
    return {n: float(d["supply"]) for n, d in G.nodes(data=True) if d.get("role") == "seller"}


# ------------------------------------------------------------------------------------------------
# every result: table list, summary, certificate, JSON round trip
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_every_result_has_its_tables_and_round_trips(request, name):
    r = _result(request, name)
    tabs = r.tables()
    if r.kind == "gne" and r.status is Status.NO_EQUILIBRIUM:
        assert tabs == ["pairs", "sources", "buyers", "xi", "summary", "certificate"]
    else:
        assert tabs == [*EXPECTED_TABLES[r.kind], "summary", "certificate"]
    assert r.to_frame().equals(r.to_frame(tabs[0]))  # default = the kind's main table
    back = Result.from_dict(r.to_dict())
    back_json = Result.from_dict(json.loads(r.to_json()))
    assert back.tables() == tabs == back_json.tables()
    for t in tabs:
        df = r.to_frame(t)
        assert isinstance(df, pd.DataFrame)
        assert all(isinstance(c, str) and SNAKE_CASE.fullmatch(c) for c in df.columns), (t, list(df.columns))
        assert isinstance(df.index, pd.RangeIndex)
        pd.testing.assert_frame_equal(df, back.to_frame(t), check_dtype=True)
        pd.testing.assert_frame_equal(df, back_json.to_frame(t), check_dtype=True)


@pytest.mark.parametrize("name", ALL)
def test_summary_row(request, name):
    r = _result(request, name)
    s = r.to_frame("summary")
    assert len(s) == 1
    row = s.iloc[0]
    assert (row["kind"], row["status"], row["method"]) == (r.kind, r.status.value, r.method)
    assert row["certified"] == r.certified and row["certificate_passed"] == r.certificate.passed
    assert row["max_residual_ratio"] == r.certificate.max_residual
    for k, v in r.timings.items():
        assert row[k] == v
    for k, v in r.solution.items():
        col = {"n": "n_trades", "L": "n_values"}.get(k, k) if r.kind == "chain-equilibrium" else k
        if col in ("kind", "status", "method", "certified"):
            col = f"solution_{col}"
        if isinstance(v, bool | str):
            assert row[col] == v
        elif isinstance(v, int | float) and math.isfinite(v):
            assert row[col] == v and pd.api.types.is_numeric_dtype(s[col])


@pytest.mark.parametrize("name", ALL)
def test_certificate_table_is_the_certificate(request, name):
    r = _result(request, name)
    c = r.to_frame("certificate")
    cert = r.certificate
    assert list(c.columns) == ["name", "residual", "tolerance", "ratio", "passed"]
    assert list(c["name"]) == list(cert.residuals)
    np.testing.assert_array_equal(c["residual"].to_numpy(), np.array(list(cert.residuals.values()), float))
    np.testing.assert_array_equal(
        c["tolerance"].to_numpy(), np.array([cert.tolerances.get(k, np.nan) for k in cert.residuals])
    )
    assert set(c.loc[~c["passed"], "name"]) == set(cert.failures)
    assert c["passed"].dtype == bool
    assert bool(c["passed"].all()) == cert.passed
    if len(c):
        assert np.nanmax(c["ratio"].to_numpy()) == pytest.approx(cert.max_residual)


def test_certificate_table_failures_nan_and_missing_tolerance():
    cert = Certificate()
    cert.add("ok", 1e-12, 1e-9)
    cert.add("bad", 2e-9, 1e-9)
    cert.add("nan", float("nan"), 1.0)
    cert.add("zero_tol_pos", 1e-300, 0.0)
    cert.residuals["untold"] = 5.0  # a residual without tolerance is reported, never a failure
    c = F.certificate_frame(cert)
    assert dict(zip(c["name"], c["passed"], strict=True)) == {
        "ok": True,
        "bad": False,
        "nan": False,
        "zero_tol_pos": False,
        "untold": True,
    }
    assert set(c.loc[~c["passed"], "name"]) == set(cert.failures)
    assert c.loc[c["name"] == "bad", "ratio"].item() == pytest.approx(2.0)
    assert c.loc[c["name"] == "zero_tol_pos", "ratio"].item() == 1.0
    assert math.isnan(c.loc[c["name"] == "untold", "tolerance"].item())
    empty = F.certificate_frame(Certificate())
    assert empty.empty and list(empty.columns) == ["name", "residual", "tolerance", "ratio", "passed"]


@pytest.mark.parametrize("name", ["welfare", "gne", "chain"])
def test_unknown_table_lists_available(request, name):
    r = _result(request, name)
    with pytest.raises(InvalidInputError) as exc:
        r.to_frame("no-such-table")
    for t in r.tables():
        assert t in str(exc.value)


# ------------------------------------------------------------------------------------------------
# chain trading
# ------------------------------------------------------------------------------------------------


def test_chain_equilibrium_tables(chain):
    game, eq, r = chain
    n, L = game.n, game.L
    players = r.to_frame("players")
    assert len(players) == n + 1
    np.testing.assert_array_equal(players["player"], np.arange(n + 1))
    np.testing.assert_array_equal(players["utility"], eq.player_utility)
    assert players["utility"].sum() == pytest.approx(eq.social_welfare, rel=1e-12)
    trades = r.to_frame("trades")
    assert len(trades) == n
    np.testing.assert_array_equal(trades["success_probability"], eq.trade_success)
    np.testing.assert_array_equal(trades["success_probability_conditional"], eq.trade_success_conditional)
    assert (trades["buyer"] - trades["seller"] == 1).all()
    assert trades["success_probability"].sum() == pytest.approx(eq.transaction_volume, rel=1e-12)
    s = r.to_frame("strategies")
    assert len(s) == (n + 1) * L
    np.testing.assert_array_equal(
        s.pivot(index="player", columns="value_index", values="threshold"), eq.thresholds
    )
    np.testing.assert_array_equal(
        s.pivot(index="player", columns="value_index", values="price").to_numpy()[:n], eq.prices
    )
    assert s.loc[s["player"] == n, "price"].isna().all()  # the last player never sells
    np.testing.assert_array_equal(s.loc[s["player"] == 0, "value"], game.values)
    m = r.to_frame("mechanism")
    assert len(m) == n * (n + 1)
    np.testing.assert_array_equal(m.pivot(index="trade", columns="player", values="share"), game.t)
    assert (m.groupby("trade")["share"].sum() <= 1 + 1e-12).all()  # budget feasible (Def. 2.5)
    summary = r.to_frame("summary")
    assert summary.loc[0, "n_trades"] == n and summary.loc[0, "n_values"] == L


def test_chain_equilibrium_dataclass_frame(chain):
    game, eq, r = chain
    assert eq.to_frame().equals(r.to_frame())
    for t in ("players", "trades", "mechanism", "summary"):
        if t == "summary":  # to_result() recomputes only timings, which are the same numbers
            pd.testing.assert_frame_equal(eq.to_frame(t), r.to_frame(t))
        else:
            assert eq.to_frame(t).equals(r.to_frame(t))
    s = eq.to_frame("strategies")
    n, L = game.n, game.L
    alive = s.pivot(index="player", columns="value_index", values="alive_probability").to_numpy()
    np.testing.assert_array_equal(alive, eq.alive)
    np.testing.assert_array_equal(
        s.pivot(index="player", columns="value_index", values="one_shot_profit").to_numpy()[:n],
        eq.one_shot_profit,
    )
    np.testing.assert_array_equal(
        s.pivot(index="player", columns="value_index", values="future_profit").to_numpy(), eq.future_profit
    )
    # α_i sums to Pr[trade i occurred]: row 0 is the start distribution
    np.testing.assert_allclose(alive.sum(axis=1)[1:], eq.trade_success, rtol=1e-12)
    assert alive[0].sum() == pytest.approx(1.0)
    assert len(s) == (n + 1) * L
    with pytest.raises(InvalidInputError, match="players"):
        eq.to_frame("nope")


def test_chain_certificate_tables(chain, chain_cert):
    game, eq, _ = chain
    p = chain_cert.to_frame("players")
    assert len(p) == game.n + 1 and (p["status"] == "optimal").all()
    assert (p["threshold_gap_rel"] <= 1e-7).all() and (p["price_gap_rel"] <= 1e-7).all()
    assert str(p["lp_rows"].dtype) == "Int64"
    s = chain_cert.to_frame("strategies")
    lp = s.pivot(index="player", columns="value_index", values="lp_threshold").to_numpy()
    np.testing.assert_array_equal(lp, chain_cert.solution["lp_thresholds"])
    # second algorithm: the LP thresholds agree with the DP's
    np.testing.assert_allclose(lp, eq.thresholds, rtol=1e-7, atol=1e-7 * np.abs(game.values).max())


def test_chain_opt_tables(chain_opt):
    t = np.asarray(chain_opt.solution["mechanism"])
    m = chain_opt.to_frame("mechanism")
    np.testing.assert_array_equal(m.pivot(index="trade", columns="player", values="share"), t)
    assert (m.loc[m["player"] >= m["trade"], "share"] == 0).all()  # past-only (Def. 2.6)
    b = chain_opt.to_frame("baselines").set_index("mechanism")
    assert list(b.index) == ["raw", "ave", "opt"]
    assert b.loc["opt", "social_welfare"] == chain_opt.solution["social_welfare"]
    assert b.loc["opt", "social_welfare"] >= b.loc[["raw", "ave"], "social_welfare"].max()
    for k in ("raw", "ave"):
        assert b.loc[k, "social_welfare"] == chain_opt.solution["baselines"][k]["social_welfare"]
    assert chain_opt.to_frame("players")["utility"].sum() == pytest.approx(
        chain_opt.solution["social_welfare"], rel=1e-12
    )


# ------------------------------------------------------------------------------------------------
# auctions
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["welfare", "kkt"])
def test_auction_optimum_tables(request, name):
    r = request.getfixturevalue(name)
    G = example1_market()
    M = market_arrays(G)
    a = r.to_frame("allocation")
    assert list(a.columns) == ["buyer", "seller", "amount"]
    assert a.to_dict("records") == r.solution["allocation"]
    assert all(G.has_edge(b, s_) for b, s_ in zip(a["buyer"], a["seller"], strict=True))
    per_seller = a.groupby("seller")["amount"].sum()
    supply = _supply(G)
    for s_, v in per_seller.items():
        assert v <= supply[s_] * (1 + 1e-9) + 1e-9
    buyers = r.to_frame("buyers")
    assert len(buyers) == M.n_buyers
    per_buyer = a.groupby("buyer")["amount"].sum().reindex(buyers["buyer"], fill_value=0.0)
    np.testing.assert_allclose(per_buyer.to_numpy(), buyers["total"].to_numpy(), rtol=1e-12, atol=1e-12)
    prices = r.to_frame("prices")
    assert len(prices) == M.n_sellers
    assert dict(zip(prices["resource"], prices["price"], strict=True)) == r.solution["prices"]
    # welfare = Σ θ_i(total_i), recomputed from the table
    W = sum(G.nodes[b]["valuation"].value(x) for b, x in zip(buyers["buyer"], buyers["total"], strict=True))
    assert W == pytest.approx(r.solution["welfare"], rel=1e-9)


def test_auction_infeasible_tables_are_empty_with_columns():
    r = Result(
        "auction-optimum",
        Status.INFEASIBLE,
        "qp-clarabel",
        {"welfare": None, "allocation": [], "prices": {}, "buyers": []},
    )
    a = r.to_frame()
    assert a.empty and list(a.columns) == ["buyer", "seller", "amount"]
    assert list(r.to_frame("buyers").columns) == ["buyer", "total", "marginal", "mu"]
    assert r.to_frame("prices").empty
    s = r.to_frame("summary")
    assert not s.loc[0, "certified"] and math.isnan(s.loc[0, "welfare"])


def test_psp_tables(psp):
    G = example1_market()
    M = market_arrays(G)
    a = psp.to_frame("allocation")
    assert len(a) == M.n_edges
    assert a.to_dict("records") == psp.solution["allocation"]
    for s_, v in a.groupby("seller")["amount"].sum().items():
        assert v <= _supply(G)[s_] + 1e-9 * (1 + max(_supply(G).values()))
    b = psp.to_frame("buyers").set_index("buyer")
    per_buyer = a.groupby("buyer")["amount"].sum()
    np.testing.assert_allclose(per_buyer.reindex(b.index).to_numpy(), b["quantity"].to_numpy(), rtol=1e-12)
    assert b["utility"].to_dict() == psp.solution["utilities"]
    assert b["epsilon"].to_dict() == psp.solution["epsilons"]
    bids = psp.to_frame("bids")
    assert bids.to_dict("records") == psp.solution["bids"]
    pay = psp.to_frame("payments")
    assert len(pay) == M.n_edges and (pay["amount"] >= -1e-12).all()
    stages = psp.to_frame("stages")
    assert stages["rounds"].tolist() == list(psp.solution["stage_rounds"])


def test_data_share_tables(data_share):
    G = example1_market()
    a = data_share.to_frame("allocation")
    for s_, v in a.groupby("seller")["amount"].sum().items():
        assert v <= _supply(G)[s_] + 1e-9
    p = data_share.to_frame("prices").set_index("resource")
    assert p["price"].to_dict() == data_share.solution["prices"]
    assert p["reserve_price"].to_dict() == data_share.solution["reserve_prices"]
    b = data_share.to_frame("buyers").set_index("buyer")
    assert b["unmet"].to_dict() == data_share.solution["unmet"]
    h = data_share.to_frame("history")
    assert len(h) == sum(len(x) for x in data_share.solution["history"])
    assert h["round"].min() == 1 and h["round"].max() == data_share.solution["rounds"]


def test_auction_certificate_and_eps_nash_tables(auction_cert, eps_nash, welfare):
    p = auction_cert.to_frame("prices")
    assert dict(zip(p["resource"], p["price"], strict=True)) == auction_cert.solution["prices"]
    res = auction_cert.to_frame("residuals")
    assert dict(zip(res["name"], res["value"], strict=True)) == auction_cert.solution["residuals"]
    b = eps_nash.to_frame().set_index("buyer")
    assert b["gain"].to_dict() == eps_nash.solution["gains"]
    assert b["exact_best_reply_gain"].to_dict() == eps_nash.solution["exact_best_reply_gains"]
    # ε-Nash: no gain above ε_i beyond the numerical tolerance
    assert (b["gain"] - b["epsilon"]).max() <= 1e-9 * max(1.0, welfare.solution["welfare"])


def test_broker_tables(broker):
    h = broker.to_frame()
    assert len(h) == broker.solution["evaluations"]
    assert h.to_dict("records") == [{"evaluation": i, **x} for i, x in enumerate(broker.solution["history"])]
    p = broker.to_frame("prices").set_index("seller")
    assert p["price_after"].to_dict() == broker.solution["prices_after"]
    gap = p.loc["SB", "price_after"] - p.loc["SA", "price_after"]
    assert gap == pytest.approx(broker.solution["price_gap_after"], abs=1e-15)


# ------------------------------------------------------------------------------------------------
# GNE
# ------------------------------------------------------------------------------------------------


def test_gne_tables(gne):
    s = gne.solution
    K, N = np.asarray(s["d"]).shape
    pairs = gne.to_frame("pairs")
    assert len(pairs) == K * N
    for col in ("gamma", "d", "c_lower", "c_point"):
        np.testing.assert_array_equal(
            pairs.pivot(index="buyer", columns="source", values=col).loc[s["buyers"], s["sources"]], s[col]
        )
    src = gne.to_frame("sources").set_index("source")
    assert list(src.index) == s["sources"]
    np.testing.assert_allclose(
        pairs.groupby("source")["d"].sum().loc[s["sources"]], src["d_total"], rtol=1e-12
    )
    # (20) tight: Σ_k c_i^k = T_i at the polytope point
    np.testing.assert_allclose(
        pairs.groupby("source")["c_point"].sum().loc[s["sources"]], src["c_total"], rtol=1e-12
    )
    np.testing.assert_array_equal(src["effort_equilibrium"], s["effort_equilibrium"])
    b = gne.to_frame("buyers")
    assert b["buyer"].tolist() == s["buyers"]
    assert (b["payment_least"] <= b["payment_most"]).all()
    assert b["payment_most"].tolist() == [s["payment_range"][k]["most"] for k in s["buyers"]]
    xi = gne.to_frame("xi")
    assert len(xi) == K * N * N
    np.testing.assert_array_equal(xi["xi"].to_numpy().reshape(K, N, N), s["xi"])


def test_gne_no_equilibrium_tables(gne_none):
    assert gne_none.status is Status.NO_EQUILIBRIUM
    pairs = gne_none.to_frame()
    assert list(pairs.columns) == ["buyer", "source", "gamma"]  # no d: nothing invented
    assert gne_none.to_frame("summary").loc[0, "status"] == "no_equilibrium"
    assert "spectral radius" in gne_none.to_frame("summary").loc[0, "reason"]


def test_gne_second_algorithms_agree_through_tables(gne, existence_lp, pay_range, best_resp, welfare_effort):
    d = gne.to_frame("pairs")["d"].to_numpy()
    np.testing.assert_allclose(existence_lp.to_frame("pairs")["d"].to_numpy(), d, rtol=1e-7)
    br = best_resp.to_frame("pairs")
    np.testing.assert_allclose(br["d"].to_numpy(), d, rtol=1e-8)
    np.testing.assert_array_equal(br["d_leontief"], np.asarray(best_resp.solution["d_leontief"]).ravel())
    it = best_resp.to_frame("iterations")
    assert len(it) == best_resp.solution["iterations"] and it["step"].iloc[-1] <= 1e-10
    lp = pay_range.to_frame().set_index("buyer")
    cf = gne.to_frame("buyers").set_index("buyer")
    for col in ("payment_least", "payment_most", "c_least", "c_most"):
        np.testing.assert_allclose(lp[col], cf[col], rtol=1e-8, atol=1e-9)
    we = welfare_effort.to_frame()
    np.testing.assert_array_equal(we["effort_closed_form"], welfare_effort.solution["effort_closed_form"])
    np.testing.assert_allclose(we["effort_optimal"], gne.to_frame("sources")["effort_optimal"], atol=2e-5)


def test_verification_table(verification):
    c = verification.to_frame()
    claimed = verification.solution["claimed_residuals"]
    assert set(claimed) <= set(c["name"])
    for k, v in claimed.items():
        assert c.loc[c["name"] == k, "claimed_residual"].item() == pytest.approx(v, abs=0, nan_ok=True)
    cert = verification.certificate
    own = c[c["name"].isin(list(cert.residuals))]
    assert set(own.loc[~own["passed"], "name"]) == set(cert.failures)


# ------------------------------------------------------------------------------------------------
# plug-in kinds: generic tables and registered tables
# ------------------------------------------------------------------------------------------------


def _plugin_result() -> Result:
    return Result(
        "my-plugin",
        Status.OPTIMAL,
        "direct",
        {
            "scale": {"a": 1.0, "b": 2.5},
            "quantities": np.array([1.0, 2.0, 3.0]),
            "matrix": np.arange(6.0).reshape(2, 3),
            "cube": np.zeros((2, 2, 2)),
            "firms": [{"firmName": "f1", "output": 2.0, "active": True}, {"firmName": "f2", "output": None}],
            "per_firm": {"f1": {"profit": 1.0, "price": 3.0}, "f2": {"profit": 0.5}},
            "welfare": 7.0,
            "label": "x",
            "n": 3,
        },
    )


def test_generic_tables_for_unknown_kinds():
    r = _plugin_result()
    assert r.tables() == [
        "firms",
        "scale",
        "quantities",
        "matrix",
        "cube",
        "per_firm",
        "summary",
        "certificate",
    ]
    firms = r.to_frame()
    assert list(firms.columns) == ["firm_name", "output", "active"]
    assert firms["output"].dtype == float and math.isnan(firms.loc[1, "output"])
    assert r.to_frame("scale").to_dict("records") == [
        {"name": "a", "value": 1.0},
        {"name": "b", "value": 2.5},
    ]
    q = r.to_frame("quantities")
    np.testing.assert_array_equal(q["value"], [1.0, 2.0, 3.0])
    m = r.to_frame("matrix")
    assert len(m) == 6 and m.pivot(index="row", columns="col", values="value").to_numpy().tolist() == [
        [0.0, 1.0, 2.0],
        [3.0, 4.0, 5.0],
    ]
    assert list(r.to_frame("cube").columns) == ["dim_0", "dim_1", "dim_2", "value"]
    pf = r.to_frame("per_firm")
    assert pf["name"].tolist() == ["f1", "f2"] and math.isnan(pf.loc[1, "price"])
    s = r.to_frame("summary")
    assert (s.loc[0, "welfare"], s.loc[0, "label"], s.loc[0, "n"]) == (7.0, "x", 3)
    back = Result.from_dict(json.loads(r.to_json()))
    for t in r.tables():
        pd.testing.assert_frame_equal(r.to_frame(t), back.to_frame(t))


def test_result_without_tables_defaults_to_summary():
    r = Result("bare", Status.ERROR, "x", {"reason": "crashed"})
    assert r.tables() == ["summary", "certificate"]
    assert r.to_frame().loc[0, "reason"] == "crashed"
    assert not r.to_frame().loc[0, "certified"]


def test_register_tables():
    def points(r: Result) -> pd.DataFrame:
        return pd.DataFrame({"x": np.asarray(r.solution["x"], float)})

    r = Result("frames-test-kind", Status.OPTIMAL, "m", {"x": [1.0, 2.0], "rows": [{"a": 1}]})
    assert r.tables()[0] == "rows"
    try:
        F.register_tables("frames-test-kind", {"points": points})
        assert r.tables() == ["points", "summary", "certificate"]
        assert r.to_frame()["x"].tolist() == [1.0, 2.0]
        with pytest.raises(InvalidInputError, match="replace=True"):
            F.register_tables("frames-test-kind", {"points": points})
        F.register_tables("frames-test-kind", {"extra": points}, default="extra")
        assert r.tables()[:2] == ["extra", "points"]
        F.register_tables("frames-test-kind", {"points": lambda r: pd.DataFrame({"y": [0]})}, replace=True)
        assert list(r.to_frame("points").columns) == ["y"]
        with pytest.raises(InvalidInputError, match="reserved"):
            F.register_tables("frames-test-kind", {"summary": points}, replace=True)
        with pytest.raises(InvalidInputError, match="snake_case"):
            F.register_tables("frames-test-kind", {"Bad Name": points})
        with pytest.raises(InvalidInputError, match="callable"):
            F.register_tables("frames-test-kind", {"nope": 3})
        with pytest.raises(InvalidInputError, match="default"):
            F.register_tables("frames-test-kind", {"more": points}, default="missing")
        with pytest.raises(InvalidInputError):
            F.register_tables("", {"more": points})
        F.register_tables("frames-test-kind", {"broken": lambda r: [1, 2]})
        with pytest.raises(InvalidInputError, match="not a DataFrame"):
            r.to_frame("broken")
    finally:
        F.unregister_tables("frames-test-kind")
    assert r.tables()[0] == "rows"


def test_register_tables_adds_to_builtin_kind(welfare):
    try:
        with pytest.raises(InvalidInputError, match="replace=True"):
            F.register_tables("auction-optimum", {"prices": lambda r: pd.DataFrame()})
        F.register_tables("auction-optimum", {"sellers": lambda r: pd.DataFrame({"s": ["S1"]})})
        assert welfare.tables()[:4] == ["allocation", "prices", "buyers", "sellers"]
        assert welfare.to_frame("sellers")["s"].tolist() == ["S1"]
    finally:
        F.unregister_tables("auction-optimum")
    assert "sellers" not in welfare.tables()


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "node": st.sampled_from(["a", "b", "c"]),
                "value": st.floats(allow_nan=True, allow_infinity=False),
            }
        ),
        min_size=1,
        max_size=6,
    ),
    arr=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=5),
)
def test_generic_round_trip_property(rows, arr):
    r = Result("prop-kind", Status.OPTIMAL, "m", {"rows": rows, "arr": np.array(arr), "w": 1.0})
    back = Result.from_dict(json.loads(r.to_json()))
    assert r.tables() == ["rows", "arr", "summary", "certificate"]
    for t in r.tables():
        pd.testing.assert_frame_equal(r.to_frame(t), back.to_frame(t))
    assert len(r.to_frame("rows")) == len(rows)
    np.testing.assert_array_equal(r.to_frame("arr")["value"], arr)


@settings(max_examples=15, deadline=None)
@given(L=st.integers(2, 8), n=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_chain_tables_property(L, n, seed):
    from datamarkets.formulations.chain_formulation import random_chain_game
    from datamarkets.models.chain_equilibrium import solve_equilibrium

    eq = solve_equilibrium(random_chain_game(L, n, seed, "ave"))
    r = eq.to_result()
    s = r.to_frame("strategies")
    assert len(s) == (n + 1) * L
    np.testing.assert_array_equal(s["threshold"].to_numpy().reshape(n + 1, L), eq.thresholds)
    assert r.to_frame("players")["utility"].sum() == pytest.approx(eq.social_welfare, rel=1e-10, abs=1e-12)
    back = Result.from_dict(json.loads(r.to_json()))
    for t in r.tables():
        pd.testing.assert_frame_equal(r.to_frame(t), back.to_frame(t))


# ------------------------------------------------------------------------------------------------
# result dataclasses that are not Results
# ------------------------------------------------------------------------------------------------


def test_estimation_simulation_frames():
    from datamarkets.models.estimation_simulation import simulate_estimation_market

    sim = simulate_estimation_market(two_firm_example(0.4), [0.1, 0.5], n_rep=300, seed=5)
    K, N = len(sim.buyers), len(sim.sources)
    b = sim.to_frame()
    assert b["buyer"].tolist() == list(sim.buyers)
    np.testing.assert_array_equal(b["g_mean"], sim.g_mean)
    np.testing.assert_array_equal(b[["g_ci_lower", "g_ci_upper"]].to_numpy(), sim.g_ci)
    np.testing.assert_allclose(b["g_analytic"], b["g_variance"] + b["g_bias2"], rtol=1e-12)
    p = sim.to_frame("pairs")
    assert len(p) == K * N
    np.testing.assert_array_equal(p["penalty_mean"].to_numpy().reshape(K, N), sim.penalty_mean)
    np.testing.assert_array_equal(
        p[["penalty_ci_lower", "penalty_ci_upper"]].to_numpy(), sim.penalty_ci.reshape(-1, 2)
    )
    src = sim.to_frame("sources")
    np.testing.assert_array_equal(src["sigma2"], sim.sigma2)
    assert src["source"].tolist() == list(sim.sources)
    np.testing.assert_array_equal(src["effort"], sim.efforts)
    c = sim.to_frame("certificate")
    assert set(c.loc[~c["passed"], "name"]) == set(sim.certificate.failures)
    assert sim.to_frame("summary").loc[0, "n_rep"] == 300


def test_gne_dataclass_frames(gne):
    from datamarkets.formulations.gne_best_response import solve_best_response
    from datamarkets.formulations.welfare_effort import price_of_anarchy
    from datamarkets.models.gne_inputs import as_gne_inputs
    from datamarkets.models.gne_leontief import leontief_matrix, spectral_radius
    from datamarkets.models.gne_polytope import c_polytope

    inp = as_gne_inputs(two_firm_example(0.5))
    d = np.asarray(gne.solution["d"])
    poly = c_polytope(inp, d)
    pairs = poly.to_frame()
    assert len(pairs) == inp.K * inp.N
    np.testing.assert_array_equal(pairs["lower"].to_numpy().reshape(inp.K, inp.N), poly.lower)
    np.testing.assert_array_equal(pairs["upper"].to_numpy().reshape(inp.K, inp.N), poly.upper())
    assert (pairs["lower"] <= pairs["upper"]).all()
    src = poly.to_frame("sources")
    np.testing.assert_array_equal(src["total"], poly.total)
    assert poly.to_frame("summary").loc[0, "nonempty"] == poly.nonempty

    rho = spectral_radius(leontief_matrix(inp), inp.K * inp.N)
    row = rho.to_frame().iloc[0]
    assert row["lower"] <= row["value"] <= row["upper"] and row["method"] == rho.method

    poa = price_of_anarchy(1.0, -0.5).to_frame()
    assert math.isnan(poa.loc[0, "ratio"]) and not poa.loc[0, "defined"]

    br = solve_best_response(inp, 0, d)
    f = br.to_frame()
    np.testing.assert_array_equal(f["d"], br.d)
    np.testing.assert_allclose(f["d"], d[0], rtol=1e-4)  # at the GNE, buyer 0's best response is d^0
    assert br.to_frame("summary").loc[0, "status"] == br.status.value


def test_secure_sum_and_max_bid_frames():
    from datamarkets.models.secure_sum import private_max_bid, secure_sum

    ss = secure_sum([1, 0, 1, 3], 5, np.random.default_rng(0))
    parties = ss.to_frame()
    assert len(parties) == 4 and parties["partial"].sum() % 5 == ss.total == 0
    rec = ss.to_frame("received")
    assert len(rec) == 4 * 3 and (rec["party"] != rec["from_party"]).all()
    np.testing.assert_array_equal(rec["share"].to_numpy().reshape(4, 3), ss.received)
    mb = private_max_bid([3, 1, 3, 0], seed=1)
    counts = mb.to_frame()
    assert dict(zip(counts["level"], counts["count"], strict=True)) == mb.counts
    assert mb.to_frame("winners")["winner"].tolist() == mb.winners
    assert mb.to_frame("summary").loc[0, "max_bid"] == 3


def test_psp_state_frame(psp):
    from datamarkets.models.psp_dynamics import PSPState

    M = market_arrays(example1_market())
    st_ = PSPState.empty(M)
    st_.price[:] = np.arange(M.n_edges, dtype=float)
    bids = st_.to_frame()
    assert len(bids) == M.n_edges
    np.testing.assert_array_equal(bids["price"], st_.price)
    assert set(zip(bids["buyer"], bids["seller"], strict=True)) == {
        (r["buyer"], r["seller"]) for r in psp.solution["bids"]
    }


def test_object_frame_errors():
    with pytest.raises(InvalidInputError, match="no tables"):
        F.object_frame(object())
    assert F.object_tables(_plugin_result())[0] == "firms"


def test_doctests():
    assert doctest.testmod(F).failed == 0


# ------------------------------------------------------------------------------------------------
# market tables register themselves: a saved result finds them in a fresh process
# ------------------------------------------------------------------------------------------------
FRESH = """
import json, sys
from datamarkets.result import Result
rows = []
for d in json.load(open(sys.argv[1])):
    r = Result.from_dict(d)
    rows.append([r.kind, r.tables(), r.to_frame().to_json()])
markets = sorted(m for m in sys.modules if m.startswith(("datamarkets.models", "datamarkets.formulations")))
print(json.dumps({"rows": rows, "modules": markets}))
"""


def test_saved_results_find_their_market_tables_in_a_fresh_process(request, tmp_path):
    """core names no market: each market's tables register on import of its table module, which
    the ``datamarkets.tables`` entry points load on the first lookup, so a result read back from
    JSON in a process that imported no market module gets the same tables and frames."""
    import subprocess
    import sys

    names = ("chain", "chain_cert", "welfare", "psp", "gne", "best_resp", "verification")
    results = [_result(request, n) for n in names]
    path = tmp_path / "results.json"
    path.write_text(json.dumps([json.loads(r.to_json()) for r in results]))
    out = subprocess.run(
        [sys.executable, "-c", FRESH, str(path)], capture_output=True, text=True, check=True, timeout=120
    )
    got = json.loads(out.stdout)
    for r, (kind, tables, default_json) in zip(results, got["rows"], strict=True):
        assert kind == r.kind
        assert tables == r.tables()
        assert default_json == r.to_frame().to_json()
    # only the table modules were imported, not the markets' solvers
    assert got["modules"] == [
        "datamarkets.models",
        "datamarkets.models.auction_tables",
        "datamarkets.models.chain_tables",
        "datamarkets.models.gne_tables",
    ]
