"""`datamarkets gne …` commands: competing data buyers (GNE, price of anarchy, §IV figures).

Exit codes
----------
0
    A certified equilibrium, **or** a typed no-equilibrium result (``"status": "no_equilibrium"``,
    e.g. :math:`\\rho(A) \\ge 1`): "no GNE" is an answer, not a failure.
2
    Bad input: unreadable/invalid graph, singular design (coincident sources), δ outside [0, 1],
    γ < 0 (Theorem 1's assumption broken), bad sweep range — one line on stderr.
3
    A solver or algorithm could not deliver.
4
    An equilibrium was computed but its certificate failed (e.g. an empty c-polytope because some
    equilibrium effort is negative, or accuracy lost near collapse); the JSON says which check.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from datamarkets.cli.common import (
    EXIT_INPUT,
    EXIT_UNCERTIFIED,
    check_out,
    emit_json,
    fail,
    print_table,
    solver_output_to_stderr,
)
from datamarkets.errors import InvalidInputError
from datamarkets.io import atomic_write_csv
from datamarkets.plotting import figure_format
from datamarkets.progress import track
from datamarkets.registry import get_formulation

if TYPE_CHECKING:
    from datamarkets.models.gne_leontief import LeontiefMethod

__all__ = ["FIGURE_LABELS", "app", "gne_report", "mathtext_number", "two_firm_sweep", "write_figures"]

app = typer.Typer(
    short_help="Competing data buyers: generalized Nash equilibrium and the price of anarchy.",
    help=(
        "Competing data buyers: firms that fit models on data from the same sources pay the sources for "
        "the effort that makes their data accurate. Compute the generalized Nash equilibrium (how much "
        "each firm demands from each source, the sources' efforts, who may pay what) and the price of "
        "anarchy against welfare-optimal efforts. A market without an equilibrium is an answer "
        "(status no_equilibrium, exit 0), not an error. Exit codes: 0 certified or no_equilibrium, 2 bad "
        "input, 3 solver failure, 4 uncertified."
    ),
    no_args_is_help=True,
)


def _by_name(names: list[Any], v: Any) -> dict[str, float]:
    return {str(s): float(x) for s, x in zip(names, v, strict=True)}


def _per_source(names: list[Any], v: Any) -> dict[str, float] | None:
    return None if v is None else _by_name(names, v)


def _per_pair(buyers: list[Any], sources: list[Any], a: Any) -> dict[str, dict[str, float]] | None:
    if a is None:
        return None
    return {str(b): _by_name(sources, a[k]) for k, b in enumerate(buyers)}


def gne_report(result: Any) -> dict[str, Any]:
    """JSON view of a :func:`~datamarkets.formulations.gne_solve.solve_gne` result with names.

    ``gamma``/``d``/``c_lower``/``c_point`` are ``{buyer: {source: value}}``; ``xi`` is
    ``{buyer: {paid source: {noise source: value}}}``; efforts are ``{source: value}``.
    """
    sol = result.solution
    B, S = sol["buyers"], sol["sources"]
    out: dict[str, Any] = {"kind": result.kind, "status": result.status.value, "method": result.method}
    out["buyers"], out["sources"] = [str(b) for b in B], [str(s) for s in S]
    out["gamma"] = _per_pair(B, S, sol["gamma"])
    out["xi"] = {str(b): _per_pair(S, S, sol["xi"][k]) for k, b in enumerate(B)}
    for key in (
        "spectral_radius",
        "spectral_radius_bounds",
        "spectral_margin",
        "ill_conditioned",
        "reason",
        "no_equilibrium_cause",
    ):
        if key in sol:
            out[key] = sol[key]
    out["d"] = _per_pair(B, S, sol.get("d"))
    for key in ("effort_equilibrium", "effort_optimal", "variance", "d_total", "c_total"):
        out[key] = _per_source(S, sol.get(key))
    for key in ("c_lower", "c_point"):
        out[key] = _per_pair(B, S, sol.get(key))
    if sol.get("d") is not None:
        out["c_polytope"] = {
            "equalities": "for every source i: sum over its buyers k of c[k][i] = c_total[i]  (Lemma 1)",
            "bounds": "for every used pair: c[k][i] >= c_lower[k][i] (21), hence <= c_lower[k][i] + e*_i",
            "nonempty": sol.get("c_polytope_nonempty"),
        }
    for key in (
        "c_polytope_nonempty",
        "social_loss_equilibrium",
        "social_loss_optimal",
        "social_loss_gap",
        "price_of_anarchy",
        "price_of_anarchy_defined",
        "price_of_anarchy_reason",
        "payment_range",
        "welfare_assumes_eta_one",
    ):
        out[key] = sol.get(key)
    if sol.get("best_response_gap") is not None:
        out["best_response_gap"] = _per_source(B, sol["best_response_gap"])
    out["certificate"] = result.certificate.to_dict()
    out["timings"] = result.timings
    out["meta"] = result.meta
    return out


def _exit_code(result: Any) -> int:
    if result.status.has_solution and not result.certificate.passed:
        return EXIT_UNCERTIFIED
    return 0


def _print_human(rep: dict[str, Any]) -> None:
    rows = [["status", rep["status"]], ["spectral_radius", rep.get("spectral_radius")]]
    rows.append(["1 - rho(A)", rep.get("spectral_margin")])
    if rep["status"] != "optimal":
        rows.append(["reason", rep.get("reason")])
    else:
        rows += [
            ["social_loss_equilibrium", rep["social_loss_equilibrium"]],
            ["social_loss_optimal", rep["social_loss_optimal"]],
            ["price_of_anarchy", rep["price_of_anarchy"]],
            ["certified", rep["certificate"]["passed"]],
        ]
    print_table("GNE of competing data buyers", ["quantity", "value"], rows)
    if rep.get("d"):
        srcs = rep["sources"]
        rows = (
            [[b, *[rep["d"][b][s] for s in srcs]] for b in rep["buyers"]]
            + [["e* (17)", *[rep["effort_equilibrium"][s] for s in srcs]]]
            + (
                [["e_hat (28)", *[rep["effort_optimal"][s] for s in srcs]]]
                if rep.get("effort_optimal")
                else []
            )
        )
        if len(srcs) > len(rows):  # many sources: one row per source reads better than wide tables
            print_table(
                "d (columns: buyers) / effort",
                ["source", *[r[0] for r in rows]],
                [[s, *[r[1 + j] for r in rows]] for j, s in enumerate(srcs)],
                compact=True,
            )
        else:
            print_table("d (rows: buyers) / effort", ["", *srcs], rows)
        print_table(
            "payment range over the c-polytope (expected total payment)",
            ["buyer", "least", "most"],
            [[b, v["least"], v["most"]] for b, v in rep["payment_range"].items()],
        )


_OUT = typer.Option(
    None, "--out", "-o", help="Save the full result (instance embedded) for `datamarkets verify`."
)


def _solve_and_report(
    G: Any,
    method: LeontiefMethod,
    best_response: bool,
    lp: bool,
    json_out: bool,
    include_xi: bool = True,
    out: Path | None = None,
) -> None:
    from datamarkets.formulations.gne_solve import (
        solve_gne,  # lazy: fast --help (no solver stack)
    )

    with solver_output_to_stderr():
        # solve_gne certifies with the one GNE certificate (the plug-in's and verify's)
        res = solve_gne(G, method=method, best_response_gap=best_response, lp_check=lp)
    if out is not None:
        get_formulation("gne").attach(res, G, "direct").save(out)
    rep = gne_report(res)
    if not include_xi:
        rep["xi"] = None
    if json_out:
        emit_json(rep)
    else:
        _print_human(rep)
    raise typer.Exit(_exit_code(res))


@app.command()
def solve(
    graph: Path = typer.Option(..., "--graph", help="Estimation-market node-link JSON."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    method: str = typer.Option("auto", help="Leontief solver: auto, dense, gmres, neumann."),
    best_response: bool = typer.Option(True, help="Certify every buyer's best-response gap (cvxpy)."),
    lp: bool = typer.Option(True, help="Cross-check the payment range with HiGHS LPs."),
    xi: bool = typer.Option(True, help="Include xi (K·N² numbers) in the JSON; --no-xi for big markets."),
    out: Path | None = _OUT,
) -> None:
    """Equilibrium of the market in --graph: demand d per firm and source, the sources' efforts, the
    range of payments each firm may make (the c-polytope) and the price of anarchy.

    Exit 0 (certified or "no_equilibrium"), 2 bad input, 3 solver failure, 4 uncertified.
    """
    from datamarkets.graphs.estimation_market import (
        read_estimation_market,  # lazy: fast --help (no solver stack)
    )

    if method not in ("auto", "dense", "gmres", "neumann"):
        fail(f"unknown --method {method!r}", EXIT_INPUT)
    check_out(out)
    G = read_estimation_market(graph)
    # the check above makes the cast true
    _solve_and_report(G, cast("LeontiefMethod", method), best_response, lp, json_out, include_xi=xi, out=out)


@app.command()
def example(
    x1: float = typer.Option(..., "--x1", help="Position of source s1."),
    x2: float = typer.Option(1.0, "--x2", help="Position of source s2 (paper: 1)."),
    alpha: float = typer.Option(1.0, help="Effort parameter of both sources (paper: 1)."),
    delta: float = typer.Option(0.0, help="Competition weight between the firms, in [0, 1] (paper: 0)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    out: Path | None = _OUT,
) -> None:
    """The two-firm example of §IV at one x1 (linear regression, F uniform on [-1, 1]).

    Exit 0 (certified or "no_equilibrium"), 2 bad input, 3 solver failure, 4 uncertified.
    """
    from datamarkets.graphs.estimation_market import (
        two_firm_example,  # lazy: fast --help (no solver stack)
    )

    check_out(out)
    G = two_firm_example(x1, x2=x2, alpha=alpha, delta=delta)
    _solve_and_report(G, "auto", True, True, json_out, out=out)


def printed_two_firm(x1: float, x2: float) -> dict[str, float | None]:
    """§IV's printed closed forms (γ_i, ξ_{1,2}, ξ_{2,1}), evaluated verbatim for comparison
    (γ is ``None`` at x1 = x2, where the printed denominator vanishes)."""
    den = (x1**2 + x2**2 - 2 * x1 * x2) ** 2
    return {
        "gamma_s1_printed": ((x1 - x2) ** 2 / 3 + (x1**2 - x1 * x2) ** 2) / den if den > 0 else None,
        "gamma_s2_printed": ((x1 - x2) ** 2 / 3 + (x2**2 - x1 * x2) ** 2) / den if den > 0 else None,
        "xi_12_printed": (x1 * x2 + 1) ** 2 / (x2**2 + 1) ** 2,
        "xi_21_printed": (x1 * x2 + 1) ** 2 / (x1**2 + 1) ** 2,
    }


def two_firm_sweep(
    x1_values: Any, *, x2: float = 1.0, alpha: float = 1.0, delta: float = 0.0, collapse_margin: float = 1e-6
) -> list[dict[str, Any]]:
    """Solve the §IV example at every x1; one row per point (collapse marked, never garbage).

    Row ``regime`` is ``"equilibrium"``, ``"collapse"`` (:math:`1-\\rho(A) <` ``collapse_margin``:
    d is astronomically large and, past ~1e-11, inaccurate), ``"no_equilibrium"`` (ρ(A) ≥ 1) or
    ``"singular"`` (x1 = x2, the regression is not identified). Values of non-equilibrium rows are
    ``None``.
    """
    import numpy as np

    from datamarkets.formulations.gne_solve import (
        solve_gne,  # lazy: fast --help (no solver stack)
    )
    from datamarkets.graphs.estimation_market import (
        two_firm_example,  # lazy: fast --help (no solver stack)
    )
    from datamarkets.models.estimators import (
        market_coefficients,  # lazy: fast --help (no solver stack)
    )

    rows = []
    for x1 in track(list(x1_values), "two-firm sweep"):
        row: dict[str, Any] = {"x1": float(x1), **printed_two_firm(float(x1), x2)}
        try:
            coeffs = market_coefficients(two_firm_example(float(x1), x2=x2, alpha=alpha, delta=delta))
        except InvalidInputError as exc:
            row.update({"regime": "singular", "reason": str(exc)})
            rows.append(row)
            continue
        res = solve_gne(coeffs, welfare=True)
        s = res.solution
        g, xi = s["gamma"], s["xi"]
        row.update(
            {
                "gamma_b1_s1": g[0, 0],
                "gamma_b1_s2": g[0, 1],
                "gamma_b2_s1": g[1, 0],
                "gamma_b2_s2": g[1, 1],
                "xi_b1_12": xi[0, 0, 1],
                "xi_b1_21": xi[0, 1, 0],
                "xi_b2_12": xi[1, 0, 1],
                "xi_b2_21": xi[1, 1, 0],
                "spectral_radius": s["spectral_radius"],
                "spectral_margin": s["spectral_margin"],
            }
        )
        if res.status.value != "optimal":
            row.update({"regime": "no_equilibrium", "reason": s.get("reason")})
        elif s["spectral_margin"] < collapse_margin:
            row.update(
                {
                    "regime": "collapse",
                    "reason": f"1 - rho(A) = {s['spectral_margin']:.3g} < {collapse_margin:g}",
                }
            )
        else:
            d = s["d"]
            row.update(
                {
                    "regime": "equilibrium",
                    "d_b1_s1": d[0, 0],
                    "d_b1_s2": d[0, 1],
                    "d_b2_s1": d[1, 0],
                    "d_b2_s2": d[1, 1],
                    "effort_eq_s1": s["effort_equilibrium"][0],
                    "effort_eq_s2": s["effort_equilibrium"][1],
                    "effort_opt_s1": None if s["effort_optimal"] is None else s["effort_optimal"][0],
                    "effort_opt_s2": None if s["effort_optimal"] is None else s["effort_optimal"][1],
                    "social_loss_equilibrium": s["social_loss_equilibrium"],
                    "social_loss_optimal": s["social_loss_optimal"],
                    "social_loss_gap": s["social_loss_gap"],
                    "price_of_anarchy": s["price_of_anarchy"],
                    "certified": res.certificate.passed,
                }
            )
        rows.append({k: (float(v) if isinstance(v, np.floating) else v) for k, v in row.items()})
    return rows


_FIGURES = {
    "fig1_gamma": (r"$\gamma$ (log scale)", ["gamma_b1_s1", "gamma_b1_s2"], True),
    "fig2_xi": (r"$\xi$", ["xi_b1_12", "xi_b1_21"], False),
    "fig3_d": (r"$d$ (log scale)", ["d_b1_s1", "d_b1_s2", "d_b2_s1", "d_b2_s2"], True),
    "fig4_price_of_anarchy": (r"$L(e^*)\,/\,L(\hat e)$", ["price_of_anarchy"], False),
}

# mathtext (rendered by matplotlib, no TeX installation needed), never raw TeX in a legend
FIGURE_LABELS: dict[str, str] = {
    "gamma_b1_s1": r"$\gamma_1$ ($=\gamma_1^1=\gamma_1^2$)",
    "gamma_b1_s2": r"$\gamma_2$ ($=\gamma_2^1=\gamma_2^2$)",
    "xi_b1_12": r"$\xi_{1,2}$ (both buyers)",
    "xi_b1_21": r"$\xi_{2,1}$ (both buyers)",
    "d_b1_s1": r"$d_1^1$",
    "d_b1_s2": r"$d_2^1$",
    "d_b2_s1": r"$d_1^2$",
    "d_b2_s2": r"$d_2^2$",
    "price_of_anarchy": "price of anarchy",
}
# the two buyers of the example are symmetric, so d^1 and d^2 coincide: styles and markers that
# show both curves where they overlap
_STYLES = [("-", "o", 6), ("--", "s", 4), (":", "^", 6), ("-.", "v", 4)]


def mathtext_number(v: float) -> str:
    r"""``1e-06`` → ``10^{-6}`` (mathtext), other numbers as ``%g`` with a mantissa ``\cdot 10^{k}``.

    Parameters
    ----------
    v : float
        The number to print inside a ``$...$`` mathtext label.

    Returns
    -------
    str
        Mathtext without the surrounding dollars.

    Examples
    --------
    >>> mathtext_number(1e-6), mathtext_number(0.5)
    ('10^{-6}', '0.5')
    """
    import math

    if v > 0 and math.log10(v).is_integer() and v != 1:
        return f"10^{{{int(math.log10(v))}}}"
    m, _, e = f"{v:g}".partition("e")
    return f"{m} \\cdot 10^{{{int(e)}}}" if e else m


def write_figures(
    rows: list[dict[str, Any]], out: Path, collapse_margin: float, fmt: str = "png"
) -> list[Path]:
    """Write Figures 1-4 of §IV (γ, ξ, d, price of anarchy against x1) from a two-firm sweep.

    Parameters
    ----------
    rows : list of dict
        Rows of :func:`two_firm_sweep`.
    out : pathlib.Path
        Existing directory for the figures.
    collapse_margin : float
        The sweep's margin on ``1 - rho(A)``, printed in the collapse band's legend.
    fmt : str
        Figure format: ``"png"``, ``"pdf"`` or ``"svg"``.

    Returns
    -------
    list of pathlib.Path
        The four files written, in figure order.
    """
    import numpy as np

    from datamarkets.plotting import (  # lazy: fast --help (no solver stack)
        pyplot,
        save_figure,
    )

    plt = pyplot()

    x = np.array([r["x1"] for r in rows])
    bad = np.array([r["regime"] != "equilibrium" for r in rows])
    every = max(1, len(rows) // 15)  # markers on a sparse subset of the points
    written = []
    for name, (ylabel, cols, logy) in _FIGURES.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for k, c in enumerate(cols):
            y = np.array([np.nan if r.get(c) is None else r[c] for r in rows], dtype=float)
            if name in ("fig1_gamma", "fig2_xi"):
                y = np.where(np.array([r["regime"] == "singular" for r in rows]), np.nan, y)
            else:
                y = np.where(bad, np.nan, y)
            ls, marker, ms = _STYLES[k % len(_STYLES)]
            ax.plot(
                x,
                y,
                linestyle=ls,
                marker=marker,
                markersize=ms,
                markevery=(k % every, every),
                label=FIGURE_LABELS.get(c, c),
            )
        if name == "fig4_price_of_anarchy":
            ax.axhline(2.0, color="grey", lw=0.8, ls=":", label=r"asymptote 2 ($x_1 \to x_2$)")
        if bad.any() and name not in ("fig1_gamma", "fig2_xi"):
            first = int(np.argmax(bad))
            left = float(x[first - 1]) if first > 0 else float(x[first])  # last good point before it
            ax.axvspan(
                left,
                float(x.max()),
                color="red",
                alpha=0.12,
                label=rf"collapse: $1-\rho(A) < {mathtext_number(collapse_margin)}$ / no GNE",
            )
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(r"$x_1$ ($x_2 = 1$)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"Two-firm example: {ylabel}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        written.append(save_figure(fig, out / f"{name}.{fmt}"))
    return written


@app.command()
def sweep(
    x1_from: float = typer.Option(-1.0, "--x1-from", help="First x1."),
    x1_to: float = typer.Option(0.999, "--x1-to", help="Last x1."),
    steps: int = typer.Option(200, "--steps", help="Number of x1 values (>= 2)."),
    out: Path = typer.Option(..., "--out", help="Directory for the PNG figures and sweep.csv."),
    x2: float = typer.Option(1.0, "--x2"),
    alpha: float = typer.Option(1.0),
    delta: float = typer.Option(0.0),
    collapse_margin: float = typer.Option(1e-6, help="Mark points with 1 - rho(A) below this as collapse."),
    fmt: str = typer.Option("png", "--format", help="Figure format: png | pdf | svg (vector, for papers)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Regenerate Figures 1-4 of §IV (γ, ξ, d, price of anarchy against x1) as figures + CSV."""
    import numpy as np

    fmt = figure_format(fmt)
    if steps < 2:
        fail(f"--steps must be >= 2, got {steps}", EXIT_INPUT)
    if not (-1.0 <= x1_from < x1_to <= 1.0):
        fail(f"need -1 <= --x1-from < --x1-to <= 1, got {x1_from} and {x1_to}", EXIT_INPUT)
    if not (0.0 <= delta <= 1.0):
        fail(f"--delta must lie in [0, 1], got {delta}", EXIT_INPUT)
    if not collapse_margin > 0:
        fail(f"--collapse-margin must be > 0, got {collapse_margin}", EXIT_INPUT)
    # a bad α or x2 is bad input, not 'singular' at every x1 (the per-point handler below)
    if not (np.isfinite(alpha) and alpha > 0):
        fail(f"--alpha must be a finite number > 0, got {alpha}", EXIT_INPUT)
    if not np.isfinite(x2):
        fail(f"--x2 must be a finite number, got {x2}", EXIT_INPUT)
    check_out(out, directory=True)
    xs = np.linspace(x1_from, x1_to, steps)
    with solver_output_to_stderr():
        rows = two_firm_sweep(xs, x2=x2, alpha=alpha, delta=delta, collapse_margin=collapse_margin)
        out.mkdir(parents=True, exist_ok=True)
        csv_path = atomic_write_csv(out / "sweep.csv", rows)
        pngs = write_figures(rows, out, collapse_margin, fmt)
    eq = [r for r in rows if r["regime"] == "equilibrium"]
    bad = [r for r in rows if r["regime"] != "equilibrium"]
    files = [str(csv_path), *map(str, pngs)]
    summary: dict[str, Any] = {
        "points": len(rows),
        "equilibrium_points": len(eq),
        "collapse_points": len(bad),
        "collapse_from_x1": min((r["x1"] for r in bad), default=None),
        "collapse_margin": collapse_margin,
        "regimes": {
            k: sum(r["regime"] == k for r in rows)
            for k in ("equilibrium", "collapse", "no_equilibrium", "singular")
        },
        "uncertified_points": [r["x1"] for r in eq if not r.get("certified", True)],
        "price_of_anarchy_max": max(
            (r["price_of_anarchy"] for r in eq if r["price_of_anarchy"] is not None), default=None
        ),
        "files": files,
    }
    if json_out:
        emit_json(summary)
    else:
        print_table(
            "two-firm sweep",
            ["quantity", "value"],
            [[k, v] for k, v in summary.items() if k not in ("files", "regimes", "uncertified_points")]
            + [["files", ", ".join(files)]],
        )
