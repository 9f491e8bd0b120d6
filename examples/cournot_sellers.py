r"""Cournot competition among data sellers on a bipartite graph — a complete formulation plug-in.

This module and its three siblings are the end product of ``docs/writing-a-formulation.md``; read
them side by side. This one holds the plug-in classes (:class:`CournotSellers`,
:class:`CournotSellersKKT`, registered as entry points) and re-exports the public names of the
others: ``cournot_sellers_model`` (data, validation, the maths), ``cournot_sellers_programs``
(QP, KKT MILP, best-response iteration) and ``cournot_sellers_certificate`` (solution writer and
certificate).
It is the advanced, hand-derived version: the short version of the same game on the generic games
layer (players' costs → ``lq_game``, one line to make the plug-in ``cournot-game``) is
``examples/cournot_games.py``.

Model
-----
Sellers ``s`` (nodes with ``role="seller"``) sell into markets ``b`` (nodes with ``role="buyer"``)
along the edges of an undirected bipartite :class:`networkx.Graph`. Seller ``s`` chooses a quantity
``q_sb ≥ 0`` on each of its edges; market ``b`` clears at the linear inverse demand price::

    P_b(Q_b) = a_b − b_b Q_b,        Q_b = Σ_s q_sb            (a_b > 0, b_b > 0)

and seller ``s``, with total sales ``q_s = Σ_b q_sb``, cost ``C_s(q) = c_s q + d_s q²/2``
(``c_s, d_s ≥ 0``) and capacity ``k_s ≥ 0`` (``inf`` when absent), maximises its profit::

    π_s(q) = Σ_b P_b(Q_b) q_sb − C_s(q_s)    subject to  q_sb ≥ 0,  q_s ≤ k_s.

The game is an exact *potential game* (Monderer & Shapley 1996): with ::

    Φ(q) = Σ_b [a_b Q_b − (b_b/2)(Q_b² + Σ_s q_sb²)] − Σ_s C_s(q_s)

``∂Φ/∂q_sb = ∂π_s/∂q_sb = a_b − b_b(Q_b + q_sb) − c_s − d_s q_s`` and each seller's constraints
involve only its own quantities, so the Nash equilibria are exactly the maximisers of ``Φ`` over
the product of the sellers' feasible sets. ``Φ`` is strictly concave, hence the equilibrium is
unique. It is computed three ways:

``build_qp`` (solvers ``clarabel``, ``highs``, ``osqp``, ``scs``)
    The concave QP ``max Φ`` in cvxpy, vectorised with sparse incidence matrices. (ECOS is left
    out: through cvxpy's cone reformulation of the squares it reached only ~1e-5 relative
    accuracy here, short of the certificate's 1e-6.)
``build_kkt_model`` (formulation ``cournot-sellers-kkt``; solvers ``highs``, ``cbc``, ``glpk``)
    The KKT conditions of every seller as a mixed-integer *feasibility* program in Pyomo: with
    marginal profit ``m_sb`` and capacity multiplier ``λ_s``, ::

        0 ≤ q_sb ⟂ λ_s − m_sb ≥ 0,        0 ≤ λ_s ⟂ k_s − q_s ≥ 0,

    each complementarity pair switched by a binary with big-M bounds derived from the data.
``best_response_iteration`` (solver ``direct``)
    Gauss–Seidel best responses, each in closed form (:func:`best_response`). A best response
    maximises ``Φ`` over one seller's block, so this is block-coordinate ascent on a strictly
    concave quadratic and converges.

:func:`certify_cournot` checks a solution from the instance and the quantities alone: feasibility,
the KKT residuals above (``λ_s`` recovered from the quantities) and every seller's best-response
gap, all relative to the data's price and quantity scales.

Isolated nodes are allowed (a seller without markets sells nothing; a market without sellers has
price ``a_b``); a graph needs at least one seller–buyer edge.

References
----------
Monderer, D. and Shapley, L. S. (1996). Potential games. *Games and Economic Behavior* 14, 124–143.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import networkx as nx
import numpy as np

from datamarkets import __version__
from datamarkets.errors import GraphError, InvalidInputError, SolverError
from datamarkets.examples.cournot_sellers_certificate import (
    CERTIFY_TOL,
    CournotResult,
    best_response_gaps,
    capacity_prices,
    certify_cournot,
    cournot_solution,
    quantity_vector,
)
from datamarkets.examples.cournot_sellers_model import (
    BUYER_ATTRS,
    SELLER_ATTRS,
    CournotArrays,
    best_response,
    cournot_arrays,
    marginal_profits,
    potential,
    random_cournot_graph,
    seller_profits,
    symmetric_cournot_equilibrium,
    symmetric_cournot_graph,
    validate_cournot_graph,
)
from datamarkets.examples.cournot_sellers_programs import (
    CournotProgram,
    best_response_iteration,
    build_kkt_model,
    build_qp,
    kkt_bounds,
    polish_active_set,
)
from datamarkets.formulation import DIRECT, Formulation, check_params
from datamarkets.result import Certificate
from datamarkets.solvers import PYOMO_NAMES, require_solver, solve_pyomo
from datamarkets.status import StatusGroup, status_from_cvxpy

__all__ = [
    "BUYER_ATTRS",
    "CERTIFY_TOL",
    "SELLER_ATTRS",
    "CournotArrays",
    "CournotProgram",
    "CournotResult",
    "CournotSellers",
    "CournotSellersKKT",
    "best_response",
    "best_response_gaps",
    "best_response_iteration",
    "build_kkt_model",
    "build_qp",
    "capacity_prices",
    "certify_cournot",
    "cournot_arrays",
    "cournot_solution",
    "kkt_bounds",
    "marginal_profits",
    "polish_active_set",
    "potential",
    "quantity_vector",
    "random_cournot_graph",
    "seller_profits",
    "symmetric_cournot_equilibrium",
    "symmetric_cournot_graph",
    "validate_cournot_graph",
]

# ----------------------------------------------------------------------------- 6. formulation
_MODEL_KEYS = {
    "random": ("size", "seed", "markets", "links", "capacity_share"),
    "symmetric": ("sellers", "a", "b", "c", "d", "capacity"),
    "graph": ("graph",),
}

_CVXPY = {"clarabel": "CLARABEL", "highs": "HIGHS", "osqp": "OSQP", "scs": "SCS"}


def _osqp_polish() -> str:
    """OSQP ≥ 1.0 renamed its ``polish`` setting to ``polishing``."""
    import osqp

    major = int(str(getattr(osqp, "__version__", "0")).split(".")[0] or 0)
    return "polishing" if major >= 1 else "polish"


def _cvxpy_options(solver: str, time_limit: float | None) -> dict[str, Any]:
    """Tight tolerances: the certificate asks for 1e-6 relative residuals."""
    opts: dict[str, Any] = {
        "clarabel": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
        "highs": {"qp_regularization_value": 0.0},  # the Hessian is positive definite
        "osqp": {"eps_abs": 1e-10, "eps_rel": 1e-10, _osqp_polish(): True, "max_iter": 200_000},
        "scs": {"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iters": 200_000},
    }[solver]
    if time_limit is not None and solver in ("clarabel", "highs", "scs"):
        opts["time_limit" if solver != "scs" else "time_limit_secs"] = float(time_limit)
    return opts


def _as_number(name: str, value: Any, kind: type = float) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"parameter {name!r} must be a number, got {value!r}") from exc


class CournotSellers(Formulation):
    """Cournot equilibrium of data sellers on a bipartite graph, as the potential-game QP.

    Parameters accepted by :meth:`instance`: ``model="random"`` (``size`` sellers, ``seed``,
    ``markets`` = size/5, ``links`` = 2 markets per seller, ``capacity_share`` = 0.3; see
    :func:`random_cournot_graph`), ``model="symmetric"`` (``sellers``, ``a``, ``b``, ``c``, ``d``,
    ``capacity``; :func:`symmetric_cournot_graph`) or ``model="graph"`` (``graph``: a
    :class:`networkx.Graph` or its node-link dict). Solvers: the QP by Clarabel, HiGHS, OSQP or
    SCS (through cvxpy), or ``"direct"`` best-response iteration.

    Examples
    --------
    >>> f = CournotSellers()
    >>> r = f.solve(f.instance({"model": "symmetric", "sellers": 2, "a": 10, "b": 1, "c": 1}))
    >>> r.certified, round(r.solution["markets"][0]["price"], 6)
    (True, 4.0)
    """

    name = "cournot-sellers"
    summary = "Cournot competition among data sellers on a bipartite graph (potential-game QP)"
    kinds = ("cournot-equilibrium",)
    solvers: ClassVar[tuple[str, ...]] = ("clarabel", "highs", "osqp", "scs", DIRECT)
    size_meaning = "sellers (markets = sellers/5, 2 markets per seller, 30% of sellers capacitated)"
    objective_sense = "max"  # the potential Φ is maximised: benchmarks measure gaps to the largest
    parameters: ClassVar[dict[str, Any]] = {
        "model": "random",
        "size": 20,
        "seed": 0,
        "markets": None,
        "links": 2,
        "capacity_share": 0.3,
        "sellers": 3,
        "a": 10.0,
        "b": 1.0,
        "c": 1.0,
        "d": 0.0,
        "capacity": None,
        "graph": None,
    }

    # ------------------------------------------------------------------ data
    def instance(self, params: Mapping[str, Any]) -> nx.Graph:
        """A validated market graph from parameters (see the class docstring).

        Raises
        ------
        InvalidInputError
            Unknown model, a parameter of another model, a bad number; :class:`GraphError` for a
            bad graph.
        """
        model = str(params.get("model", "graph" if "graph" in params else "random")).lower()
        if model not in _MODEL_KEYS:
            raise InvalidInputError(f"unknown model {params.get('model')!r}; choose {', '.join(_MODEL_KEYS)}")
        foreign = sorted(set(params) - {"model", *_MODEL_KEYS[model]} & set(self.parameters))
        if foreign:
            raise InvalidInputError(
                f"parameter(s) {', '.join(map(repr, foreign))} do not apply to model {model!r}"
            )
        p = check_params(self.name, params, self.parameters)
        if model == "graph":
            g = p["graph"]
            if g is None:
                raise InvalidInputError("model 'graph' needs a 'graph' parameter")
            return self.instance_from_dict(g) if isinstance(g, Mapping) else validate_cournot_graph(g)
        if model == "symmetric":
            cap = None if p["capacity"] is None else _as_number("capacity", p["capacity"])
            abcd = {key: _as_number(key, p[key]) for key in ("a", "b", "c", "d")}
            return symmetric_cournot_graph(_as_number("sellers", p["sellers"], int), capacity=cap, **abcd)
        G = random_cournot_graph(
            _as_number("size", p["size"], int),
            _as_number("seed", p["seed"], int),
            markets=None if p["markets"] is None else _as_number("markets", p["markets"], int),
            links=_as_number("links", p["links"], int),
            capacity_share=_as_number("capacity_share", p["capacity_share"]),
        )
        return validate_cournot_graph(G)

    def instance_to_dict(self, instance: nx.Graph) -> dict[str, Any]:
        """Node-link JSON (``nodes`` with ``id`` and attributes, ``edges`` with ``source``/``target``);
        an infinite capacity is written by leaving ``capacity`` out."""
        G = validate_cournot_graph(instance)
        nodes = [
            {"id": n, **{k: v for k, v in data.items() if not (k == "capacity" and math.isinf(v))}}
            for n, data in G.nodes(data=True)
        ]
        edges = [{"source": u, "target": v} for u, v in G.edges()]
        return {"directed": False, "multigraph": False, "graph": {}, "nodes": nodes, "edges": edges}

    def instance_from_dict(self, d: Mapping[str, Any]) -> nx.Graph:
        """Inverse of :meth:`instance_to_dict` (``links`` is accepted for ``edges``, as older
        networkx wrote it).

        Raises
        ------
        InvalidInputError
            Not a node-link dict; :class:`GraphError` for a bad graph.
        """
        edges = d.get("edges", d.get("links")) if isinstance(d, Mapping) else None
        if not isinstance(d, Mapping) or not isinstance(d.get("nodes"), list) or not isinstance(edges, list):
            raise InvalidInputError("a cournot-sellers instance is a node-link dict with 'nodes' and 'edges'")
        if d.get("directed") or d.get("multigraph"):
            raise GraphError("a Cournot market is an undirected simple graph (directed/multigraph given)")
        G = nx.Graph()
        for node in d["nodes"]:
            if not isinstance(node, Mapping) or "id" not in node:
                raise InvalidInputError(f"node entry {node!r} has no 'id'")
            G.add_node(node["id"], **{k: v for k, v in node.items() if k != "id"})
        for edge in edges:
            if not isinstance(edge, Mapping) or not {"source", "target"} <= set(edge):
                raise InvalidInputError(f"edge entry {edge!r} needs 'source' and 'target'")
            u, v = edge["source"], edge["target"]
            for end in (u, v):
                if end not in G:
                    raise GraphError(f"edge {(u, v)!r} names unknown node {end!r}")
            G.add_edge(u, v, **{k: x for k, x in edge.items() if k not in ("source", "target")})
        return validate_cournot_graph(G)

    # --------------------------------------------------------------- program
    def build(self, instance: nx.Graph, solver: str) -> CournotProgram:
        """The QP of :func:`build_qp`, or only the arrays for the direct algorithm."""
        A = cournot_arrays(instance)
        if solver == DIRECT:
            return CournotProgram(A, "direct")
        return CournotProgram(A, "qp", build_qp(A))

    def solve_program(
        self, program: CournotProgram, solver: str, *, time_limit: float | None = None
    ) -> CournotResult:
        """Solve the QP (cvxpy) or run best-response iteration; write the solution."""
        A = program.arrays
        if program.route == "direct":
            q, sweeps, status = best_response_iteration(A, time_limit=time_limit)
            res = CournotResult("cournot-equilibrium", status, "best-response", cournot_solution(A, q))
            res.solution["iterations"] = sweeps
            res.meta["solvers"] = {"datamarkets-best-response": __version__}
            return res
        import cvxpy as cp

        version = require_solver(solver)
        prob, q_var = program.model
        try:
            prob.solve(solver=_CVXPY[solver], **_cvxpy_options(solver, time_limit))
        except cp.error.SolverError as exc:
            raise SolverError(f"cvxpy/{solver} failed on the Cournot QP: {exc}") from exc
        status = status_from_cvxpy(prob.status)
        solution = cournot_solution(A, np.maximum(q_var.value, 0.0)) if status.has_solution else {}
        res = CournotResult("cournot-equilibrium", status, f"qp-{solver}", solution)
        res.meta["solvers"] = {solver: version, "cvxpy": cp.__version__}
        return res

    def certify(self, instance: nx.Graph, solution: Mapping[str, Any]) -> Certificate:
        """:func:`certify_cournot`: KKT residuals and best-response gaps from the quantities."""
        return certify_cournot(instance, solution)


class CournotSellersKKT(CournotSellers):
    """The same equilibrium from its KKT conditions, as a mixed-integer program (small instances).

    Examples
    --------
    >>> f = CournotSellersKKT()
    >>> r = f.solve(f.instance({"model": "symmetric", "sellers": 2, "a": 10, "b": 1, "c": 1}))
    >>> r.certified, r.method, round(r.solution["quantities"][0]["quantity"], 6)
    (True, 'kkt-milp', 3.0)
    """

    name = "cournot-sellers-kkt"
    summary = "Cournot competition among data sellers: KKT conditions as a big-M MILP"
    solvers = ("highs", "cbc", "glpk")
    size_meaning = "sellers (markets = sellers/5, 2 markets per seller; a MILP: keep ≲ 40)"

    def build(self, instance: nx.Graph, solver: str) -> CournotProgram:
        """The Pyomo model of :func:`build_kkt_model`."""
        A = cournot_arrays(instance)
        return CournotProgram(A, "kkt", build_kkt_model(A))

    def solve_program(
        self, program: CournotProgram, solver: str, *, time_limit: float | None = None
    ) -> CournotResult:
        """Solve the MILP, then solve the KKT equations exactly on its active set."""
        import pyomo.environ as pyo

        A, m = program.arrays, program.model
        limit = {"highs": "time_limit", "cbc": "sec", "glpk": "tmlim"}[solver]
        # CBC 2.10's preprocessing can call a feasible big-M system infeasible (seen on the auction
        # KKT MILP): switch it off
        per_solver: dict[str, dict[str, Any]] = {
            "highs": {"mip_feasibility_tolerance": 1e-9},
            "cbc": {"preprocess": "off"},
        }
        options = per_solver.get(solver, {})
        time_limit = 120.0 if time_limit is None else time_limit  # MILPs grow fast: a limit is a result
        options[limit] = float(time_limit) if solver != "glpk" else max(1, math.ceil(time_limit))
        info = solve_pyomo(m, PYOMO_NAMES[solver], options=options)
        if info.status.group is StatusGroup.INFEASIBLE_OR_UNBOUNDED:  # a valid market has a KKT point
            raise SolverError(
                f"{solver} calls the Cournot KKT MILP {info.status.value}: the big-Ms cut it off"
            )
        res = CournotResult("cournot-equilibrium", info.status, "kkt-milp")
        res.meta["solvers"] = {solver: info.solver_version}
        if not info.status.has_solution:
            return res
        q = np.array([pyo.value(m.q[e]) for e in range(A.n_edges)], dtype=float)
        on = np.array([pyo.value(m.on[e]) > 0.5 for e in range(A.n_edges)])
        bind = np.zeros(len(A.sellers), dtype=bool)
        for s in m.C:
            bind[s] = pyo.value(m.bind[s]) > 0.5
        polished = polish_active_set(A, on, bind)
        res.certificate.details["polished"] = polished is not None
        if polished is not None:
            res.certificate.details["milp_polish_max_change"] = float(
                np.max(np.abs(polished - q), initial=0.0)
            )
            q = polished
        res.solution = cournot_solution(A, np.maximum(q, 0.0))
        return res
