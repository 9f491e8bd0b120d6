"""Bad arguments to the public entry points of ``datamarkets.__all__`` raise InvalidInputError (issue 11).

Found by the audit: NaN or negative tolerances were accepted (``solve_welfare(tol=nan)`` answered
``infeasible_or_unbounded`` for a feasible market, ``tol=-1`` certified nothing), time limits of NaN
were ignored and -1 gave a ``time_limit`` status, wrong types failed deep inside with AttributeError,
TypeError or a numpy ValueError, and counts such as ``max_iter=-1`` or ``enumerate=1.5`` ran anyway.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import datamarkets as dm
from datamarkets import InvalidInputError

NAN = float("nan")
DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


@pytest.fixture(scope="module")
def market():
    from datamarkets.graphs.market import example1_market

    return example1_market()


@pytest.fixture(scope="module")
def two_firm():
    from datamarkets.graphs.estimation_market import two_firm_example

    return two_firm_example(0.3)


@pytest.fixture(scope="module")
def game():
    from datamarkets.formulations.games import LQGame

    return LQGame.from_dict(json.loads((DATA / "game.json").read_text()))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"tol": NAN}, "tol must be a finite number > 0"),
        ({"tol": -1}, "tol must be a finite number > 0"),
        ({"tol": "x"}, "tol must be a finite number > 0"),
        ({"certify_tol": NAN}, "certify_tol"),
        ({"time_limit": NAN}, "time_limit must be a number of seconds > 0"),
        ({"time_limit": -1}, "time_limit must be a number of seconds > 0"),
        ({"time_limit": "2"}, "time_limit must be a number of seconds > 0"),
    ],
)
def test_solve_welfare(market, kw, match):
    with pytest.raises(InvalidInputError, match=match):
        dm.solve_welfare(market, **kw)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"safety": NAN}, "safety"),
        ({"big_m": -1}, "big_m"),
        ({"mip_tol": -1}, "mip_tol"),
        ({"time_limit": NAN}, "time_limit"),
        ({"objective": "bogus"}, "unknown objective 'bogus'"),
    ],
)
def test_solve_kkt(market, kw, match):
    with pytest.raises(InvalidInputError, match=match):
        dm.solve_kkt(market, **kw)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"tol": NAN}, "tol"),
        ({"active_tol": -1}, "active_tol"),
        ({"welfare_bound": "x"}, "welfare_bound must be a number"),
        ({"welfare_bound": NAN}, "welfare_bound must be a finite number"),
        ({"optimum": "x"}, "optimum must be a Result"),
    ],
)
def test_certify_allocation(market, kw, match):
    with pytest.raises(InvalidInputError, match=match):
        dm.certify_allocation(market, [{"buyer": "A", "seller": "S1", "amount": 0.5}], **kw)


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"collapse_margin": NAN}, "collapse_margin"), ({"rtol": -1}, "rtol")],
)
def test_solve_gne(two_firm, kw, match):
    with pytest.raises(InvalidInputError, match=match):
        dm.solve_gne(two_firm, **kw)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"rtol": NAN}, "rtol"),
        ({"method": "gmres", "max_iter": -1}, "max_iter must be an integer >= 1"),
        ({"method": "gmres", "max_iter": 1.5}, "max_iter must be an integer >= 1"),
        ({"method": "gmres", "x0": np.ones(99)}, "x0 must hold"),
        ({"method": "gmres", "x0": np.full(4, NAN)}, "x0 must hold"),
        ({"rhs": np.ones(99)}, "rhs must hold"),
        ({"rhs": "x"}, "rhs must be numeric"),
    ],
)
def test_solve_leontief(two_firm, kw, match):
    with pytest.raises(InvalidInputError, match=match):
        dm.solve_leontief(two_firm, **kw)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"tol": NAN}, "tol"),
        ({"monotone_tol": NAN}, "monotone_tol"),
        ({"method": "milp", "enumerate": 1.5}, "enumerate must be an integer >= 0"),
        ({"method": "best_response", "max_iter": -1}, "max_iter must be an integer >= 1"),
        ({"method": "best_response", "max_iter": "x"}, "max_iter must be an integer >= 1"),
        ({"method": "best_response", "x0": [NAN, 0.0, 0.0]}, "x0 must hold 3 finite numbers"),
        ({"method": "best_response", "x0": "abc"}, "x0 must be numeric"),
        ({"method": "milp", "fixed_big_m": NAN}, "fixed_big_m"),
        ({"method": "milp", "fixed_big_m": -1}, "fixed_big_m"),
    ],
)
def test_solve_game(game, kw, match):
    with pytest.raises(InvalidInputError, match=match):
        dm.solve_game(game, **kw)


def test_games_need_a_game(game):
    with pytest.raises(InvalidInputError, match="game must be an LQGame"):
        dm.solve_game("abc")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="game must be an LQGame"):
        dm.certify_game({"Q": []}, [1.0])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="multipliers must be"):
        dm.certify_game(game, [1.0, 1.0, 1.0], "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="tol"):
        dm.certify_game(game, [1.0, 1.0, 1.0], tol=-1)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"max_rounds": 1.5}, "max_rounds must be an integer >= 1"),
        ({"start_epsilon": NAN}, "start_epsilon"),
        ({"start_epsilon": -1}, "start_epsilon"),
    ],
)
def test_psp_dynamics(market, kw, match):
    with pytest.raises(InvalidInputError, match=match):
        dm.psp_dynamics(market, **kw)


def test_result_verify_generate_and_models():
    from datamarkets.graphs.estimation_market import two_firm_example
    from datamarkets.models.chain_simulation import simulate
    from datamarkets.models.chain_valuations import paper_model

    with pytest.raises(InvalidInputError, match="unknown result status 'bogus'"):
        dm.Result(kind="k", status="bogus", method="m")  # type: ignore[arg-type]
    assert dm.Result(kind="k", status="optimal", method="m").status is dm.Status.OPTIMAL  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="a saved result"):
        dm.verify(5)  # type: ignore[arg-type]
    f = dm.get_formulation("auction-welfare")
    for size, seed, match in [("x", 0, "size must be an integer"), (1.5, 0, "size"), (5, "x", "seed")]:
        with pytest.raises(InvalidInputError, match=match):
            f.generate(size, seed)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="seed"):
        dm.get_formulation("gne").generate(5, -1)
    with pytest.raises(InvalidInputError, match="non-numeric position"):
        two_firm_example("0.3")  # type: ignore[arg-type]
    g = paper_model("paper-1", 2, "ave")
    with pytest.raises(InvalidInputError, match="eq must be a ChainEquilibrium"):
        simulate(g, "x", samples=10)  # type: ignore[arg-type]


def test_shared_checks():
    from datamarkets.validation import check_integer, check_tolerances

    check_tolerances(a=1e-9, b=None)
    with pytest.raises(InvalidInputError, match="b must be a finite number > 0"):
        check_tolerances(a=1.0, b=float("inf"))
    assert check_integer(np.int64(3), "k", 1) == 3
    for bad in (True, 2.0, "3", 0):
        with pytest.raises(InvalidInputError, match="k must be an integer >= 1"):
            check_integer(bad, "k", 1)
