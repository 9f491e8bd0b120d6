"""Audit of issue 11 ("verify must certify everything a result says, or say it did not"): the
fields an adversarial 1e-3 perturbation of saved results found unchecked.

- ``game`` results (``game solve``, ``lq-game``, ``cournot-game``): ``x_players``, ``costs``,
  ``objective`` and ``monotonicity_min_eig`` were neither compared nor listed;
- ``cournot-equilibrium`` results: sellers' outputs and capacity prices, markets' quantities,
  welfare, consumer surplus and total profit;
- ``auction-optimum`` results: the demand-cap multiplier ``mu`` of a buyer *without* a cap;
- every kind: the saved ``certificate``, ``timings`` and ``meta`` were silently not judged.

Oracles: closed forms (a two-player game solved by hand, symmetric Cournot) and the rule itself —
every numeric leaf of a saved solution moved by 1e-3 relative (0 → 1e-3) must fail verify, or its
field must be listed under ``not_checked`` with a reason.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from datamarkets import verify
from datamarkets.formulations.games import LQGameFormulation, lq_game, solve_game
from datamarkets.graphs.market import market_arrays
from datamarkets.registry import get_formulation
from datamarkets.result import NOT_CHECKED

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
_RESERVED = {"kind", "status", "method", "certificate", "timings", "meta", "instance"}


def _leaves(v, path=()):
    """(path, number) of every numeric leaf (booleans excluded)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return []
    if isinstance(v, int | float):
        return [(path, v)]
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else []
    return [leaf for k, x in items for leaf in _leaves(x, (*path, k))]


def _bumped(saved, path):
    out = copy.deepcopy(saved)
    node = out
    for k in path[:-1]:
        node = node[k]
    x = node[path[-1]]
    node[path[-1]] = x + 1 if isinstance(x, int) else (x * (1 + 1e-3) if x != 0 else 1e-3)
    return out


def _accepted_unlisted(saved, max_per_field=40):
    """Perturbed leaves that verify accepts although their field is not listed as not checked."""
    assert verify(saved).certificate.passed
    bad = []
    for field, value in saved.items():
        if field in _RESERVED:
            continue
        for path, _ in _leaves(value, (field,))[:max_per_field]:
            ver = verify(_bumped(saved, path))
            listed = ver.certificate.details.get(NOT_CHECKED, {})
            if ver.certificate.passed and field not in listed:
                bad.append(path)
    return bad


def _duopoly():
    """min_x0 x0² + x0 x1 − 9 x0 and min_x1 x0 x1 + x1² − 8 x1, x ≥ 0: x* = (10/3, 7/3)."""
    return lq_game([1, 1], [[[2, 1], [1, 0]], [[0, 1], [1, 2]]], [[-9, 0], [0, -8]], lb=0)


def _saved_game(method):
    game = _duopoly()
    res = LQGameFormulation().attach(solve_game(game, method), game, "clarabel")
    return json.loads(res.to_json())


# ------------------------------------------------------------------------------------- games
def test_game_claims_equal_the_closed_form():
    saved = _saved_game("vi")
    x0, x1 = 10 / 3, 7 / 3
    costs = [x0 * x0 + x0 * x1 - 9 * x0, x0 * x1 + x1 * x1 - 8 * x1]  # -100/9, -49/9
    np.testing.assert_allclose(saved["costs"], costs, rtol=1e-9)
    assert saved["objective"] == pytest.approx(sum(costs), rel=1e-9)
    assert saved["monotonicity_min_eig"] == pytest.approx(1.0, rel=1e-12)  # eig [[2,1],[1,2]] = 1, 3
    assert saved["x_players"] == [[pytest.approx(x0)], [pytest.approx(x1)]]


@pytest.mark.parametrize("field", ["x_players", "costs", "objective", "monotonicity_min_eig"])
def test_game_perturbed_claim_fails_verify(field):
    saved = _saved_game("vi")
    bad = copy.deepcopy(saved)
    bad[field] = (np.asarray(bad[field], dtype=float) * (1 + 1e-3)).tolist()
    ver = verify(bad)
    assert not ver.certificate.passed
    assert f"claimed_{field}_rel" in ver.certificate.failures


