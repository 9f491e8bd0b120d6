"""Chain game data: mechanisms (Def. 2.5/2.6, §2.2, §5.1), validation, JSON, paper models (§5.1)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datamarkets.errors import InvalidInputError, MechanismError
from datamarkets.models.chain_game import (
    MAX_TRADES,
    VALUE_LIMIT,
    ChainGame,
    ave_mechanism,
    load_game,
    mechanism_from_spec,
    raw_mechanism,
    tbds_mechanism,
    validate_mechanism,
)
from datamarkets.models.chain_valuations import five_neighbour_walk, paper_model


def tiny(**kw):
    d = dict(values=[0.0, 1.0], start=0, Q=[[[0.5, 0.5], [0.0, 1.0]]], t=[[1.0, 0.0]])
    d.update(kw)
    return ChainGame(d["values"], d["start"], d["Q"], d["t"])


# ---------------------------------------------------------------- mechanisms
@pytest.mark.parametrize("n", [1, 2, 5])
def test_raw_ave_tbds_match_definitions(n):
    raw, ave = raw_mechanism(n), ave_mechanism(n)
    for i in range(1, n + 1):
        for j in range(n + 1):
            assert raw[i - 1, j] == (1.0 if j == i - 1 else 0.0)
            assert ave[i - 1, j] == pytest.approx(1.0 / i if j < i else 0.0, abs=1e-15)
    for alpha in (0.0, 0.3, 1.0):
        tb = tbds_mechanism(n, alpha)
        for i in range(1, n + 1):
            assert tb[i - 1, 0] == pytest.approx(alpha ** (i - 1))
            for j in range(1, i):
                assert tb[i - 1, j] == pytest.approx((1 - alpha) * alpha ** (i - j - 1))
            assert tb[i - 1].sum() == pytest.approx(1.0)  # budget balanced
    np.testing.assert_array_equal(tbds_mechanism(n, 0.0), raw)  # TBDS(0) = RAW


def tbds_by_cascade(n, alpha):
    """TBDS from the prose of §2.2, not the printed formula: the seller of trade i receives the
    price, passes an α fraction to its own upstream seller, who passes α of that on, and so on;
    player 0 has no upstream seller and keeps everything that reaches it."""
    t = np.zeros((n, n + 1))
    for i in range(1, n + 1):
        amount = 1.0
        for j in range(i - 1, 0, -1):  # seller i-1 first, then i-2, ...
            t[i - 1, j] = (1 - alpha) * amount
            amount *= alpha
        t[i - 1, 0] = amount
    return t


@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_tbds_printed_formula_matches_its_prose(alpha):
    n = 6
    np.testing.assert_allclose(tbds_mechanism(n, alpha), tbds_by_cascade(n, alpha), rtol=0, atol=1e-15)
    np.testing.assert_allclose(tbds_mechanism(n, alpha).sum(axis=1), 1.0, atol=1e-15)  # budget balanced


def test_mechanism_from_spec_forms():
    np.testing.assert_array_equal(mechanism_from_spec("RAW", 3), raw_mechanism(3))
    np.testing.assert_array_equal(mechanism_from_spec("ave", 3), ave_mechanism(3))
    np.testing.assert_array_equal(mechanism_from_spec({"tbds": 0.4}, 3), tbds_mechanism(3, 0.4))
    np.testing.assert_array_equal(mechanism_from_spec("tbds:0.4", 3), tbds_mechanism(3, 0.4))
    m = [[1, 0], [0, 0]]
    assert mechanism_from_spec([[0.5, 0.0]], 1).tolist() == [[0.5, 0.0]]
    with pytest.raises(InvalidInputError, match="shape"):
        mechanism_from_spec(m, 2)


@pytest.mark.parametrize(
    ("spec", "exc", "msg"),
    [
        ("bogus", InvalidInputError, "unknown mechanism"),
        ({"alpha": 1}, InvalidInputError, "tbds"),
        ({"tbds": 1.5}, MechanismError, r"\[0, 1\]"),
        ({"tbds": "x"}, MechanismError, "number"),
        ("tbds:x", InvalidInputError, "number"),
        ([[1.0, 0.0], [0.6, 0.6, 0.0]], InvalidInputError, "numeric"),
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0, 0, 0]], InvalidInputError, "shape"),
        ([[float("nan"), 0.0, 0.0], [0.0, 1.0, 0.0]], InvalidInputError, "trade 1"),
        ([[1.0, 0.0, 0.0], [-0.1, 1.0, 0.0]], MechanismError, "negative"),
        ([[1.0, 0.0, 0.0], [0.6, 0.6, 0.0]], MechanismError, "Def. 2.5.*trade 2"),
        ([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]], MechanismError, "Def. 2.6.*trade 2.*player 2"),
        ([[0.5, 0.1, 0.0], [0.0, 1.0, 0.0]], MechanismError, "Def. 2.6.*trade 1.*player 1"),
    ],
)
def test_mechanism_errors(spec, exc, msg):
    with pytest.raises(exc, match=msg):
        mechanism_from_spec(spec, 2)


def test_bad_n():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidInputError, match="positive integer"):
            raw_mechanism(bad)
    with pytest.raises(InvalidInputError, match="supported maximum"):
        raw_mechanism(MAX_TRADES + 1)
    d = {"values": [0, 1], "start": 0, "transitions": [[1, 0], [0, 1]], "n": 10**11}
    with pytest.raises(InvalidInputError, match="supported maximum"):  # was numpy's ValueError
        ChainGame.from_dict(d)


def test_tbds_rejects_bool_alpha():
    with pytest.raises(MechanismError, match="number"):
        mechanism_from_spec({"tbds": True}, 2)  # True is not the number 1 in a JSON file


def test_values_that_would_overflow_are_rejected():
    big = VALUE_LIMIT / 9 * 1.01  # n = 2: (n + 1)^2 = 9
    with pytest.raises(InvalidInputError, match="too large"):
        ChainGame([-big, 0.0, big], 1, [[[1 / 3] * 3] * 3] * 2, raw_mechanism(2))
    ok = VALUE_LIMIT / 9 * 0.99
    g = ChainGame([-ok, 0.0, ok], 1, [[[1 / 3] * 3] * 3] * 2, ave_mechanism(2))
    from datamarkets.models.chain_equilibrium import solve_equilibrium

    with np.errstate(over="raise", invalid="raise"):
        eq = solve_equilibrium(g)
    assert np.all(np.isfinite(eq.thresholds)) and np.isfinite(eq.social_welfare)


def test_validate_mechanism_tolerates_roundoff():
    t = validate_mechanism([[1.0 + 1e-12, 0.0]], 1)
    assert not t.flags.writeable


# ---------------------------------------------------------------- game validation
def test_game_basic_and_readonly():
    g = tiny()
    assert (g.n, g.L) == (1, 2)
    assert g.start.tolist() == [1.0, 0.0]
    for a in (g.values, g.start, g.Q, g.t):
        assert not a.flags.writeable
    g2 = tiny(start=[0.25, 0.75])
    assert g2.start.tolist() == [0.25, 0.75]
    assert g.with_mechanism([[0.5, 0.0]]).t.tolist() == [[0.5, 0.0]]


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"values": [1.0, 1.0]}, r"strictly increasing: w\[0\]"),
        ({"values": [1.0, 0.0]}, "strictly increasing"),
        ({"values": [0.0, float("inf")]}, r"w\[1\] is not finite"),
        ({"values": []}, "non-empty"),
        ({"values": [[0.0, 1.0]]}, "1-D"),
        ({"values": ["a", "b"]}, "numeric"),
        ({"start": 2}, "out of range"),
        ({"start": True}, "index or a probability"),
        ({"start": "0"}, "index or a probability"),
        ({"start": [1.0]}, "shape"),
        ({"start": [0.5, 0.6]}, "sums to"),
        ({"start": [1.5, -0.5]}, "negative probability at index 1"),
        ({"start": [float("nan"), 1.0]}, "NaN"),
        ({"Q": [[0.5, 0.5], [0.0, 1.0]]}, "shape"),
        ({"Q": [[[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]]]}, "shape"),
        ({"Q": [[[0.5, 0.6], [0.0, 1.0]]]}, "trade 1: row 0 sums"),
        ({"Q": [[[0.5, 0.5], [-0.5, 1.5]]]}, "trade 1 has a negative probability at row 1, col 0"),
        ({"Q": [[[0.5, float("nan")], [0.0, 1.0]]]}, "non-finite entry at row 0, col 1"),
        ({"Q": np.zeros((0, 2, 2)), "t": np.zeros((0, 1))}, "at least one trade"),
    ],
)
def test_game_invalid_input(kw, msg):
    with pytest.raises(InvalidInputError, match=msg):
        tiny(**kw)


def test_game_mechanism_error():
    with pytest.raises(MechanismError, match=r"Def\. 2\.6"):
        tiny(t=[[0.5, 0.5]])
    with pytest.raises(MechanismError, match=r"Def\. 2\.5"):
        tiny(t=[[1.5, 0.0]])


# ---------------------------------------------------------------- JSON
def test_json_round_trip_and_forms(tmp_path):
    g = paper_model("paper-2", 3, "ave")
    d = g.to_dict()
    assert d["start"] == 0 and np.asarray(d["transitions"]).shape == (7, 7)
    g2 = ChainGame.from_dict(json.loads(json.dumps(d)))
    np.testing.assert_array_equal(g2.Q, g.Q)
    np.testing.assert_array_equal(g2.t, g.t)
    # list of n matrices, start distribution, named mechanism
    Q = np.stack([g.Q[0]] * 3)
    d3 = {
        "values": g.values.tolist(),
        "start": [1 / 7] * 7,
        "transitions": Q.tolist(),
        "mechanism": {"tbds": 0.5},
    }
    g3 = ChainGame.from_dict(d3)
    assert g3.n == 3 and g3.start.sum() == pytest.approx(1.0)
    assert ChainGame.from_dict(g3.to_dict()).start.tolist() == g3.start.tolist()
    p = tmp_path / "game.json"
    p.write_text(json.dumps(d))
    assert load_game(p).n == 3


@pytest.mark.parametrize(
    ("d", "msg"),
    [
        ([1, 2], "JSON object"),
        ({"values": [0, 1], "start": 0}, "missing the key 'transitions'"),
        ({"values": [0, 1], "start": 0, "transitions": [[1, 0], [0, 1]]}, "needs 'n'"),
        (
            {"values": [0, 1], "start": 0, "transitions": [[[1, 0], [0, 1]]], "n": 2},
            "holds 1 matrices but n = 2",
        ),
        ({"values": [0, 1], "start": 0, "transitions": [1, 0], "n": 1}, "L×L or n×L×L"),
        ({"values": [0, 1], "start": 0.0, "transitions": [[1, 0], [0, 1]], "n": 1}, "integer index"),
        ({"values": [0, 1], "start": 0, "transitions": [[1, 0], [0, 1]], "n": 1, "extra": 1}, "unknown keys"),
        ({"values": [0, 1], "start": 0, "transitions": [[1, 0], [0, 1]], "n": 0}, "positive integer"),
    ],
)
def test_from_dict_errors(d, msg):
    with pytest.raises(InvalidInputError, match=msg):
        ChainGame.from_dict(d)


def test_from_dict_mechanism_error():
    d = {
        "values": [0, 1],
        "start": 0,
        "transitions": [[1, 0], [0, 1]],
        "n": 2,
        "mechanism": [[1, 0, 0], [0, 1, 1]],
    }
    with pytest.raises(MechanismError):
        ChainGame.from_dict(d)


def test_load_game_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_game(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidInputError):
        load_game(bad)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidInputError, match="UTF-8"):
        load_game(binary)
    labelled = tmp_path / "label.json"
    labelled.write_text(
        json.dumps({"values": [0, 1], "start": 0, "transitions": [[1, 0], [0, 1]], "n": 1, "label": 3})
    )
    with pytest.raises(InvalidInputError, match="label"):
        load_game(labelled)


# ---------------------------------------------------------------- paper models (§5.1)
@pytest.mark.parametrize(("n", "L"), [(5, 21), (8, 33), (12, 49)])
def test_model1_grid(n, L):
    g = paper_model("paper-1", n)
    assert g.L == L == 4 * n + 1
    k = np.arange(-2 * n, 2 * n + 1)
    np.testing.assert_allclose(g.values, np.exp(k / 2))
    assert g.values[g.start.argmax()] == 1.0 and g.start.max() == 1.0  # v_0 = w_0 = e^0


def test_models_2_4_grids_and_walk():
    n = 4
    g2, g4 = paper_model("paper-2", n), paper_model("paper-4", n)
    np.testing.assert_allclose(g2.values, np.arange(0, 2 * n + 1) / (2 * n))
    np.testing.assert_allclose(g4.values, np.arange(-2 * n, 2 * n + 1) / (2 * n))
    assert g2.values[g2.start.argmax()] == 0.0 and g4.values[g4.start.argmax()] == 0.0
    # interior rows: uniform on the five neighbours
    row = g4.Q[0, 2 * n]
    assert row[2 * n - 2 : 2 * n + 3].tolist() == [0.2] * 5 and row.sum() == pytest.approx(1.0)
    # Model 2 clips k' to [0, 2n]: from k = 0, P(k'=0) = 3/5
    assert g2.Q[0, 0, :3] == pytest.approx([0.6, 0.2, 0.2])
    r = paper_model("paper-2", n, boundary="renormalize")
    assert r.Q[0, 0, :3] == pytest.approx([1 / 3] * 3)
    assert five_neighbour_walk(1).tolist() == [[1.0]]


def test_model3_reading_is_ratio_homogeneous():
    n = 3
    g = paper_model("paper-3", n)
    assert np.all(np.diff(g.values) > 0)
    k = np.arange(-2 * n, 2 * n + 1)
    raw = np.where(k % 2 == 0, 1.0, -1.0) * np.exp(k / 2)
    np.testing.assert_allclose(np.sort(raw), g.values)
    assert g.values[g.start.argmax()] == 1.0
    # from v = w_k (interior), v'/v takes the values (-1)^d e^{d/2}, d = -2..2, each w.p. 1/5
    kk = int(np.flatnonzero(np.isclose(g.values, np.exp(1 / 2) * -1))[0])  # k = 1
    ratios = sorted(np.round(g.values[g.Q[0, kk] > 0] / g.values[kk], 12))
    assert ratios == sorted(np.round([(-1) ** d * np.exp(d / 2) for d in range(-2, 3)], 12))


@pytest.mark.parametrize(
    ("name", "n", "boundary"), [("paper-9", 3, "clip"), ("paper-1", 0, "clip"), ("1", 2, "wrap")]
)
def test_paper_model_errors(name, n, boundary):
    with pytest.raises(InvalidInputError):
        paper_model(name, n, boundary=boundary)


def test_five_neighbour_walk_errors():
    with pytest.raises(InvalidInputError):
        five_neighbour_walk(0)
