"""What-if links for the pages: restore widget state from the URL, keep the URL in step, offer a copy.

Not a page (app.py does not list it). The parameters themselves are declared in
:mod:`infalign_core.links`; this module is only the streamlit side.
"""

from collections.abc import Callable, Sequence

import streamlit as st

from infalign_core import links
from infalign_core.text import literal


def restore(spec: Sequence[links.Param], page: str, reader: Callable | None = None) -> dict:
    """Once per session and page: defaults for every linked widget, overridden by the URL's values.

    Returns the values read from the URL on that first run ({} afterwards).

    Widgets on a linked page take their value from session state only (no ``value=``), so
    the default lives in one place and a restored value raises no streamlit warning.
    """
    flag, values = f"_link_restored_{page}", {}
    if not st.session_state.get(flag):
        values, errors = (reader or (lambda p: links.read(p, spec)))(st.query_params.to_dict())
        for param in spec:
            st.session_state[param.key] = values.get(param.key, param.default)
        for key in values.keys() - {param.key for param in spec}:  # widgets a parameter seeds (procedure)
            st.session_state[key] = values[key]
        st.session_state[flag] = True
        st.session_state[f"_link_errors_{page}"] = errors
    for param in spec:  # widgets not drawn on the last run lose their state: give the default back
        st.session_state.setdefault(param.key, param.default)
    for error in st.session_state.get(f"_link_errors_{page}", []):
        st.warning(literal(error))
    return values


def publish(spec: Sequence[links.Param], page: str, container=None) -> str:
    """Write the current state into the URL and show a "Copy link" control; returns the link."""
    params = links.write(st.session_state, spec)
    current = st.query_params.to_dict()
    if current != params:
        st.query_params.from_dict(params)
    link = links.url(_base_url(), page, params)
    with (container or st).popover("Copy link", icon=":material/link:"):
        st.caption("This view as a link (the copy button is at the code block's right):")
        st.code(link, language=None, wrap_lines=True)
    return link


def _base_url() -> str:
    """The URL the browser shows, or the local default when there is none (tests)."""
    try:
        return st.context.url or "http://127.0.0.1:8501"
    except Exception:  # no browser context (AppTest)
        return "http://127.0.0.1:8501"
