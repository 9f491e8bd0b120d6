"""`datamarkets auction …` commands: solve, verify, example1, generate.

Heavy modules are imported inside the commands so that ``datamarkets --help`` stays fast.
Exit codes: 0 ok, 2 bad input (one line on stderr), 3 solver/algorithm failure, 4 a result was
produced but its certificate failed.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import typer

from datamarkets.cli.common import (
    EXIT_UNCERTIFIED,
    check_options,
    check_out,
    emit_json,
    fail,
    fail_no_solution,
    print_table,
    solver_output_to_stderr,
)
from datamarkets.errors import InvalidInputError
from datamarkets.io import read_json
from datamarkets.progress import status
from datamarkets.registry import get_formulation

app = typer.Typer(
    short_help="Data auctions on market graphs: welfare optimum, KKT system, PSP auction dynamics.",
    help=(
        "Data auctions on a market graph: buyers (each with a valuation of the amount of data it gets), "
        "sellers (each with a supply) and edges saying who can buy from whom. Compute the "
        "welfare-maximising allocation and its clearing prices, the same as a complementarity (KKT) "
        "system, or the outcome of a progressive second price (PSP) auction in which buyers re-bid "
        "until nobody gains more than ε — each certified against the KKT optimality conditions."
    ),
    no_args_is_help=True,
)

_METHODS = ("optimum", "kkt", "psp")
# --solver → solve_welfare(method=..., solver=...): the route, and the solver (None = its default)
_ROUTES: dict[str, tuple[str, str | None]] = {
    "auto": ("auto", None),
    "highs": ("arrays", "highs"),
    "clarabel": ("arrays", "clarabel"),
    "cvxpy": ("cvxpy", None),
    "pyomo": ("pyomo", None),
}
_SOLVERS = tuple(_ROUTES)


def _load_market(path: Path) -> Any:
    if not path.exists():
        raise InvalidInputError(f"market file {str(path)!r} does not exist")
    if path.suffix.lower() in (".graphml", ".xml"):
        from datamarkets.graphs.market import (
            read_market_graphml,  # lazy: fast --help (no solver stack)
        )

        return read_market_graphml(path)
    from datamarkets.graphs.market import (
        read_market_json,  # lazy: fast --help (no solver stack)
    )

    return read_market_json(path)


_SHOWN = 30  # rows of the prices/allocation tables printed without --all


def _summary(res: Any, title: str, show_all: bool = False) -> None:
    sol = res.solution
    print_table(
        title,
        ["quantity", "value"],
        [
            ["status", res.status.value],
            ["method", res.method],
            ["welfare", sol.get("welfare")],
            ["certified", res.certified],
            *[[f"time {k}", v] for k, v in res.timings.items()],
        ],
    )
    keep = None if show_all else _SHOWN
    prices = sol.get("prices", {})
    if prices:
        print_table(
            f"prices ({len(prices)} sellers)",
            ["resource", "price"],
            [[str(k), float(v)] for k, v in list(prices.items())[:keep]],
            total=len(prices),
        )
    alloc = sol.get("allocation", [])
    if alloc:
        print_table(
            f"allocation ({len(alloc)} rows)",
            ["buyer", "seller", "amount"],
            [[str(r["buyer"]), str(r["seller"]), float(r["amount"])] for r in alloc[:keep]],
            total=len(alloc),
        )
    if not res.certificate.passed:
        print_table(
            "certificate failures",
            ["residual", "value"],
            [[k, v] for k, v in res.certificate.failures.items()],
        )


@app.command()
def solve(
    graph: Path = typer.Option(..., "--graph", help="Market graph (node-link JSON or GraphML)."),
    method: str = typer.Option("optimum", "--method", help="optimum | kkt | psp"),
    solver: str = typer.Option(
        "auto", "--solver", help="Welfare route: auto | highs | clarabel | cvxpy | pyomo"
    ),
    epsilon: float = typer.Option(1e-3, "--epsilon", help="PSP bid fee ε (relative to each buyer's value)."),
    tol: float = typer.Option(1e-6, "--tol", help="Certificate tolerance."),
    scaling: float = typer.Option(
        2.0, "--scaling", help="PSP ε-scaling factor (> 1; 0 = plain dynamics at ε from the start)."
    ),
    time_limit: float | None = typer.Option(
        None,
        "--time-limit",
        help="Seconds allowed to the route (solver or auction rounds); a run that hits it ends with "
        "status time_limit (exit 3). Default: the route's own (KKT MILP: 120 s; others: none).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    show_all: bool = typer.Option(
        False, "--all", help="Print every price and allocation row (default: the first 30 of each)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Save the full result (market embedded) for `datamarkets verify`."
    ),
) -> None:
    """Allocate the sellers' data among the buyers of the market in --graph.

    --method optimum: maximise total value (a QP, LP or cone program); the sellers' prices are its
    duals. --method kkt: the optimality (KKT) conditions as a MILP, for small markets. --method psp:
    rounds of the PSP auction until no buyer can gain more than ε by re-bidding. Progress (auction
    rounds, or the solve and certificate steps) is shown on stderr when it is a terminal
    (DATAMARKETS_NO_PROGRESS=1 turns it off). Exit 0 certified, 2 bad input, 3 solver failure or
    time limit, 4 uncertified.
    """

    if method not in _METHODS:
        raise InvalidInputError(f"unknown --method {method!r}; choose one of {', '.join(_METHODS)}")
    if solver not in _SOLVERS:
        raise InvalidInputError(f"unknown --solver {solver!r}; choose one of {', '.join(_SOLVERS)}")
    if solver != "auto" and method != "optimum":  # the welfare route: silently ignored before
        raise InvalidInputError(f"--solver {solver!r} chooses the welfare route of --method optimum only")
    if not (scaling == 0 or scaling > 1):
        raise InvalidInputError(f"--scaling must be 0 (off) or > 1, got {scaling!r}")
    time_limit = check_options(tol=tol, time_limit=time_limit)
    check_out(out)
    G = _load_market(graph)
    with solver_output_to_stderr():
        res, route = _solve(
            G, method, solver, epsilon, tol, scaling or None, time_limit=time_limit, progress=True
        )

    # the market is embedded (with its hash) so that `datamarkets verify` can re-check the output alone
    name = {"optimum": "auction-welfare", "kkt": "auction-kkt", "psp": "auction-psp"}[method]
    inst = {"market": G, "epsilon": epsilon, "scaling": scaling} if method == "psp" else G
    form = get_formulation(name)
    if res.status.has_solution:  # one certificate per answer: the producer returned it already
        res.solution.setdefault("objective", res.solution.get("welfare"))
    form.attach(res, inst, route)
    if out is not None:
        res.save(out)
    if as_json:
        emit_json(res.to_dict())
    else:
        _summary(res, f"auction solve --method {method}", show_all)
    if not res.status.has_solution:
        fail_no_solution(res, f"auction solve --method {method}")
    if not res.certified:
        raise typer.Exit(EXIT_UNCERTIFIED)


def _solve(
    G: Any,
    method: str,
    solver: str,
    epsilon: float,
    tol: float,
    scaling: float | None = 2.0,
    *,
    time_limit: float | None = None,
    progress: bool = False,
) -> tuple[Any, str]:
    """The result of --method, and the solver that ran (recorded by the plug-in's ``attach``)."""
    from datamarkets.formulations.auction_certificate import (
        certify_allocation,  # lazy: fast --help (no solver stack)
    )
    from datamarkets.formulations.welfare import (  # lazy: fast --help (no solver stack)
        resolve_route,
        solve_welfare,
    )
    from datamarkets.graphs.market_data import market_arrays  # lazy: fast --help (no solver stack)

    limit: dict[str, Any] = {} if time_limit is None else {"time_limit": float(time_limit)}
    M = market_arrays(G)
    size = f"{M.n_buyers} buyers, {M.n_sellers} sellers"
    if method == "optimum":
        route, welfare_solver = _ROUTES[solver]
        # the solver that runs, passed explicitly (resolve_route: the route's default for None)
        _, welfare_solver = resolve_route(route, welfare_solver, M.kinds())
        with status(f"welfare optimum ({size}): build + solve", progress):
            opt = solve_welfare(M, method=route, solver=welfare_solver, certify_tol=tol, **limit)
        return opt, welfare_solver
    if method == "kkt":
        from datamarkets.formulations.kkt_mpec import (
            solve_kkt,  # lazy: fast --help (no solver stack)
        )

        with status(f"KKT MILP ({size}): build + HiGHS branch and bound", progress):
            return solve_kkt(M, certify_tol=tol, **limit), "highs"
    from datamarkets.models.psp_dynamics import (
        psp_dynamics,  # lazy: fast --help (no solver stack)
    )

    if limit and "time_limit" not in inspect.signature(psp_dynamics).parameters:
        raise InvalidInputError("--time-limit is not supported by --method psp in this version")
    # ε-scaling (warm-started stages ε·2^K … ε, same final ε-stopping rule): ~16× fewer rounds
    res = psp_dynamics(G, epsilon, scaling=scaling, progress=progress, **limit)
    if not res.status.has_solution:
        return res, "direct"
    with status(f"KKT certificate of the auction outcome ({size}): welfare optimum + prices LP", progress):
        cert = certify_allocation(M, res.solution["allocation"], tol=tol)
    # the auction is an ε-equilibrium: its KKT residuals are reported beside the ε-Nash certificate
    # (in the certificate's details: information on the allocation, not part of the answer)
    res.certificate.details["kkt_certificate"] = cert.to_dict()
    res.certificate.details["welfare_optimum"] = cert.solution["welfare_optimum"]
    res.certificate.details["welfare_gap"] = cert.solution["welfare_gap"]
    res.certificate.details["kkt_max_violation"] = cert.solution["max_kkt_violation"]
    res.certificate.details["kkt_prices"] = cert.solution["prices"]
    res.timings["kkt_certificate_seconds"] = sum(cert.timings.values())
    return res, "direct"


@app.command()
def verify(
    graph: Path = typer.Option(..., "--graph", help="Market graph (node-link JSON or GraphML)."),
    allocation: Path = typer.Option(
        ..., "--allocation", help="JSON: list of {buyer, seller, amount} or a result."
    ),
    tol: float = typer.Option(1e-6, "--tol", help="Certificate tolerance (relative)."),
    as_json: bool = typer.Option(False, "--json", help="Print the certificate as JSON."),
) -> None:
    """Certify any allocation: the prices that best explain it (an LP), the remaining violation of
    the optimality conditions, and its welfare gap to the optimum. Exit 0 certified, 4 not."""
    from datamarkets.formulations.auction_certificate import (
        certify_allocation,  # lazy: fast --help (no solver stack)
    )

    check_options(tol=tol)
    G = _load_market(graph)
    alloc = read_json(allocation, "allocation file")
    with solver_output_to_stderr():
        res = certify_allocation(G, alloc, tol=tol)
    if as_json:
        emit_json(res)
    else:
        sol = res.solution
        print_table(
            "allocation certificate",
            ["quantity", "value"],
            [
                ["welfare", sol["welfare"]],
                ["welfare optimum", sol["welfare_optimum"]],
                ["welfare gap", sol["welfare_gap"]],
                ["max KKT violation", sol["max_kkt_violation"]],
                *[[k, v] for k, v in sol["residuals"].items()],
                ["certified", res.certificate.passed],
            ],
        )
    if not res.certificate.passed:
        raise typer.Exit(EXIT_UNCERTIFIED)


@app.command()
def example1(
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    epsilon: float = typer.Option(0.01, "--epsilon", help="Bid increment ε of the reserve rule."),
) -> None:
    """Example 1 of the data-share paper: the reserve-rule outcome beside the welfare optimum."""
    from datamarkets.formulations.auction_certificate import (  # lazy: fast --help (no solver stack)
        certify_allocation,
        price_intervals,
    )
    from datamarkets.formulations.kkt_mpec import (
        solve_kkt,  # lazy: fast --help (no solver stack)
    )
    from datamarkets.formulations.welfare import solve_welfare  # lazy: fast --help (no solver stack)
    from datamarkets.formulations.welfare_allocation import (
        allocation_vector,
    )  # lazy: fast --help (no solver stack)
    from datamarkets.graphs.market import (
        example1_market,  # lazy: fast --help (no solver stack)
    )
    from datamarkets.graphs.market_data import market_arrays  # lazy: fast --help (no solver stack)

    G = example1_market()
    with solver_output_to_stderr():
        M = market_arrays(G)
        lp = solve_welfare(M)
        kkt = solve_kkt(M)
        f = allocation_vector(M, lp.solution["allocation"])
        intervals = price_intervals(M, f)
        paper = _paper_example1(G, epsilon)
        paper_cert = (
            certify_allocation(M, paper["allocation"], optimum=lp) if paper.get("allocation") else None
        )
    out: dict[str, Any] = {
        "instance": {
            "buyers": {b: G.nodes[b]["valuation"].to_dict() for b in M.buyers},
            "supplies": {s: float(G.nodes[s]["supply"]) for s in M.sellers},
        },
        "optimum": lp.to_dict(),
        "kkt_milp": kkt.to_dict(),
        "clearing_price_intervals": intervals,
        "paper_reserve_rule": paper,
        "paper_allocation_certificate": paper_cert.to_dict() if paper_cert is not None else None,
        # the reserve rule prices ε above the largest clearing price: by at most ε
        "paper_price_excess_over_interval": {
            s: max(0.0, float(p) - intervals[s][1], intervals[s][0] - float(p))
            for s, p in paper.get("prices", {}).items()
        },
        "every_demand_met": all(
            abs(r["total"] - G.nodes[r["buyer"]]["valuation"].demand) <= 1e-6 for r in lp.solution["buyers"]
        ),
        "sellers_sold_out": {
            s: abs(
                sum(a["amount"] for a in lp.solution["allocation"] if a["seller"] == s) - G.nodes[s]["supply"]
            )
            <= 1e-6
            for s in M.sellers
        },
    }
    if as_json:
        emit_json(out)
        return
    _summary(lp, "Example 1: welfare optimum (LP)")
    print_table(
        "clearing prices supporting the optimum",
        ["seller", "min price", "max price", "LP price", "KKT-MILP price"],
        [
            [s, iv[0], iv[1], lp.solution["prices"][s], kkt.solution["prices"][s]]
            for s, iv in intervals.items()
        ],
    )
    if paper.get("allocation"):
        reserve = paper.get("reserve_prices", {})
        print_table(
            "paper's reserve rule (models.data_share), ε = " + str(epsilon),
            ["seller", "clearing price", "reserve price", "excess over interval"],
            [
                [str(k), v, reserve.get(k), out["paper_price_excess_over_interval"].get(k)]
                for k, v in paper.get("prices", {}).items()
            ],
        )


def _paper_example1(G: Any, epsilon: float) -> dict[str, Any]:
    """The paper's reserve-rule outcome (``datamarkets.models.data_share.solve_example1``)."""
    try:
        from datamarkets.models.data_share import (
            solve_example1,  # lazy: fast --help (no solver stack)
        )
    except ImportError as exc:  # pragma: no cover - module missing in a partial install
        return {"available": False, "reason": f"datamarkets.models.data_share: {exc}"}
    d = solve_example1(epsilon=epsilon).to_dict()
    d["available"] = True
    return d


@app.command()
def generate(
    buyers: int = typer.Option(..., "--buyers", help="Number of buyers."),
    sellers: int = typer.Option(..., "--sellers", help="Number of sellers."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    edges_per_buyer: int = typer.Option(5, "--edges-per-buyer", help="Sellers per buyer."),
    valuation: str = typer.Option("quadratic", "--valuation", help="quadratic | linear | alpha_fair"),
    out: Path = typer.Option(..., "--out", help="Output market JSON (written atomically)."),
) -> None:
    """Write a random market (node-link JSON): buyers with random valuations, each linked to a few
    random sellers; the file feeds `auction solve --graph`."""
    from datamarkets.graphs.market import (  # lazy: fast --help (no solver stack)
        random_bipartite_market,
        write_market_json,
    )

    if buyers < 1 or sellers < 1 or edges_per_buyer < 1:
        raise InvalidInputError("--buyers, --sellers and --edges-per-buyer must be ≥ 1")
    check_out(out)
    G = random_bipartite_market(
        buyers, sellers, min(edges_per_buyer, sellers), seed=seed, valuation=valuation
    )
    write_market_json(G, out)
    fail_free = f"wrote {out} ({buyers} buyers, {sellers} sellers, {G.number_of_edges()} edges)"
    sys.stderr.write(fail_free + "\n")


__all__ = ["app"]
_ = fail  # re-exported helper kept for symmetry with the other sub-apps
