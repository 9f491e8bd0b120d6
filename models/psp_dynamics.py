r"""PSP auction dynamics: rounds of ε-best replies until no bid moves.

Every buyer i holds a bid s_i^j = (p_i^j, d_i^j) at each seller j it is joined to (initially
(0, 0)). In a round, buyers are visited in a fixed order (``"asynchronous"``: each reply is
applied at once, Gauss–Seidel; ``"synchronous"``: all replies are computed against the profile
at the start of the round and applied together, Jacobi). A visited buyer computes its ε-best reply
t_i (:func:`datamarkets.models.psp.best_reply`, draft eqs. 3–4) and moves to it only when that
raises its utility u_i = θ_i(a_i(s)) − c_i(s), evaluated with the PSP allocation and
exclusion-compensation rules, by more than its bid fee ε_i (Lazar–Semret's ε-best reply dynamics).
The auction stops after the first round in which no bid moved: every buyer is then within ε_i
of its (ε-)best reply, an ε-Nash equilibrium of the PSP game.

``epsilon`` is absolute (``relative=False``) or relative (default): ε_i = ε · θ_i(z̄_i) with
z̄_i = min(peak_i, D_i, Σ_{j∈N(i)} Q^j) (min over the route's links for a route user), the largest
value buyer i can ever obtain; "ε = 10⁻³ relative" means no buyer can gain more than 0.1 % of that.

Messages: each accepted move sends one bid to each seller of the buyer and each of those sellers
notifies its other bidders of the new profile; ``messages`` counts both kinds. A buyer that is
skipped or declines to move sends nothing. ``evaluations`` counts the ε-best replies computed
(the buyer's decisions), not the skipped visits.

Speed (same rules, same ε-best reply, same stopping rule, same visit order):

- Event-driven scheduling (``skip_unchanged``, exact): every seller has a version counter, bumped
  when any bid on it changes. A buyer's reply depends only on the others' bids at its sellers, so a
  buyer whose sellers' versions are unchanged since its last evaluation (it declined, or moved to
  the reply it would compute again) is skipped as a no-move; "a round with no bid moving" is then
  "no buyer left to evaluate". Tested: on vs off give identical profiles, rounds and messages.
- Vectorised replies (:class:`~datamarkets.models.psp_replies.BipartiteReplies`, bipartite
  markets): the others' bids at a buyer's sellers are gathered through a static padded
  neighbour-index matrix and all its price curves, its merged curve, its reply and both utilities
  are computed with a fixed number of numpy calls. For all-quadratic markets the replies of the
  next 16 buyers of the visit order are computed in one batch against the current profile and used
  at a buyer's turn only if no bid at its sellers changed in between (else recomputed), so the
  sequence of decisions is the one-by-one sequence. Tested against
  :func:`~datamarkets.models.psp_replies.reference_reply` (built from
  :func:`~datamarkets.models.psp.best_reply`); both live in :mod:`datamarkets.models.psp_replies`.
- ε-scaling (``scaling``) cuts the O(1/ε) rounds of the creeping ε-best-reply dynamics: truthful
  replies raise a contested price by about b·ε/θ'(0) per move, so without it 50 × 10 at ε = 10⁻³
  takes 1602 rounds; with ``scaling=2`` 116 rounds. 1000 × 100 (5 edges per buyer, seed 0) at
  ε = 10⁻³ relative with ``scaling=2``: 309 rounds, 2.6·10⁵ replies, 31–34 s on a shared 2-core
  machine (139–150 s before the two changes above), welfare within 1.5·10⁻⁵ of the optimum.

Allocation and charge are read off the price curve (c_i = ∫_0^{a_i} P_i, exact without ties; on a
tie the allocation and exclusion-compensation rules are applied).
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from datamarkets.errors import ConvergenceError, InvalidInputError
from datamarkets.graphs.market import MarketArrays, market_arrays
from datamarkets.models.psp_certificate import (
    buyer_epsilons,
    certify_psp,
    exact_best_replies,
    psp_outcome,
    psp_prices,
)
from datamarkets.models.psp_replies import BipartiteReplies, PSPState, reference_reply
from datamarkets.progress import make_progress
from datamarkets.result import Certificate, Result, Timer, provenance
from datamarkets.solvers import Deadline
from datamarkets.status import Status
from datamarkets.validation import check_integer, check_seed, check_time_limit, check_tolerances

__all__ = ["PSPState", "buyer_utilities", "psp_dynamics"]

_BATCH = 16  # buyers per speculative batch of replies (see psp_dynamics)


def buyer_utilities(st: PSPState) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-edge allocation a_e and charge c_e, per-buyer quantity A_i and utility u_i of a profile
    (:func:`~datamarkets.models.psp_certificate.psp_outcome` of the state's bids)."""
    return psp_outcome(st.market, st.price, st.quantity)


