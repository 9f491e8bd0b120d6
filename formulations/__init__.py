"""Declarative programs (Pyomo, cvxpy, highspy arrays) built from a graph and a model, solved with
HiGHS by default, each returning a :class:`~datamarkets.result.Result` with a certificate.

Modules are imported on demand: ``from datamarkets.formulations import chain_certificate``.
"""