@pytest.mark.parametrize("method", ["vi", "milp", "extragradient", "best_response"])
def test_game_every_numeric_leaf_is_checked_or_listed(method):
    saved = _saved_game(method)
    listed = saved["certificate"]["details"].get(NOT_CHECKED, {})
    assert all(isinstance(v, str) and len(v) > 20 for v in listed.values())
    assert _accepted_unlisted(saved) == []


def test_game_solve_and_verify_apply_one_certificate():
    saved = _saved_game("milp")
    ver = verify(saved).certificate
    assert set(ver.residuals) == set(saved["certificate"]["residuals"])
    assert ver.tolerances == saved["certificate"]["tolerances"]


# ----------------------------------------------------------------------------------- cournot
def _saved_cournot(name="cournot-sellers"):
    f = get_formulation(name)
    r = f.solve(f.instance({"model": "symmetric", "sellers": 3, "a": 10, "b": 1, "c": 1}))
    assert r.certified
    return json.loads(r.to_json())


def test_cournot_claims_equal_the_closed_form():
    """n sellers, price a − bQ, cost c: q = (a − c)/(b(n + 1)) = 9/4 each, Q = 27/4."""
    saved = _saved_cournot()
    q, Q = 9 / 4, 27 / 4
    assert [r["output"] for r in saved["sellers"]] == [pytest.approx(q, rel=1e-6)] * 3
    assert saved["markets"][0]["quantity"] == pytest.approx(Q, rel=1e-6)
    assert saved["consumer_surplus"] == pytest.approx(Q * Q / 2, rel=1e-6)
    assert saved["total_profit"] == pytest.approx(3 * (10 - Q - 1) * q, rel=1e-6)
    assert saved["welfare"] == pytest.approx(Q * Q / 2 + 3 * (10 - Q - 1) * q, rel=1e-6)


@pytest.mark.parametrize("name", ["cournot-sellers", "cournot-sellers-kkt"])
def test_cournot_every_numeric_leaf_is_checked_or_listed(name):
    assert _accepted_unlisted(_saved_cournot(name)) == []


# ----------------------------------------------------------------------------------- auction
def test_auction_multiplier_of_an_uncapped_buyer_must_be_zero():
    """μ_i prices buyer i's demand cap; a buyer without one has no such constraint (infinite slack),
    so complementarity forces μ_i = 0 — a claimed μ_i = 1e-3 was accepted before."""
    f = get_formulation("auction-welfare")
    market = json.loads((EXAMPLES / "auction_market.json").read_text())
    saved = json.loads(f.solve(f.instance_from_dict(market), "highs").to_json())
    M = market_arrays(f.instance_from_dict(saved["instance"]))
    capped = {str(b) for b, d in zip(M.buyers, M.demand, strict=True) if np.isfinite(d)}
    uncapped = [i for i, r in enumerate(saved["buyers"]) if str(r["buyer"]) not in capped]
    assert uncapped and all(saved["buyers"][i]["mu"] == 0 for i in uncapped)
    assert verify(saved).certificate.passed
    for i in uncapped:
        bad = copy.deepcopy(saved)
        bad["buyers"][i]["mu"] = 1e-3
        assert not verify(bad).certificate.passed, saved["buyers"][i]["buyer"]


# ----------------------------------------------------------------------------------- generic
def test_sections_outside_the_solution_are_listed_as_not_checked():
    f = get_formulation("auction-welfare")
    saved = json.loads(f.solve(f.instance({"market": "example1"}), "highs").to_json())
    listed = verify(saved).certificate.details[NOT_CHECKED]
    assert {"certificate", "timings", "meta"} <= set(listed)
    assert all(len(listed[k]) > 20 for k in ("certificate", "timings", "meta"))


@pytest.mark.parametrize("method", ["optimum", "kkt", "psp"])
def test_auction_cli_and_verify_apply_the_same_residuals(cli, tmp_path, method):
    """`auction solve --method psp` added `objective` after its certificate: verify compared it, the
    saved certificate did not (one answer, two certificates)."""
    out = tmp_path / "r.json"
    code, _, err = cli(
        "auction", "solve", "--graph", EXAMPLES / "auction_market.json", "--method", method, "--out", out
    )
    assert code == 0, err
    saved = json.loads(out.read_text())
    ver = verify(saved).certificate
    assert set(ver.residuals) == set(saved["certificate"]["residuals"])
    assert ver.tolerances == saved["certificate"]["tolerances"]
