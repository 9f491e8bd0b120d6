"""Auction formulations as registered plug-ins: welfare optimum, KKT MILP, PSP auction dynamics.

``auction-welfare``
    Welfare maximisation Σ θ_i(x_i) on a market graph (:mod:`~datamarkets.formulations.welfare`);
    the supply duals are the clearing prices. Routes: Clarabel or HiGHS on sparse arrays, OSQP /
    SCS / ECOS through cvxpy, Ipopt / GLPK / CBC through Pyomo (GLPK and CBC for piecewise-linear
    valuations only).
``auction-kkt``
    The KKT conditions (36)–(38) as a big-M MILP (:mod:`~datamarkets.formulations.kkt_mpec`) on
    HiGHS, CBC or GLPK.
``auction-psp``
    The progressive second price auction dynamics (:mod:`~datamarkets.models.psp_dynamics`), a
    direct algorithm with bid fee ε.

Certificates, from the saved solution and the market only: for an allocation (welfare, KKT), the
LP of best KKT prices and the welfare gap to an independently computed optimum
(:func:`~datamarkets.formulations.auction_certificate.certify_allocation`); for PSP bids, the ε-Nash
check of every buyer's best reply (:func:`~datamarkets.formulations.auction_certificate.epsilon_nash_check`)
and the PSP allocation rule re-applied to the bids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from datamarkets.errors import InvalidInputError, SolverLimitError
from datamarkets.formulation import DIRECT, Formulation, check_params, positive_int
from datamarkets.result import Certificate, Result, Timer
from datamarkets.status import Status
from datamarkets.validation import real_number

if TYPE_CHECKING:
    from datamarkets.formulations.auction_optimum_certificate import certify_auction_optimum

__all__ = [
    "AuctionKKTFormulation",
    "AuctionPSPFormulation",
    "AuctionWelfareFormulation",
    "auction_market",
    "certify_auction_optimum",
]

_MARKET_PARAMS: dict[str, Any] = {
    "market": "random",
    "size": 100,
    "buyers": None,
    "sellers": None,
    "edges_per_buyer": 5,
    "seed": 0,
    "valuation": "quadratic",
}


def auction_market(params: Mapping[str, Any]) -> Any:
    """A market graph from parameters: ``market="random"`` (buyers = ``buyers`` or ``size``,
    sellers = ``sellers`` or max(1, buyers // 10), ``edges_per_buyer``, ``seed``, ``valuation``) or
    ``market="example1"`` (the draft's Example 1).

    Raises
    ------
    InvalidInputError
        Unknown market or bad sizes.

    Examples
    --------
    >>> G = auction_market({"market": "random", "size": 20, "seed": 1})
    >>> sum(1 for _, r in G.nodes(data="role") if r == "buyer")
    20
    """
    from datamarkets.graphs.market import (  # lazy: fast plug-in discovery
        example1_market,
        random_bipartite_market,
    )

    market = str(params.get("market", "random")).lower()
    if market == "example1":
        return example1_market()
    if market != "random":
        raise InvalidInputError(f"unknown auction market {params.get('market')!r}; choose random or example1")
    name = "auction market"
    buyers = params.get("buyers")
    nb = positive_int(
        name,
        "buyers" if buyers is not None else "size",
        buyers if buyers is not None else params.get("size", 100),
    )
    sellers = params.get("sellers")
    ns = positive_int(name, "sellers", sellers) if sellers is not None else max(1, nb // 10)
    return random_bipartite_market(
        nb,
        ns,
        positive_int(name, "edges_per_buyer", params.get("edges_per_buyer", 5)),
        seed=int(params.get("seed", 0)),
        valuation=str(params.get("valuation", "quadratic")),
    )


def __getattr__(name: str) -> Any:
    """``certify_auction_optimum`` lives in :mod:`~datamarkets.formulations.auction_optimum_certificate`
    (importing it here eagerly would load the solver stack at plug-in discovery)."""
    if name == "certify_auction_optimum":
        from datamarkets.formulations import auction_optimum_certificate as m  # lazy: fast plug-in discovery

        return m.certify_auction_optimum
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _MarketFormulation(Formulation):
    """Shared data handling of the auction formulations: node-link market graphs."""

    size_meaning = "buyers (sellers = buyers/10, 5 edges per buyer, quadratic valuations)"
    parameters: ClassVar[dict[str, Any]] = dict(_MARKET_PARAMS)
    objective_sense: ClassVar[str | None] = "max"
    certify_tol: float = 1e-6

    def instance(self, params: Mapping[str, Any]) -> Any:
        return auction_market(check_params(self.name, params, self.parameters))

    def instance_to_dict(self, instance: Any) -> dict[str, Any]:
        from datamarkets.graphs.market import (
            market_to_dict,  # lazy: fast plug-in discovery
        )

        return market_to_dict(instance)

    def instance_from_dict(self, d: Mapping[str, Any]) -> Any:
        from datamarkets.graphs.market import (
            market_from_dict,  # lazy: fast plug-in discovery
        )

        return market_from_dict(d, f"{self.name} instance")

    def objective(self, result: Result) -> float | None:
        w = result.solution.get("welfare")
        return None if w is None or not result.status.has_solution else float(w)

    def certify(self, instance: Any, solution: Mapping[str, Any]) -> Certificate:
        """:func:`~datamarkets.formulations.auction_optimum_certificate.certify_auction_optimum` at
        :attr:`certify_tol`."""
        if "allocation" not in solution:
            raise InvalidInputError(f"a {self.name} solution needs an 'allocation'")
        from datamarkets.formulations.auction_optimum_certificate import (
            certify_auction_optimum,  # lazy: fast plug-in discovery
        )

        return certify_auction_optimum(instance, solution, tol=self.certify_tol)


class AuctionWelfareFormulation(_MarketFormulation):
    """Welfare-maximising allocation of data on a market graph; duals = clearing prices.

    Examples
    --------
    Example 1 of the data-share paper: total demand 150 equals total supply, so every buyer gets its
    demand and W = 50·1 + 40·1.2 + 26·1.5 + 20·2 + 14·2.2 = 207.8:

    >>> f = AuctionWelfareFormulation()
    >>> G = f.instance({"market": "example1"})
    >>> r = f.solve(G, "highs")
    >>> r.certified, round(r.solution["welfare"], 6)
    (True, 207.8)
    """

    name = "auction-welfare"
    summary = "Welfare-maximising allocation on a market graph (QP/LP/cone), duals = prices"
    kinds = ("auction-optimum",)
    solvers = ("clarabel", "highs", "osqp", "scs", "ecos", "ipopt", "glpk", "cbc")

    def applicable_solvers(self, instance: Any) -> tuple[str, ...]:
        from datamarkets.graphs.valuations import as_valuation  # lazy: fast plug-in discovery

        # the buyers' valuation families only (build() validates and assembles the arrays once)
        kinds = {
            as_valuation(d["valuation"]).family
            for _, d in instance.nodes(data=True)
            if d.get("role") == "buyer" and d.get("valuation") is not None
        }
        if "alpha_fair" in kinds:  # exponential/power cones through cvxpy
            return ("clarabel", "scs", "ecos")
        if "quadratic" in kinds:
            return ("clarabel", "highs", "osqp", "scs", "ecos", "ipopt")
        return self.solvers

    def build(self, instance: Any, solver: str) -> Any:
        from datamarkets.formulations.welfare_backends import (
            build_welfare_cvxpy,
            build_welfare_pyomo,
        )  # lazy: fast plug-in discovery
        from datamarkets.formulations.welfare_program import (
            build_welfare_arrays,  # lazy: fast plug-in discovery
        )
        from datamarkets.formulations.welfare_solve import (
            ROUTE_SOLVERS,  # lazy: fast plug-in discovery
        )
        from datamarkets.graphs.market_data import market_arrays  # lazy: fast plug-in discovery

        M = market_arrays(instance)
        if "alpha_fair" in M.kinds():
            return {"M": M, "route": "cvxpy", "program": build_welfare_cvxpy(M)}
        if solver in ROUTE_SOLVERS["arrays"]:  # the solvers solve_welfare(method="arrays") takes
            return {"M": M, "route": "arrays", "program": build_welfare_arrays(M)}
        if solver in ("osqp", "scs", "ecos"):
            return {"M": M, "route": "cvxpy", "program": build_welfare_cvxpy(M)}
        return {"M": M, "route": "pyomo", "program": build_welfare_pyomo(M)}

    def solve_program(self, program: Any, solver: str, *, time_limit: float | None = None) -> Result:
        from datamarkets.formulations import welfare_backends as wb  # lazy: fast plug-in discovery
        from datamarkets.formulations.welfare_solve import _package  # lazy: fast plug-in discovery

        M, route, prog = program["M"], program["route"], program["program"]
        tol = 1e-10 if solver in ("clarabel", "highs", "ecos") else 1e-8
        if route == "arrays":
            solve = wb.solve_arrays_clarabel if solver == "clarabel" else wb.solve_arrays_highs
            raw = solve(prog, tol, time_limit)
        elif route == "cvxpy":
            raw = wb._solve_cvxpy(M, tol, time_limit, solver=solver, built=prog)
        else:
            raw = wb._solve_pyomo(M, time_limit, solver=solver, model=prog)
        res = _package(M, raw, f"{route}-{solver}", Timer(), 1e-6)
        res.certificate.details["solver_kkt_residuals"] = dict(res.certificate.residuals)
        res.solution["objective"] = res.solution.get("welfare")
        res.meta["solvers"] = {raw.solver: raw.version}
        return res


class AuctionKKTFormulation(_MarketFormulation):
    """The KKT conditions of welfare maximisation as a big-M MILP (complementarity by binaries).

    Examples
    --------
    >>> f = AuctionKKTFormulation()
    >>> r = f.solve(f.instance({"market": "example1"}))
    >>> r.certified, round(r.solution["welfare"], 6)
    (True, 207.8)
    """

    name = "auction-kkt"
    summary = "KKT conditions (36)-(38) of the welfare program as a big-M MILP"
    kinds = ("auction-optimum",)
    solvers = ("highs", "cbc", "glpk")
    size_meaning = "buyers (sellers = buyers/10, 5 edges per buyer; MILP: keep ≲ 200)"

    def build(self, instance: Any, solver: str) -> Any:
        from datamarkets.graphs.market_data import market_arrays  # lazy: fast plug-in discovery

        return market_arrays(instance)

    def solve_program(self, program: Any, solver: str, *, time_limit: float | None = None) -> Result:
        from datamarkets.formulations.kkt_mpec import (
            solve_kkt,  # lazy: fast plug-in discovery
        )

        limit = 120.0 if time_limit is None else time_limit
        try:
            res = solve_kkt(program, solver=solver, time_limit=limit)
        except SolverLimitError as exc:  # a limit is a result, not a crash
            return Result(
                self.kinds[0],
                Status.TIME_LIMIT,
                f"kkt-milp-{solver}",
                {"welfare": None, "allocation": [], "objective": None},
                meta={"solvers": {solver: "unknown"}, "message": str(exc), "time_limit": limit},
            )
        res.certificate.details["solver_kkt_residuals"] = dict(res.certificate.residuals)
        res.solution["objective"] = res.solution.get("welfare")
        res.timings = {"inner_build_seconds": res.timings.get("build_seconds", 0.0)}
        res.meta["solvers"] = {solver: next(iter(res.meta.get("solvers", {}).values()), "unknown")}
        return res


class AuctionPSPFormulation(_MarketFormulation):
    """Progressive second price auction dynamics to an ε-Nash equilibrium (a direct algorithm).

    Parameters accepted by :meth:`instance` add ``epsilon`` (bid fee relative to each buyer's value,
    default 1e-3) and ``scaling`` (ε-scaling factor > 1, or 0 for plain dynamics; default 2).

    Examples
    --------
    >>> f = AuctionPSPFormulation()
    >>> r = f.solve(f.instance({"size": 20, "seed": 2, "epsilon": 0.01}))
    >>> r.certified
    True
    """

    name = "auction-psp"
    summary = "Progressive second price auction dynamics to an ε-Nash equilibrium"
    kinds = ("auction-psp",)
    solvers = (DIRECT,)
    parameters: ClassVar[dict[str, Any]] = {**_MARKET_PARAMS, "epsilon": 1e-3, "scaling": 2.0}

    def instance(self, params: Mapping[str, Any]) -> Any:
        p = check_params(self.name, params, self.parameters)
        eps, scaling = float(p["epsilon"]), float(p["scaling"] or 0.0)
        if not eps > 0:
            raise InvalidInputError(f"epsilon must be > 0, got {p['epsilon']!r}")
        if not (scaling == 0 or scaling > 1):
            raise InvalidInputError(f"scaling must be 0 (off) or > 1, got {p['scaling']!r}")
        return {"market": auction_market(p), "epsilon": eps, "scaling": scaling}

    def instance_to_dict(self, instance: Any) -> dict[str, Any]:
        from datamarkets.graphs.market import (
            market_to_dict,  # lazy: fast plug-in discovery
        )

        return {
            "market": market_to_dict(instance["market"]),
            "epsilon": instance["epsilon"],
            "scaling": instance["scaling"],
        }

    def instance_from_dict(self, d: Mapping[str, Any]) -> Any:
        from datamarkets.graphs.market import (
            market_from_dict,  # lazy: fast plug-in discovery
        )

        if not isinstance(d, Mapping) or not {"market", "epsilon"} <= set(d):
            raise InvalidInputError("an auction-psp instance needs 'market' and 'epsilon'")
        eps = real_number(d["epsilon"], "auction-psp instance epsilon", positive=True)
        scaling = real_number(d.get("scaling") or 0.0, "auction-psp instance scaling", nonneg=True)
        if not (scaling == 0 or scaling > 1):
            raise InvalidInputError(f"auction-psp instance scaling must be 0 (off) or > 1, got {scaling!r}")
        return {
            "market": market_from_dict(d["market"], "auction-psp instance"),
            "epsilon": eps,
            "scaling": scaling,
        }

    def build(self, instance: Any, solver: str) -> Any:
        return instance

    def solve_program(self, program: Any, solver: str, *, time_limit: float | None = None) -> Result:
        from datamarkets.models.psp_dynamics import (
            psp_dynamics,  # lazy: fast plug-in discovery
        )

        res = psp_dynamics(
            program["market"], program["epsilon"], scaling=program["scaling"] or None, time_limit=time_limit
        )
        res.solution["objective"] = res.solution.get("welfare")
        res.meta["solvers"] = {"datamarkets-psp": res.meta.get("version", "")}
        return res

    def certify(self, instance: Any, solution: Mapping[str, Any]) -> Certificate:
        """:func:`~datamarkets.models.psp_certificate.certify_psp`: every buyer's exact best-reply gain
        within ε, final charges within budgets, supply, and every reported number recomputed."""
        from datamarkets.models.psp_certificate import (
            certify_psp,  # lazy: fast plug-in discovery
        )

        return certify_psp(instance["market"], solution, instance["epsilon"])
