"""Worked examples shipped with datamarkets (installed as ``datamarkets.examples``).

``cournot_sellers``
    Cournot competition among data sellers on a bipartite graph — the formulation built step by
    step in ``docs/writing-a-formulation.md`` and registered as the ``cournot-sellers`` plug-in
    (potential-game QP, or ``"direct"`` best responses) and ``cournot-sellers-kkt`` (the KKT
    conditions as a big-M MILP).
"""
