"""The first hour of a new user (issue 11): version flag, flags in help, tables that say what they
hide, bench results never overwritten silently, progress/time limits on auctions, paper figures."""

from __future__ import annotations

import inspect
import io
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from datamarkets import __version__
from datamarkets.cli import app, bench_report, bench_solvers, chain_experiments
from datamarkets.cli import common as cli_common
from datamarkets.cli import gne as cli_gne

from helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
runner = CliRunner()


def dm(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``datamarkets ARGS...`` in a subprocess at 80 columns (:func:`helpers.run_cli`)."""
    return run_cli(*args, cwd=cwd, env={"COLUMNS": "80"})


# --- item 4: --version, flags, tables, bench --------------------------------------------------


def test_version_flag_and_command_agree():
    flag = runner.invoke(app, ["--version"])
    cmd = runner.invoke(app, ["version"])
    assert flag.exit_code == 0 and cmd.exit_code == 0
    assert flag.output.strip() == cmd.output.strip() == __version__


@pytest.mark.parametrize(
    "args", [["auction", "solve"], ["gne", "solve"], ["chain", "solve"], ["solve"], ["bench", "solvers"], []]
)
def test_flags_do_not_show_a_bool_value(args):
    out = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "120"}).output
    assert "--help" in out
    assert "<bool>" not in out and "BOOLEAN" not in out


def _capture(monkeypatch, width: int) -> io.StringIO:
    buf = io.StringIO()
    monkeypatch.setattr(cli_common, "stdout", Console(file=buf, width=width, color_system=None))
    return buf


def test_print_table_says_how_many_rows_are_hidden(monkeypatch):
    buf = _capture(monkeypatch, 80)
    cli_common.print_table("prices", ["seller", "price"], [[f"s{i}", i / 3] for i in range(30)], total=1000)
    text = buf.getvalue()
    assert "s29" in text and "s30" not in text
    assert "30 of 1000 rows shown, 970 hidden" in text and "--all" in text and "--json" in text
    buf = _capture(monkeypatch, 80)
    cli_common.print_table("prices", ["seller", "price"], [["s0", 1.0]], total=1)
    assert "hidden" not in buf.getvalue()


def test_print_table_edge_cases(monkeypatch):
    buf = _capture(monkeypatch, 80)
    cli_common.print_table("one column", ["only"], [["a"], ["[bold]b[/bold]"]])
    text = buf.getvalue()
    assert "one column" in text and "[bold]b[/bold]" in text  # values are text, never markup
    buf = _capture(monkeypatch, 80)
    cli_common.print_table("empty", ["k", "v"], [], total=0)
    assert "empty" in buf.getvalue() and "hidden" not in buf.getvalue()


def test_print_table_never_cuts_columns_or_cells(monkeypatch):
    buf = _capture(monkeypatch, 80)
    cols = ["buyer", *[f"source_{j:02d}" for j in range(40)]]
    rows = [[f"b{k}", *[1234.5678 + j for j in range(40)]] for k in range(3)]
    cli_common.print_table("d", cols, rows)
    text = buf.getvalue()
    assert "…" not in text
    for j in range(40):  # every header and every value is printed in full
        assert f"source_{j:02d}" in text and f"{1234.5678 + j:.6g}" in text
    assert "(columns 2–" in text and "of 41)" in text
    # a long title over a narrow part stays whole on one line (it wrapped to the part's width)
    title = "auction-welfare: medians over seeds (ratio = solve time / HiGHS's)"
    buf = _capture(monkeypatch, 80)
    cli_common.print_table(title, ["solver", *[f"column_{j}" for j in range(7)]], [["highs", *range(7)]])
    parts = [line for line in buf.getvalue().splitlines() if line.startswith(title)]
    assert len(parts) >= 2 and all(line.rstrip().endswith("of 8)") for line in parts), buf.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    long = "x" * 200
    buf = _capture(monkeypatch, 80)
    cli_common.print_table("failures", ["solver", "error"], [["scs", long]], compact=True)
    assert buf.getvalue().replace("\n", "").replace(" ", "").count("x") == 200  # wrapped, not cut


def test_auction_solve_all_and_hidden_rows(tmp_path):
    market = tmp_path / "m.json"
    assert dm("auction", "generate", "--buyers", "40", "--sellers", "4", "--out", str(market)).returncode == 0
    short = dm("auction", "solve", "--graph", str(market))
    assert short.returncode == 0, short.stderr
    assert "rows shown" in short.stdout and "hidden (--all prints every row" in short.stdout
    full = dm("auction", "solve", "--graph", str(market), "--all")
    assert full.returncode == 0 and "hidden" not in full.stdout
    n_alloc = len(json.loads(dm("auction", "solve", "--graph", str(market), "--json").stdout)["allocation"])
    assert n_alloc > 30 and f"allocation ({n_alloc} rows)" in full.stdout


def test_bench_refuses_to_overwrite_and_writes_the_chosen_format(tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "solvers", "--family", "chain-equilibrium", "--sizes", "4", "--seeds", "1"]
    args += ["--solvers", "direct", "--no-warmup", "--out", str(out)]
    first = dm(*args)
    assert first.returncode == 0, first.stderr
    csv = (out / "bench_solvers.csv").read_bytes()
    again = dm(*args, "--format", "svg")
    assert again.returncode == 2
    assert "already holds bench results" in again.stderr and "--overwrite" in again.stderr
    assert again.stderr.count("\n") == 1 and (out / "bench_solvers.csv").read_bytes() == csv
    assert not list(out.glob("*.svg"))
    forced = dm(*args, "--format", "svg", "--overwrite")
    assert forced.returncode == 0, forced.stderr
    svg = out / "bench_solvers-chain-equilibrium.svg"
    assert b"<svg" in svg.read_bytes()[:2000]
    assert not (out / "bench_solvers-chain-equilibrium.png").exists()  # no stale plot of the earlier run
    bad = dm(*args[:-1], str(tmp_path / "other"), "--format", "jpg")
    assert bad.returncode == 2 and "unknown figure format 'jpg'" in bad.stderr


# --- item 2: progress and --time-limit on auction solve --------------------------------------


def test_auction_solve_time_limit_is_validated_and_passed():
    market = str(DATA / "auction_market.json")
    for bad in ("-1", "0", "nan"):
        r = dm("auction", "solve", "--graph", market, "--time-limit", bad)
        assert r.returncode == 2 and "--time-limit" in r.stderr, (bad, r.stderr)
    ok = dm("auction", "solve", "--graph", market, "--method", "kkt", "--time-limit", "30", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["welfare"] == pytest.approx(13.708333333, rel=1e-7)
    from datamarkets.models.psp_dynamics import psp_dynamics

    psp = dm("auction", "solve", "--graph", market, "--method", "psp", "--time-limit", "30")
    if "time_limit" in inspect.signature(psp_dynamics).parameters:
        assert psp.returncode == 0, psp.stderr
    else:  # said plainly, never ignored
        assert psp.returncode == 2 and "not supported by --method psp" in psp.stderr


def test_auction_progress_goes_to_stderr_and_respects_the_switch(monkeypatch):
    from datamarkets import progress

    monkeypatch.setenv("DATAMARKETS_NO_PROGRESS", "1")
    with progress.status("x"):
        pass  # disabled: no display object, nothing raised
    monkeypatch.delenv("DATAMARKETS_NO_PROGRESS")
    r = dm("auction", "solve", "--graph", str(DATA / "auction_market.json"), "--method", "psp", "--json")
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)  # stdout stays pure JSON (progress, when drawn, is on stderr)


# --- item 5: figures --------------------------------------------------------------------------


def test_save_figure_formats(tmp_path):
    from datamarkets.errors import InvalidInputError
    from datamarkets.plotting import figure_format, pyplot, save_figure

    heads = {"png": b"\x89PNG", "pdf": b"%PDF"}
    for fmt in ("png", "pdf", "svg"):
        fig, ax = pyplot().subplots()
        ax.plot([0, 1], [0, 1], label=r"$\gamma_1$")
        p = save_figure(fig, tmp_path / f"f.{fmt}")
        data = p.read_bytes()
        assert data.startswith(heads[fmt]) if fmt in heads else b"<svg" in data[:2000]
    with pytest.raises(InvalidInputError, match="png, pdf, svg"):
        figure_format("eps")


def test_paper_model_names():
    paper_name = chain_experiments.paper_name
    assert [paper_name(m) for m in ("paper-1", "paper-2", "paper-4", "custom")] == [
        "Model 1",
        "Model 2",
        "Model 4",
        "custom",
    ]


def _capture_figures(monkeypatch) -> list:
    import datamarkets.plotting as plotting

    figs: list = []

    def keep(fig, path, dpi=110):
        figs.append(fig)
        return Path(path)

    monkeypatch.setattr(plotting, "save_figure", keep)
    monkeypatch.setattr(chain_experiments, "save_figure", keep)  # imported by name there
    monkeypatch.setattr(bench_report, "save_figure", keep)
    return figs


def test_chain_figures_follow_the_paper(monkeypatch, tmp_path):
    MECHANISMS = chain_experiments.MECHANISMS
    plot_figure2, plot_figure3 = chain_experiments.plot_figure2, chain_experiments.plot_figure3

    figs = _capture_figures(monkeypatch)
    rows2 = [
        {"model": m, "mechanism": k, "quantity": q, "index": i, "exact": 0.5}
        for m in ("paper-1", "paper-2")
        for k in MECHANISMS
        for q in ("trade_success", "player_utility")
        for i in range(1, 4)
    ]
    # identical values for every mechanism: the curves coincide and must still be told apart
    rows3 = [
        {"model": m, "mechanism": k, "n": n, "social_welfare": 1.0, "transaction_volume": 0.5}
        for m in ("paper-1", "paper-2")
        for k in MECHANISMS
        for n in (2, 3, 4)
    ]
    plot_figure2(rows2, tmp_path / "f2.png", models=("paper-1", "paper-2"))
    plot_figure3(rows3, tmp_path / "f3.png", models=("paper-1", "paper-2"))
    assert len(figs) == 2
    for fig in figs:
        assert "Figure" not in fig._suptitle.get_text()
        titles = [ax.get_title() for ax in fig.axes]
        assert any(t.startswith("Model 1") for t in titles) and not any("paper-" in t for t in titles)
        assert not fig.legends and fig.axes[0].get_legend() is not None  # legend inside an axes
        for ax in fig.axes:
            for text in (
                [ax.get_ylabel(), *[t.get_text() for t in ax.get_legend().get_texts()]]
                if ax.get_legend()
                else [ax.get_ylabel()]
            ):
                assert "\\" not in text or text.count("$") >= 2  # TeX only as mathtext
    lines = figs[1].axes[0].get_lines()
    assert len({(ln.get_linestyle(), ln.get_marker()) for ln in lines}) == len(MECHANISMS)


def test_chain_figure2_legend_covers_no_bar(monkeypatch, tmp_path):
    """Bars of height 1 (a trade that always happens, OPT in Model 1) stay visible beside the
    legend: no bar's drawn extent meets the legend's (it did with the axes ending at 1.05)."""
    figs = _capture_figures(monkeypatch)
    rows = [
        {"model": m, "mechanism": k, "quantity": q, "index": i, "exact": 1.0 if q == "trade_success" else 0.5}
        for m in ("paper-1", "paper-2")
        for k in chain_experiments.MECHANISMS
        for q in ("trade_success", "player_utility")
        for i in range(1, 6)
    ]
    chain_experiments.plot_figure2(rows, tmp_path / "f2.png", models=("paper-1", "paper-2"))
    fig = figs[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax for ax in fig.axes if ax.get_legend() is not None]
    assert legends
    for ax in legends:
        box = ax.get_legend().get_window_extent(renderer)
        assert ax.get_window_extent(renderer).contains(box.x0, box.y0)  # inside the axes
        assert not any(box.overlaps(bar.get_window_extent(renderer)) for bar in ax.patches)


def test_gne_figure_labels_are_mathtext_and_coincident_curves_differ(monkeypatch, tmp_path):
    labels, write_figures, two_firm_sweep = (
        cli_gne.FIGURE_LABELS,
        cli_gne.write_figures,
        cli_gne.two_firm_sweep,
    )

    for label in labels.values():
        assert "_" not in label.replace("$", "") or label.count("$") >= 2
    figs = _capture_figures(monkeypatch)
    rows = two_firm_sweep([-0.5, 0.0, 0.5])
    write_figures(rows, tmp_path, 1e-6, "pdf")
    assert len(figs) == 4
    d_fig = figs[2]
    lines = d_fig.axes[0].get_lines()
    assert len(lines) == 4 and len({(ln.get_linestyle(), ln.get_marker()) for ln in lines}) == 4
    assert all("Figure" not in ax.get_title() for f in figs for ax in f.axes)
    mathtext_number = cli_gne.mathtext_number
    assert [mathtext_number(v) for v in (1e-6, 2.5e-7, 0.5, 1.0)] == [
        "10^{-6}",
        r"2.5 \cdot 10^{-7}",
        "0.5",
        "1",
    ]


def test_bench_plot_marks_time_limit_runs(monkeypatch, tmp_path):
    COLUMNS, plot_bench = bench_solvers.COLUMNS, bench_report.plot_bench

    figs = _capture_figures(monkeypatch)
    base = {c: None for c in COLUMNS}
    rows = []
    for size in (10, 100):
        for solver, status, t in (("highs", "optimal", 0.01 * size), ("clarabel", "optimal", 0.01 * size)):
            rows.append(
                {
                    **base,
                    "family": "auction-welfare",
                    "size": size,
                    "seed": 0,
                    "solver": solver,
                    "status": status,
                    "build_seconds": 0.001,
                    "solve_seconds": t,
                }
            )
    rows.append(
        {
            **base,
            "family": "auction-welfare",
            "size": 100,
            "seed": 1,
            "solver": "highs",
            "status": "time_limit",
            "build_seconds": 0.001,
            "solve_seconds": 5.0,
        }
    )
    plot_bench(pd.DataFrame(rows), "auction-welfare", tmp_path / "b.png")
    assert len(figs) == 1
    solve_ax = figs[0].axes[1]
    labels = [t.get_text() for t in solve_ax.get_legend().get_texts()]
    assert any("time limit" in lab for lab in labels)
    # whose run hit the limit: the cross in HiGHS's line colour, and its name beside it
    from matplotlib.collections import PathCollection  # scatter; the bands are PolyCollections
    from matplotlib.colors import to_rgba

    [cross] = [c for c in solve_ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())]
    highs_line = next(ln for ln in solve_ax.get_lines() if ln.get_label() == "highs")
    assert tuple(cross.get_facecolor()[0]) == to_rgba(highs_line.get_color())
    assert [t.get_text() for t in solve_ax.texts] == ["highs"]
    lines = solve_ax.get_lines()  # highs and clarabel coincide: told apart by style and marker
    assert len({(ln.get_linestyle(), ln.get_marker()) for ln in lines}) == 2


def test_gne_d_table_with_many_sources_is_complete(tmp_path):
    from datamarkets.graphs.estimation_market import write_estimation_market
    from datamarkets.models.estimators import random_estimation_market

    path = tmp_path / "est.json"
    write_estimation_market(random_estimation_market(2, 40, degree=1, seed=0), path)
    r = dm("gne", "solve", "--graph", str(path), "--no-best-response")
    assert r.returncode == 0, r.stderr
    assert "d (columns: buyers)" in r.stdout and "…" not in r.stdout
    for j in range(40):  # one row per source, all of them
        assert f"\n s{j} " in r.stdout
