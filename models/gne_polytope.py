r"""The c-polytope of a GNE (Theorem 1 with Lemma 1): the equilibrium payments ``c`` given ``d``.

Given the unique Leontief solution :math:`d`, the equilibrium :math:`c` are exactly
:math:`\sum_{j} c_i^j = T_i := \sum_j L_i^j + e_i^*` and
:math:`c_i^k \ge L_i^k := d_i^k \sum_l \xi^k_{i,l} s_l`; the polytope is non-empty iff every
:math:`e_i^* \ge 0` (see :mod:`datamarkets.models.gne_leontief`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from datamarkets.models.gne_inputs import as_gne_inputs, effort_response, variance_response

__all__ = ["CPolytope", "c_polytope"]


# --------------------------------------------------------------------------------------------
# the c-polytope (Theorem 1, Lemma 1)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CPolytope:
    """The equilibrium c's for a given d: :math:`\\sum_j c_i^j = T_i`, :math:`c_i^k \\ge L_i^k`.

    Attributes
    ----------
    lower : ndarray, shape (K, N)
        :math:`L_i^k = d_i^k \\sum_l \\xi^k_{i,l} s_l` (the expected penalty; (21) is
        :math:`c_i^k \\ge L_i^k`); 0 on unused pairs, where ``c = 0`` is fixed.
    total : ndarray, shape (N,)
        :math:`T_i = \\sum_j L_i^j + e_i^*` ((20) tight, Lemma 1).
    effort : ndarray, shape (N,)
        :math:`e_i^*`, the slack each source's c's can share.
    uses : ndarray of bool, shape (K, N)
    """

    lower: NDArray[np.float64]
    total: NDArray[np.float64]
    effort: NDArray[np.float64]
    uses: NDArray[np.bool_]

    @property
    def nonempty(self) -> bool:
        """True iff every source's effort is finite and :math:`\\ge 0` (necessary and sufficient)."""
        return bool(np.all(np.isfinite(self.effort)) and np.all(self.effort >= 0))

    def upper(self) -> NDArray[np.float64]:
        """:math:`c_i^k \\le L_i^k + e_i^*` (the others pay only their :math:`L`)."""
        return np.where(self.uses, self.lower + np.maximum(self.effort, 0.0)[None, :], 0.0)

    def point(self, share: NDArray | None = None) -> NDArray[np.float64]:
        """A point of the polytope: :math:`c = L + e^* \\cdot` ``share`` (columns of ``share``
        sum to 1 over the users; default: proportional to :math:`d`, passed via ``share``, else
        equal split)."""
        if share is None:
            share = self.uses / self.uses.sum(axis=0, keepdims=True)
        return np.where(self.uses, self.lower + share * self.effort[None, :], 0.0)

    def residuals(self, c: NDArray) -> dict[str, float]:
        """Largest violation of the equality rows and of the lower bounds at ``c``."""
        eq = np.abs(np.where(self.uses, c, 0.0).sum(axis=0) - self.total)
        lb = np.maximum(np.where(self.uses, self.lower - c, 0.0), 0.0)
        return {"equality": float(eq.max(initial=0.0)), "lower": float(lb.max(initial=0.0))}

    def constraints(self, buyers: list[Any], sources: list[Any]) -> list[str]:
        """The polytope as readable constraint strings (one equality per source, one bound per pair)."""
        out = []
        for i, s in enumerate(sources):
            users = [k for k in range(len(buyers)) if self.uses[k, i]]
            lhs = " + ".join(f"c[{buyers[k]!r},{s!r}]" for k in users)
            out.append(f"{lhs} = {self.total[i]:.12g}")
            out += [f"c[{buyers[k]!r},{s!r}] >= {self.lower[k, i]:.12g}" for k in users]
        return out

    def payment_range(self) -> dict[str, NDArray[np.float64]]:
        """Per buyer, least and most of :math:`\\sum_i c_i^k` and of the expected payment
        :math:`\\sum_i (c_i^k - L_i^k)` over the polytope (closed form; the HiGHS LP in
        :mod:`datamarkets.formulations.gne_lp` is the cross-check).

        A buyer that is the only user of source ``i`` must pay all of :math:`e_i^*`; otherwise
        it can pay anything in :math:`[0, e_i^*]`.
        """
        e = np.maximum(self.effort, 0.0)
        sole = self.uses & (self.uses.sum(axis=0, keepdims=True) == 1)
        least_pay = (sole * e[None, :]).sum(axis=1)
        most_pay = (self.uses * e[None, :]).sum(axis=1)
        base = self.lower.sum(axis=1)
        return {
            "payment_least": least_pay,
            "payment_most": most_pay,
            "c_least": base + least_pay,
            "c_most": base + most_pay,
        }

    def to_frame(self, table: str | None = None) -> Any:
        """Tidy ``pandas.DataFrame`` of one table, by name (default: the first).

        Tables: pairs, sources, summary; see :func:`datamarkets.frames.object_frame`.
        """
        from datamarkets.frames import object_frame  # lazy: pandas only when a table is asked for

        return object_frame(self, table)


def c_polytope(market: Any, d: ArrayLike) -> CPolytope:
    """The c-polytope of Theorem 1 for the equilibrium ``d`` (shape (K, N)).

    Examples
    --------
    >>> import numpy as np
    >>> from datamarkets.models.gne_inputs import GNEInputs
    >>> xi = np.full((2, 2, 2), 0.5) + 0.5 * np.eye(2)  # xi_{i,l} = 1/2 off the diagonal
    >>> inp = GNEInputs.from_arrays(np.ones((2, 2)), xi, np.ones(2))
    >>> P = c_polytope(inp, np.full((2, 2), 2.0))  # D = 4, e* = ln(8)/2
    >>> P.nonempty, round(float(P.effort[0]), 12) == round(float(np.log(8) / 2), 12)
    (True, True)
    """
    inp = as_gne_inputs(market)
    d = np.where(inp.uses, np.asarray(d, dtype=float), 0.0)
    D = d.sum(axis=0)
    s = variance_response(D, inp.alpha)  # (18)
    e = effort_response(D, inp.alpha)  # (17)
    L = d * np.einsum("kil,l->ki", inp.xi_full, s)  # d_i^k sum_l xi^k_{i,l} s_l
    T = L.sum(axis=0) + e  # Lemma 1: (20) tight
    return CPolytope(L, T, e, inp.uses)
