r"""Reproduction of the chain-trading paper's §5 experiments: Table 1, Figure 2, Figure 3.

* **Table 1** — n = 5; Models 1, 2, 4 (§5.1) × RAW, AVE, OPT: exact expected social welfare (SW)
  and transaction volume (TV) by forward propagation, and beside them the paper's protocol
  (5 seeds × 10,000 sampled valuation profiles, mean ± sd across seeds). Every equilibrium is
  LP-certified (:mod:`datamarkets.formulations.chain_certificate`).

Monte Carlo streams. Every table cell (model, n, mechanism) draws from its own
:class:`numpy.random.SeedSequence`, keyed by a root seed (:data:`MC_ROOT_SEED`, ``--mc-seed``) and
the cell (:func:`cell_seed_sequence`); its seeds are that sequence's spawned children. Cells are
therefore independent (two models with the same exact values no longer get identical MC rows, and
z-scores scatter on both sides of 0) and every cell is reproducible on its own. The reported
standard error ``*_mc_se`` is that of the mean of all ``seeds × samples`` pooled profiles
(between-seed variation included); the paper's "sd over seeds" is kept as ``*_mc_sd``, labelled
so: it is the spread of one seed's mean, not the uncertainty of the reported mean.
* **Figure 2** — n = 5: per-trade success probability and per-player expected utility.
* **Figure 3** — SW and TV for n = 2..8 (exact; OPT re-optimised for every n).

Model 3 is left out: as printed, :math:`w_k = (-e)^{k/2}` is not real for odd k (papers' README).
OPT is :func:`datamarkets.models.chain_mechanism_opt.optimize_mechanism` (best mechanism found by
a seeded search on the exact welfare — not a proven global optimum).

Files written to ``out`` (atomically): ``table1.csv``, ``table1.md``, ``figure2.csv``,
``figure2.png``, ``figure3.csv``, ``figure3.png``, ``opt_mechanisms.json``, ``summary.json``.
An ``INCOMPLETE`` marker is written first and removed after ``summary.json``: a killed run leaves
it (:func:`datamarkets.io.incomplete_marker`), and a re-run warns before replacing the files.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datamarkets.errors import InvalidInputError
from datamarkets.formulations.chain_certificate import certify_equilibrium
from datamarkets.io import (
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    check_writable,
    incomplete_marker,
    mark_complete,
    mark_incomplete,
)
from datamarkets.models.chain_equilibrium import solve_equilibrium
from datamarkets.models.chain_mechanism_opt import optimize_mechanism
from datamarkets.models.chain_simulation import METRICS, simulate
from datamarkets.models.chain_valuations import paper_model
from datamarkets.plotting import figure_format, pyplot, save_figure
from datamarkets.progress import track
from datamarkets.result import provenance
from datamarkets.validation import check_seed, check_time_limit

__all__ = [
    "MC_ROOT_SEED",
    "MECHANISMS",
    "MODELS",
    "cell_seed_sequence",
    "figure3_rows",
    "monte_carlo_cell",
    "paper_name",
    "plot_figure2",
    "plot_figure3",
    "reproduce",
    "table1_rows",
]

MODELS = ("paper-1", "paper-2", "paper-4")
MECHANISMS = ("raw", "ave", "opt")
_COLORS = {"raw": "#7f7f7f", "ave": "#1f77b4", "opt": "#d62728"}
#: Root of every Monte Carlo stream of the reproduction (each cell spawns its own, see the module doc).
MC_ROOT_SEED = 20_260_611


def cell_seed_sequence(root_seed: int, model: str, n: int, mechanism: str) -> np.random.SeedSequence:
    """The Monte Carlo stream of one table cell: ``SeedSequence(root_seed, spawn_key=key(cell))``.

    The key is the first 16 bytes of SHA-256 of ``"model|n|mechanism"`` as four 32-bit words, so it
    does not depend on the order cells are computed in, and distinct cells get distinct streams.

    Parameters
    ----------
    root_seed : int
        Non-negative root seed.
    model, n, mechanism
        The cell.

    Returns
    -------
    numpy.random.SeedSequence

    Examples
    --------
    >>> a = cell_seed_sequence(0, "paper-2", 5, "raw").generate_state(2)
    >>> b = cell_seed_sequence(0, "paper-4", 5, "raw").generate_state(2)
    >>> bool((a != b).any()), bool((a == cell_seed_sequence(0, "paper-2", 5, "raw").generate_state(2)).all())
    (True, True)
    """
    if isinstance(root_seed, bool) or not isinstance(root_seed, (int, np.integer)) or root_seed < 0:
        raise InvalidInputError(f"root seed must be a non-negative integer, got {root_seed!r}")
    digest = hashlib.sha256(f"{model}|{int(n)}|{str(mechanism).lower()}".encode()).digest()[:16]
    key = tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))
    return np.random.SeedSequence(int(root_seed), spawn_key=key)


# coincident curves stay distinguishable (OPT = AVE happens): each mechanism its own style and marker
_STYLES = {"raw": ("-", "o"), "ave": ("--", "s"), "opt": (":", "^")}
_HATCHES = {"raw": "", "ave": "//", "opt": ".."}


def paper_name(model: str) -> str:
    """The paper's name of a built-in model: ``"paper-2"`` → ``"Model 2"`` (others unchanged).

    Examples
    --------
    >>> paper_name("paper-4"), paper_name("mine")
    ('Model 4', 'mine')
    """
    return f"Model {model.split('-', 1)[1]}" if model.startswith("paper-") else model


def _opt(model: str, n: int, **kw: Any) -> Any:
    return optimize_mechanism(paper_model(model, n, "raw"), **kw)


def monte_carlo_cell(
    game: Any,
    eq: Any,
    stream: np.random.SeedSequence,
    seeds: int,
    samples: int,
) -> dict[str, Any]:
    """The paper's protocol on one cell: ``seeds`` runs of ``samples`` profiles from ``stream``'s
    spawned children.

    Parameters
    ----------
    game, eq : ChainGame, ChainEquilibrium
    stream : numpy.random.SeedSequence
        The cell's stream (:func:`cell_seed_sequence`).
    seeds, samples : int
        Runs and profiles per run.

    Returns
    -------
    dict
        For each metric of :data:`datamarkets.models.chain_simulation.METRICS`: ``<m>_mean`` (mean of
        all pooled profiles), ``<m>_se`` (its standard error: pooled sd / sqrt(seeds·samples),
        between-run variation included) and ``<m>_sd`` (the paper's sd of the per-seed means,
        ``ddof=1``; 0 for one seed).

    Examples
    --------
    >>> from datamarkets.models.chain_valuations import paper_model
    >>> from datamarkets.models.chain_equilibrium import solve_equilibrium
    >>> g = paper_model("paper-2", 3, "ave")
    >>> mc = monte_carlo_cell(g, solve_equilibrium(g), cell_seed_sequence(0, "paper-2", 3, "ave"), 2, 500)
    >>> bool(mc["social_welfare_se"] > 0), mc["trade_success_mean"].shape
    (True, (3,))
    """
    runs = [simulate(game, eq, samples, child) for child in stream.spawn(seeds)]
    M = float(samples)
    out: dict[str, Any] = {}
    for m in METRICS:
        means = np.array([r[m] for r in runs], dtype=float)  # (S, ...)
        sds = np.array([r[f"{m}_se"] for r in runs], dtype=float) * np.sqrt(M)  # per-run sd (ddof=1)
        grand = means.mean(axis=0)
        # variance of all S·M pooled profiles (ddof=1): within-run plus between-run sums of squares
        ss = ((M - 1.0) * sds**2).sum(axis=0) + (M * (means - grand) ** 2).sum(axis=0)
        out[f"{m}_mean"] = grand
        out[f"{m}_se"] = np.sqrt(ss / (seeds * M - 1.0) / (seeds * M))
        out[f"{m}_sd"] = means.std(axis=0, ddof=1) if seeds > 1 else np.zeros_like(grand)
    return out


def table1_rows(
    models: Sequence[str] = MODELS,
    n: int = 5,
    seeds: int = 5,
    samples: int = 10_000,
    opt_kwargs: dict[str, Any] | None = None,
    certify: bool = True,
    progress: bool = True,
    root_seed: int = MC_ROOT_SEED,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Table 1 and Figure 2 data at chain length ``n``.

    The Monte Carlo columns of each cell come from its own stream
    (:func:`cell_seed_sequence` of ``root_seed`` and the cell).

    Returns
    -------
    table : list of dict
        One row per (model, mechanism): exact ``social_welfare``, ``transaction_volume``, the
        paper protocol's ``sw_mc_mean``/``tv_mc_mean`` (mean of all pooled profiles),
        ``sw_mc_sd``/``tv_mc_sd`` (the paper's sd of the per-seed means), the honest standard errors
        of the reported means ``sw_mc_se``/``tv_mc_se`` (pooled) and z-scores
        ``sw_mc_z = (MC mean − exact)/se`` (same for TV), LP certificate
        (``certified``, ``lp_max_gap``) and timings.
    figure2 : list of dict
        Long format: ``model, mechanism, quantity ("trade_success" | "player_utility"), index,
        exact, mc_mean, mc_sd``.
    opt : dict
        ``model -> {"mechanism", "social_welfare", ...}`` of the OPT searches.
    """

    opt_kwargs = dict(opt_kwargs or {})
    table: list[dict[str, Any]] = []
    fig2: list[dict[str, Any]] = []
    opt_out: dict[str, Any] = {}
    jobs = [(m, mech) for m in models for mech in MECHANISMS]
    for model, mech in track(jobs, f"Table 1 (n={n})", enabled=progress):
        row: dict[str, Any] = {"model": model, "mechanism": mech, "n": n}
        if mech == "opt":
            res = _opt(model, n, **opt_kwargs)
            t = np.asarray(res.solution["mechanism"])
            opt_out[model] = {
                "n": n,
                "mechanism": t,
                "social_welfare": res.solution["social_welfare"],
                "transaction_volume": res.solution["transaction_volume"],
                "sw_upper_bound": res.solution["sw_upper_bound"],
                "evaluations": res.solution["evaluations"],
                "converged": res.solution["converged"],
                "optimize_seconds": res.timings["optimize_seconds"],
            }
            game = paper_model(model, n, t)
            row["optimize_seconds"] = res.timings["optimize_seconds"]
        else:
            game = paper_model(model, n, mech)
        eq = solve_equilibrium(game, method="fast")
        mc = monte_carlo_cell(game, eq, cell_seed_sequence(root_seed, model, n, mech), seeds, samples)
        row.update(
            L=game.L,
            social_welfare=float(eq.social_welfare),
            transaction_volume=float(eq.transaction_volume),
            sw_mc_mean=mc["social_welfare_mean"],
            sw_mc_sd=mc["social_welfare_sd"],
            tv_mc_mean=mc["transaction_volume_mean"],
            tv_mc_sd=mc["transaction_volume_sd"],
            sw_mc_se=mc["social_welfare_se"],
            tv_mc_se=mc["transaction_volume_se"],
            sw_mc_z=(mc["social_welfare_mean"] - eq.social_welfare) / mc["social_welfare_se"],
            tv_mc_z=(mc["transaction_volume_mean"] - eq.transaction_volume) / mc["transaction_volume_se"],
            solve_seconds=float(eq.solve_seconds),
        )
        if certify:
            cert = certify_equilibrium(game, eq)
            row.update(certified=bool(cert.certificate.passed), lp_max_gap=float(cert.solution["max_gap"]))
        table.append(row)
        for quantity in ("trade_success", "player_utility"):
            exact = np.asarray(getattr(eq, quantity), dtype=float)
            for idx in range(exact.size):
                fig2.append(
                    {
                        "model": model,
                        "mechanism": mech,
                        "quantity": quantity,
                        "index": idx + 1 if quantity == "trade_success" else idx,
                        "exact": float(exact[idx]),
                        "mc_mean": float(np.asarray(mc[f"{quantity}_mean"])[idx]),
                        "mc_sd": float(np.asarray(mc[f"{quantity}_sd"])[idx]),
                        "mc_se": float(np.asarray(mc[f"{quantity}_se"])[idx]),
                    }
                )
    return table, fig2, opt_out