def psp_dynamics(
    G: nx.Graph,
    epsilon: float = 1e-3,
    *,
    relative: bool = True,
    order: str = "asynchronous",
    max_rounds: int = 1000,
    seed: int | None = None,
    scaling: float | None = None,
    start_epsilon: float = 0.1,
    skip_unchanged: bool = True,
    replies: str = "batched",
    progress: bool = False,
    time_limit: float | None = None,
) -> Result:
    """Run PSP ε-best-reply dynamics on a market graph until no bid moves.

    Parameters
    ----------
    G : networkx.Graph
        A market (:mod:`datamarkets.graphs.market`), bipartite or routes.
    epsilon : float, default 1e-3
        Bid fee ε > 0, relative to each buyer's largest attainable value unless ``relative=False``.
    relative : bool, default True
        See the module docstring.
    order : {"asynchronous", "synchronous"}
        Visit order of a round.
    max_rounds : int, default 1000
        Round cap.
    seed : int, optional
        If given, buyers are visited in a random order, reshuffled each round (else index order).
    scaling : float, optional
        ε-scaling factor (> 1). If given, the auction first runs with bid fees ε·scaling^K (the
        largest not above ``start_epsilon``), then ε·scaling^{K−1}, ..., ε, each stage starting from
        the previous stage's bids. Only the last stage's stopping rule matters for the result (an
        ε-equilibrium at ε); ``rounds``/``messages`` count all stages. Default: one stage.
        Whatever ``scaling``, when the stage at fee ε stops where some buyer's *exact* best reply
        gains more than ε_i (possible: the ε-best reply leaves up to ε_i on the table), one more
        stage at fee ε/2 follows, so the result is an ε-Nash point by the exact best reply
        (:func:`~datamarkets.models.psp_certificate.certify_psp`).
    start_epsilon : float, default 0.1
        Upper bound of the first stage's (relative or absolute) ε when ``scaling`` is set.
    skip_unchanged : bool, default True
        Event-driven scheduling: skip a buyer when no bid at any of its sellers changed since its
        last evaluation (it would reproduce the same decision, a no-move). Exact: ``False`` gives the
        identical bid profile, rounds and messages, only more ``evaluations``.
    replies : {"batched", "reference"}, default "batched"
        How best replies are evaluated: ``"batched"`` vectorises them over buyers on bipartite
        markets (speculative batches on quadratic ones); ``"reference"`` computes each one by
        :func:`~datamarkets.models.psp_replies.reference_reply`. Both give the same dynamics.
    progress : bool
        Show a progress bar over rounds on stderr.
    time_limit : float, optional
        Wall-clock seconds for the whole run (build included); the clock is checked before every
        window of replies. When it runs out the result has status ``time_limit``, the bids reached
        so far and no reply-gain certificate (no ε-Nash claim is made).

    Returns
    -------
    Result
        ``kind="auction-psp"``, ``method="psp"``; solution keys ``welfare``, ``allocation`` (list of
        ``{"buyer", "seller", "amount"}``), ``prices`` (seller → lowest bid price with a positive
        allocation if the seller sold out up to the winners' ε_i/θ_i'(0) step-backs, else 0;
        with supply 0, max θ_i'(x_i) over its buyers), ``bids`` (per edge ``price``/``quantity``),
        ``payments`` (per edge), ``buyer_quantity``, ``utilities``, ``epsilons``, ``rounds``,
        ``stage_rounds``, ``messages``, ``evaluations`` (module docstring), ``order``.
        Certificate: :func:`~datamarkets.models.psp_certificate.certify_psp` (the exact best-reply
        gain of every buyer within ε_i, the final charges within the budgets, allocations within
        supply, every reported number recomputed).

    Raises
    ------
    InvalidInputError
        Bad ``epsilon``/``order``/``max_rounds``; :class:`~datamarkets.errors.GraphError` for a bad market.
    ConvergenceError
        If ``max_rounds`` rounds pass with bids still moving (carries ``iterations``).

    Examples
    --------
    >>> from datamarkets.graphs.market import single_resource
    >>> from datamarkets.graphs.valuations import QuadraticValuation
    >>> G = single_resource(2.0, [QuadraticValuation(3, 1), QuadraticValuation(3, 1)])
    >>> r = psp_dynamics(G, 1e-3)
    >>> abs(r.solution["welfare"] - 5.0) < 0.01  # optimum: 1 unit each, welfare 2·(3 − 1/2) = 5
    True
    """
    check_tolerances(start_epsilon=start_epsilon)
    check_integer(max_rounds, "max_rounds", 1)
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise InvalidInputError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    if order not in ("asynchronous", "synchronous"):
        raise InvalidInputError(f"order must be 'asynchronous' or 'synchronous', got {order!r}")
    if int(max_rounds) < 1:
        raise InvalidInputError(f"max_rounds must be >= 1, got {max_rounds!r}")
    if replies not in ("batched", "reference"):
        raise InvalidInputError(f"unknown replies {replies!r}; choose one of batched, reference")
    if scaling is not None and not (math.isfinite(scaling) and scaling > 1):
        raise InvalidInputError(f"scaling must be a finite number > 1, got {scaling!r}")
    deadline = Deadline(check_time_limit(time_limit, "time_limit"))
    timer = Timer()
    with timer("build_seconds"):
        m = market_arrays(G)
        st = PSPState.empty(m)
        eps = buyer_epsilons(m, float(epsilon), relative)
        seller_deg = np.array([idx.size for idx in st.seller_edges])
        batched = replies == "batched" and m.kind == "bipartite" and m.n_edges
        fast = BipartiteReplies(st) if batched else None
        use_batch = fast is not None and fast.quadratic and all(x is not None for x in fast.nb)
        batch = _BATCH if use_batch else 1
    rng = np.random.default_rng(check_seed(seed)) if seed is not None else None
    messages = 0
    evaluations = 0
    recomputed = 0
    rounds = 0
    timed_out = False
    stage_rounds: list[int] = []
    # ε-scaling (Bertsekas' remedy for the same creep in auction algorithms): optional coarse
    # stages ε·scaling^K, ..., ε·scaling, each warm-started from the previous profile; the
    # stopping rule of the last stage (ε itself) is unchanged, so the result is an ε-equilibrium.
    factors = [1.0]
    if scaling is not None:
        while (
            factors[-1] * float(epsilon) * float(scaling) <= max(float(start_epsilon), float(epsilon)) + 1e-15
        ):
            factors.append(factors[-1] * float(scaling))
    with timer("solve_seconds"), make_progress() as bar:
        task = bar.add_task("PSP rounds", total=max_rounds, visible=progress)
        stages = list(reversed(factors))
        k_stage = 0
        while k_stage < len(stages):
            f = stages[k_stage]
            k_stage += 1
            eps_stage = eps * f
            # a buyer whose sellers' bids did not change since it last declined to move would
            # compute the same reply and decline again: skip it (exactly the same dynamics)
            version = st.version
            seen = np.full(m.n_buyers, -1, dtype=np.int64)

            def _stamp(i: int, version: np.ndarray = version) -> int:
                return int(version[m.edge_seller[m.buyer_ptr[i] : m.buyer_ptr[i + 1]]].sum())

            converged = False
            r0 = rounds
            while rounds < max_rounds:
                rounds += 1
                visit = rng.permutation(m.n_buyers) if rng is not None else np.arange(m.n_buyers)
                moves: list[tuple[slice, np.ndarray, np.ndarray, np.ndarray] | None] = []
                pos = 0
                while pos < visit.size:
                    if deadline.expired:
                        timed_out = True
                        break
                    # a window of the visit order; replies of its buyers that are due now are
                    # computed in one batch against the current profile and used only if nothing
                    # changed at their sellers before their turn (else recomputed): identical to
                    # evaluating one buyer at a time
                    window = visit[pos : pos + batch]
                    pos += window.size
                    pre: dict[int, tuple] = {}
                    if use_batch and fast is not None:
                        due = [(int(i), _stamp(i)) for i in window]
                        due = [(i, s) for i, s in due if not (skip_unchanged and seen[i] == s)]
                        if due:
                            ids = np.array([i for i, _ in due])
                            res = fast.replies(m, ids, eps_stage[ids])
                            for r_, (i, s) in enumerate(due):
                                ni = int(m.buyer_ptr[i + 1] - m.buyer_ptr[i])
                                pre[i] = (s, res[0][r_, :ni], res[1][r_, :ni], res[2][r_], res[3][r_])
                    for i in window:
                        i = int(i)
                        sl = slice(m.buyer_ptr[i], m.buyer_ptr[i + 1])
                        js = m.edge_seller[sl]
                        stamp = int(version[js].sum())
                        if skip_unchanged and seen[i] == stamp:  # nothing changed at its sellers
                            continue
                        evaluations += 1
                        got = pre.get(i)
                        if got is not None and got[0] == stamp:
                            _, b_p, b_q, u_cur, u_new = got
                        elif fast is not None:
                            recomputed += use_batch
                            b_p, b_q, u_cur, u_new = fast.reply(m, i, eps_stage[i])
                        else:
                            r, u_cur, u_new = reference_reply(st, i, eps_stage[i])
                            b_p, b_q = r.prices, r.quantities
                        if u_new > u_cur + eps_stage[i]:
                            if order == "asynchronous":
                                st.price[sl], st.quantity[sl] = b_p, b_q
                                version[js] += 1
                                moves.append(None)
                            else:
                                moves.append((sl, b_p, b_q, js))
                            messages += int(js.size + np.sum(seller_deg[js] - 1))
                            # its reply depends on the others' bids only: once applied, re-evaluating
                            # it against unchanged others gives u_new = u_cur, no move — unless another
                            # bid at one of its sellers changes (then the sum exceeds this stamp)
                            seen[i] = stamp + js.size
                        else:
                            seen[i] = stamp
                for mv in moves:
                    if mv is not None:
                        st.price[mv[0]], st.quantity[mv[0]] = mv[1], mv[2]
                        version[mv[3]] += 1
                bar.update(task, advance=1)
                if timed_out:
                    break
                if not moves:
                    converged = True
                    break
            stage_rounds.append(rounds - r0)
            if timed_out:
                break
            if not converged:
                raise ConvergenceError(f"PSP dynamics ({order}) still moving bids", rounds)
            if k_stage == len(stages) and f == 1.0 and _exact_gain_exceeds(m, st, eps):
                # the ε-best reply leaves up to ε_i on the table, so a stop at fee ε only bounds the
                # exact best-reply gain by 2ε_i; one more stage at fee ε/2 stops where every exact
                # gain is ≤ ε_i (an ε-Nash point; the ε/2-best reply is within ε/2 of the best)
                stages.append(0.5)
    a_e, c_e, A, U = buyer_utilities(st)
    welfare = float(sum(float(v.value(x)) for v, x in zip(m.valuations, A, strict=True)))
    prices = psp_prices(m, st.price, a_e, A, eps)
    B, S = m.buyers, m.sellers
    sol = {
        "welfare": welfare,
        "objective": welfare,  # every entry point reports it; certified with the rest (one certificate)
        "allocation": [
            {"buyer": B[m.edge_buyer[e]], "seller": S[m.edge_seller[e]], "amount": float(a_e[e])}
            for e in range(m.n_edges)
        ],
        "prices": prices,
        "bids": [
            {
                "buyer": B[m.edge_buyer[e]],
                "seller": S[m.edge_seller[e]],
                "price": float(st.price[e]),
                "quantity": float(st.quantity[e]),
            }
            for e in range(m.n_edges)
        ],
        "payments": [
            {"buyer": B[m.edge_buyer[e]], "seller": S[m.edge_seller[e]], "amount": float(c_e[e])}
            for e in range(m.n_edges)
        ],
        "buyer_quantity": {B[i]: float(A[i]) for i in range(m.n_buyers)},
        "utilities": {B[i]: float(U[i]) for i in range(m.n_buyers)},
        "epsilons": {B[i]: float(eps[i]) for i in range(m.n_buyers)},
        "epsilon": float(epsilon),
        "relative": bool(relative),
        "rounds": rounds,
        "stage_rounds": stage_rounds,
        "messages": messages,
        "evaluations": evaluations,
        "order": order,
    }
    meta = provenance()
    meta.update(
        {
            "market_kind": m.kind,
            "n_buyers": m.n_buyers,
            "n_sellers": m.n_sellers,
            "n_edges": m.n_edges,
            "batched_replies": bool(use_batch),
            "replies_recomputed": recomputed,
        }
    )
    if timed_out:
        meta["message"] = f"time limit of {time_limit:g} s reached after {rounds} rounds; bids still moving"
        meta["time_limit"] = time_limit
        # no ε-Nash claim after a time limit: no certificate (Result marks it as not passed)
        return Result("auction-psp", Status.TIME_LIMIT, "psp", sol, Certificate(), timer.seconds, meta)
    with timer("certificate_seconds"):  # the one PSP certificate (plug-in, CLI and verify apply it too)
        cert = certify_psp(m, sol, float(epsilon), relative=relative)
    return Result("auction-psp", Status.OPTIMAL, "psp", sol, cert, timer.seconds, meta)


def _exact_gain_exceeds(m: MarketArrays, st: PSPState, eps: np.ndarray, tol: float = 1e-9) -> bool:
    """Whether some buyer's exact best-reply gain exceeds ε_i (the test of :func:`certify_psp`)."""
    _, _, _, U = psp_outcome(m, st.price, st.quantity)
    best, _ = exact_best_replies(m, st.price, st.quantity)
    return bool(np.any(best - U - eps > tol * np.maximum(1.0, np.abs(U))))
