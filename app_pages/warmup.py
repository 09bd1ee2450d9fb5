"""Start-up work (not a page: app.py does not list it): trace the slow default theory in the background.

A real server starts one daemon thread per process, at its first session, that fills the
process-wide caches the Transforms page reads at its defaults (the optimal transform's family and
frontier for N = 4, the exponential sweep, the best-t table), so a student opening the page finds
them ready. The slowest of them are also kept on disk (``infalign_core.theory_store``), so a
restarted server reads them in milliseconds. AppTest sessions (tests, benchmarks) skip it, as
does ``INFALIGN_WARMUP=0``.
"""

import logging
import os
import threading

import streamlit as st
from streamlit.runtime import Runtime

from app_pages import theory_cache as tc
from infalign_core import links

THREAD_NAME = "infalign-warmup"


class _QuietWarmup(logging.Filter):
    """Drop Streamlit's "missing ScriptRunContext" notes from the warm-up thread: it has no page to draw on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != THREAD_NAME


def _warm() -> None:
    """Compute what the Transforms page needs at its link defaults, most expensive first."""
    defaults = {param.key: param.default for param in links.TRANSFORMS}
    n, mode, kl = defaults["n"], defaults["mode"], defaults["kl"]
    ns = tuple(sorted(set(defaults["ns"])))
    family_ns = tuple(sorted({*ns, n}))
    tc.optimal_family(n, mode)
    tc.gap(n, mode)
    tc.exponential_family(family_ns, mode)
    tc.best_t_rows(ns, kl, mode, family_ns)
    tc.policy_series(ns, mode)


@st.cache_resource(show_spinner=False)
def start() -> threading.Thread | None:
    """Start the warm-up once per server process (None under AppTest or with INFALIGN_WARMUP=0)."""
    if os.environ.get("INFALIGN_WARMUP", "1").strip() == "0" or type(Runtime._instance) is not Runtime:
        return None
    for name in ("streamlit", "streamlit.runtime.scriptrunner_utils.script_run_context"):
        logging.getLogger(name).addFilter(_QuietWarmup())
    thread = threading.Thread(target=_warm, name=THREAD_NAME, daemon=True)
    thread.start()
    return thread