def figure3_rows(
    models: Sequence[str] = MODELS,
    n_values: Sequence[int] = range(2, 9),
    opt_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Exact SW and TV for every model, mechanism and chain length (Figure 3).

    Returns
    -------
    rows : list of dict
        ``model, mechanism, n, L, social_welfare, transaction_volume, converged``.
    opt : dict
        ``"model/n" -> OPT mechanism`` matrices.
    """

    opt_kwargs = dict(opt_kwargs or {})
    rows: list[dict[str, Any]] = []
    opt_out: dict[str, Any] = {}
    jobs = [(m, n) for n in n_values for m in models]
    for model, n in track(jobs, "Figure 3 (n sweep)", enabled=progress):
        for mech in MECHANISMS:
            converged = True
            if mech == "opt":
                res = _opt(model, n, **opt_kwargs)
                t = np.asarray(res.solution["mechanism"])
                converged = bool(res.solution["converged"])
                opt_out[f"{model}/n={n}"] = t
                game = paper_model(model, n, t)
            else:
                game = paper_model(model, n, mech)
            eq = solve_equilibrium(game, method="fast")
            rows.append(
                {
                    "model": model,
                    "mechanism": mech,
                    "n": int(n),
                    "L": game.L,
                    "social_welfare": float(eq.social_welfare),
                    "transaction_volume": float(eq.transaction_volume),
                    "converged": converged,
                }
            )
    return rows, opt_out


# ----------------------------------------------------------------------------------------------
# writers
# ----------------------------------------------------------------------------------------------


def _table1_markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | mechanism | SW exact | SW MC mean (s.e.) | sd over seeds | z "
        "| TV exact | TV MC mean (s.e.) | sd over seeds | z | LP certified |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n"
    )
    lines = []
    for r in rows:
        cert = "yes" if r.get("certified") else "no"
        lines.append(
            f"| {r['model']} | {r['mechanism'].upper()} | {r['social_welfare']:.4f} "
            f"| {r['sw_mc_mean']:.4f} ({r['sw_mc_se']:.4f}) | {r['sw_mc_sd']:.4f} | {r['sw_mc_z']:+.2f} "
            f"| {r['transaction_volume']:.4f} | {r['tv_mc_mean']:.4f} ({r['tv_mc_se']:.4f}) "
            f"| {r['tv_mc_sd']:.4f} | {r['tv_mc_z']:+.2f} | {cert} |"
        )
    note = (
        "\ns.e.: standard error of the MC mean over all pooled profiles (z = (MC − exact) / s.e.); "
        "sd over seeds: the paper's spread of one seed's mean. Each cell has its own random stream.\n"
    )
    return head + "\n".join(lines) + "\n" + note


def plot_figure2(rows: list[dict[str, Any]], path: str | Path, models: Sequence[str] = MODELS) -> Path:
    """Grouped bars: per-trade success (top row) and per-player expected utility (bottom row)."""
    plt = pyplot()
    fig, axes = plt.subplots(2, len(models), figsize=(4.6 * len(models), 7.2), squeeze=False)
    width = 0.26
    for c, model in enumerate(models):
        for r, quantity in enumerate(("trade_success", "player_utility")):
            ax = axes[r][c]
            for m_i, mech in enumerate(MECHANISMS):
                sel = [
                    x
                    for x in rows
                    if x["model"] == model and x["mechanism"] == mech and x["quantity"] == quantity
                ]
                idx = np.array([x["index"] for x in sel])
                val = np.array([x["exact"] for x in sel])
                ax.bar(
                    idx + (m_i - 1) * width,
                    val,
                    width,
                    label=mech.upper(),
                    color=_COLORS[mech],
                    hatch=_HATCHES[mech],
                    edgecolor="white",
                )
            ax.set_xticks(idx)
            if quantity == "trade_success":
                ax.set_title(f"{paper_name(model)}: trade success")
                ax.set_xlabel("trade i")
                # headroom above P = 1 for the legend (it covered bars of height 1 at y = 1.05)
                ax.set_ylim(0, 1.22)
                ax.set_yticks(np.linspace(0.0, 1.0, 6))
                ax.set_ylabel(r"$P(\mathrm{trade}\ i\ \mathrm{occurs})$")
            else:
                ax.set_title(f"{paper_name(model)}: expected utility")
                ax.set_xlabel("player i")
                ax.set_ylabel(r"$E[U_i]$")
                ax.axhline(0, color="black", lw=0.6)
            ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(loc="upper center", ncol=3, fontsize=8)  # inside the axes, in the headroom
    fig.suptitle("Per-trade success and per-player utility at equilibrium (n = 5, exact)")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_figure3(rows: list[dict[str, Any]], path: str | Path, models: Sequence[str] = MODELS) -> Path:
    """Lines: expected SW (top row) and TV (bottom row) against chain length n."""
    plt = pyplot()
    fig, axes = plt.subplots(2, len(models), figsize=(4.6 * len(models), 7.2), squeeze=False)
    for c, model in enumerate(models):
        for r, (key, label) in enumerate(
            (("social_welfare", "expected SW"), ("transaction_volume", "expected TV"))
        ):
            ax = axes[r][c]
            for mech in MECHANISMS:
                sel = sorted(
                    (x for x in rows if x["model"] == model and x["mechanism"] == mech), key=lambda x: x["n"]
                )
                ax.plot(
                    [x["n"] for x in sel],
                    [x[key] for x in sel],
                    linestyle=_STYLES[mech][0],
                    marker=_STYLES[mech][1],
                    markersize=7 - 1.5 * MECHANISMS.index(mech),  # a smaller marker on top stays visible
                    label=mech.upper(),
                    color=_COLORS[mech],
                )
            ax.set_title(f"{paper_name(model)}: {label}")
            ax.set_xticks(sorted({x["n"] for x in rows}))  # chain lengths are integers
            ax.set_xlabel("chain length n")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0][0].legend(loc="best", fontsize=8)  # inside the axes
    fig.suptitle("Expected welfare and transaction volume against chain length (exact)")
    fig.tight_layout()
    return save_figure(fig, path)


def reproduce(
    out: str | Path,
    *,
    models: Sequence[str] = MODELS,
    n: int = 5,
    n_values: Sequence[int] = range(2, 9),
    seeds: int = 5,
    samples: int = 10_000,
    opt_random_starts: int = 4,
    opt_max_evals: int = 20_000,
    sweep_random_starts: int = 2,
    sweep_max_evals: int = 2_500,
    opt_time_limit: float = 60.0,
    certify: bool = True,
    progress: bool = True,
    root_seed: int = MC_ROOT_SEED,
    fmt: str = "png",
) -> dict[str, Any]:
    """Regenerate Table 1, Figure 2 and Figure 3 into ``out``.

    Parameters
    ----------
    out : path
        Output directory (created).
    models : sequence of str, default ("paper-1", "paper-2", "paper-4")
    n : int, default 5
        Chain length of Table 1 and Figure 2.
    n_values : sequence of int, default 2..8
        Chain lengths of Figure 3.
    seeds, samples : int, default 5, 10000
        The paper's Monte Carlo protocol (beside the exact values).
    opt_random_starts : int, default 4
        Random starts of OPT for Table 1 (besides RAW, AVE, TBDS).
    opt_max_evals : int, default 20000
        OPT budget (exact solves) per model for Table 1 — the search converges well before.
    sweep_random_starts : int, default 2
        Random starts of OPT in the Figure 3 sweep.
    sweep_max_evals : int, default 2500
        OPT budget (exact solves) per (model, n) in the sweep (deterministic, so the figure is
        reproducible on any machine; ``converged`` in ``figure3.csv`` says whether it bound).
    opt_time_limit : float, default 60
        Wall-clock safety net of every OPT search (seconds).
    certify : bool, default True
        LP-certify every Table 1 equilibrium.
    progress : bool, default True
        Rich progress bars on stderr.
    root_seed : int, default MC_ROOT_SEED
        Root of the per-cell Monte Carlo streams.
    fmt : {"png", "pdf", "svg"}, default "png"
        Format of the figures (``figure2.FMT``, ``figure3.FMT``; files keys ``figure2_FMT``, ...).

    Returns
    -------
    dict
        Summary: ``table1`` rows, file paths, timings, provenance.
    """
    fmt = figure_format(fmt)
    out = check_writable(out, directory=True, what="output directory")
    # every count and limit is checked before the directory is touched (or marked incomplete)
    for name, value, least in (
        ("seeds", seeds, 1),
        ("samples", samples, 2),
        ("opt_random_starts", opt_random_starts, 0),
        ("opt_max_evals", opt_max_evals, 1),
        ("sweep_random_starts", sweep_random_starts, 0),
        ("sweep_max_evals", sweep_max_evals, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise InvalidInputError(f"{name} must be an integer >= {least}, got {value!r}")
    check_time_limit(opt_time_limit, "opt_time_limit")
    check_seed(root_seed, "root_seed")
    out.mkdir(parents=True, exist_ok=True)
    if incomplete_marker(out) is not None:  # a killed or failed earlier run: say so, then replace it
        warnings.warn(
            f"{str(out)!r} holds an incomplete earlier run; its files are being replaced", stacklevel=2
        )
    mark_incomplete(out, "chain reproduction")  # removed only once summary.json is written
    t0 = time.perf_counter()
    table, fig2, opt_table = table1_rows(
        models,
        n,
        seeds,
        samples,
        {"time_limit": opt_time_limit, "random_starts": opt_random_starts, "max_evals": opt_max_evals},
        certify=certify,
        progress=progress,
        root_seed=root_seed,
    )
    t1 = time.perf_counter()
    fig3, opt_sweep = figure3_rows(
        models,
        n_values,
        {"time_limit": opt_time_limit, "random_starts": sweep_random_starts, "max_evals": sweep_max_evals},
        progress=progress,
    )
    t2 = time.perf_counter()
    files = {
        "table1_csv": atomic_write_csv(out / "table1.csv", table),
        "table1_md": atomic_write_text(out / "table1.md", _table1_markdown(table)),
        "figure2_csv": atomic_write_csv(out / "figure2.csv", fig2),
        f"figure2_{fmt}": plot_figure2(fig2, out / f"figure2.{fmt}", models),
        "figure3_csv": atomic_write_csv(out / "figure3.csv", fig3),
        f"figure3_{fmt}": plot_figure3(fig3, out / f"figure3.{fmt}", models),
        "opt_mechanisms": atomic_write_json(
            out / "opt_mechanisms.json", {"table1": opt_table, "figure3": opt_sweep}
        ),
    }
    t3 = time.perf_counter()
    file_names = {k: str(v) for k, v in files.items()}
    summary = {
        "table1": table,
        "files": file_names,
        "all_certified": all(r.get("certified", True) for r in table),
        "opt_beats_baselines": {
            m: opt_table[m]["social_welfare"]
            >= max(r["social_welfare"] for r in table if r["model"] == m and r["mechanism"] != "opt")
            for m in opt_table
        },
        "config": {
            "models": list(models),
            "n": n,
            "n_values": list(n_values),
            "seeds": seeds,
            "samples": samples,
            "mc_root_seed": root_seed,
            "opt_random_starts": opt_random_starts,
            "opt_max_evals": opt_max_evals,
            "sweep_random_starts": sweep_random_starts,
            "sweep_max_evals": sweep_max_evals,
            "opt_time_limit": opt_time_limit,
        },
        "timings": {
            "table1_seconds": t1 - t0,
            "figure3_seconds": t2 - t1,
            "write_seconds": t3 - t2,
            "total_seconds": t3 - t0,
        },
        "meta": provenance(),
    }
    files["summary"] = atomic_write_json(out / "summary.json", summary)
    file_names["summary"] = str(files["summary"])
    mark_complete(out)
    return summary
