"""The Transforms page's cached theory (not a page: app.py does not list it).

Cached functions live in a module, not in the page script, so they are defined once per
process: a page script re-runs on every widget move, and re-decorating a function makes
streamlit re-read its source to key the cache. Results are shared, not copied: the page only
reads them. The slow, first-time results are st.cache_resource (their spinner tells the user
to wait); the per-move ones are functools.lru_cache, whose key costs microseconds where
Streamlit's argument hashing cost about 2 ms a call, a fifth of a KL-slider rerun. Families
are cached, not points (see :mod:`infalign_core.families`), so a KL-budget move costs milliseconds.
"""

import functools

import numpy as np
import streamlit as st

from infalign_core import explorer, families, figures, procedures, theory, theory_store
from infalign_core.errors import InfAlignError

POLICY_NS = (2, 4, 8, 16, 32, 64, 128, 256)
FRONTIER_BETAS = tuple(np.geomspace(1e-3, 1e3, 160))


@st.cache_resource(show_spinner="Tracing the optimal transform for this N (once per N)…", max_entries=16)
def optimal_family(n, mode):
    """The optimal transform's family for N: after it, every KL budget costs one ODE integration."""
    try:
        return theory_store.load_or_compute(
            "optimal_family", (n, mode), families.OptimalFamily, lambda: families.optimal_family(n, mode)
        )
    except InfAlignError:
        return None  # the exact solver then reports the problem for the budget asked


@st.cache_resource(
    show_spinner="Sweeping the exponential transform over t (once per set of N)…", max_entries=8
)
def exponential_family(ns, mode):
    """The exponential's (t, β) sweep for these N: the best t at any budget is then a lookup."""
    return families.exponential_family(ns, mode)


@functools.lru_cache(maxsize=1024)
def resolve(name, n, mode, t, beta, kl, ns):
    """A Resolved transform, or the error message (cached too, so a bad input stays cheap)."""
    try:
        fams = {}
        if kl is not None and name == "optimal":
            fams["optimal_family"] = optimal_family(n, mode)
        if kl is not None and name == "exp" and t is None:
            # The sidebar N's best t from the exact search, as CTRL and the Tour read it (one
            # function, one value: the family's interpolated t sat 0.05 off in the flat optimum).
            choice = best_exponential_t(n, kl, mode)
            phi = theory.Transform("exp", choice.t, mode)
            label = f"exp (best t={choice.label} for N={n})"
            return explorer.Resolved(
                name, label, phi, choice.beta, n, mode, theory.evaluate(phi, choice.beta, n)
            )
        return explorer.resolve_transform(name, n=n, mode=mode, t=t, beta=beta, kl=kl, **fams)
    except InfAlignError as err:
        return f"{name}: {err}"


@functools.lru_cache(maxsize=1024)
def curves(*key):
    """Φ on [0, 1] and the aligned density of one resolved choice (the ODE's dense output is slow to sample)."""
    r = resolve(*key)
    return {"phi": explorer.transform_curve(r.phi), "density": theory.aligned_policy(r.phi, r.beta).curves(0)}


@functools.lru_cache(maxsize=256)
def frontier_lines(name, label, t, mode, ns):
    """One frontier line per N for a closed-form transform (cached per transform and N set)."""
    return figures.closed_form_frontier_lines(name, label, t, mode, ns, FRONTIER_BETAS)


@st.cache_resource(
    show_spinner="Tracing the optimal transform's frontier (a few seconds per new N)…", max_entries=16
)
def gap(n, mode):
    """The optimal frontier for N beside the best exponential's, or the error message."""
    try:
        return theory_store.load_or_compute(
            "optimal_gap",
            (n, mode, 3.0, 8),
            procedures.OptimalGap,
            lambda: procedures.optimal_gap(procedures.of_n(n, mode), kl_max=3.0, count=8),
        )
    except InfAlignError as err:
        return str(err)


@functools.lru_cache(maxsize=512)
def best_t_rows(ns, kl, mode, family_ns, n=None):
    """The best-t table rows, read off the exponential family; the sidebar N's row by the exact search."""
    family = exponential_family(family_ns, mode)

    def choose(m, budget):
        return best_exponential_t(m, budget, mode) if m == n else family.best_t(m, budget)

    return explorer.best_t_table(ns, kl, mode, choose=choose)


@functools.lru_cache(maxsize=64)
def policy_series(ns, mode):
    """The best-of-n policies' points for the frontier chart."""
    return figures.bon_policy_series(POLICY_NS, ns, mode)


@functools.lru_cache(maxsize=256)
def best_exponential_t(n, kl, mode):
    """The theory's best exponential t for N at a KL budget (the CTRL form's hint; shared by every session)."""
    return procedures.best_exponential_t(procedures.of_n(n, mode), kl)
