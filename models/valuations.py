"""Old import path of the buyer valuations, which moved to :mod:`datamarkets.graphs.valuations`
(market graphs carry them on their buyer nodes, so they sit in the graph layer).

Examples
--------
>>> from datamarkets.models.valuations import QuadraticValuation
>>> QuadraticValuation.__module__
'datamarkets.graphs.valuations'
"""

from __future__ import annotations

from datamarkets.graphs.valuations import *  # noqa: F403
from datamarkets.graphs.valuations import __all__  # noqa: F401
