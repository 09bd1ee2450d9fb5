"""InfAlign Studio's frame: page list and the shared sidebar. Run with ``streamlit run app.py``."""

from pathlib import Path

import streamlit as st

from infalign_core.runtime import limit_cpu_threads

limit_cpu_threads()  # before any page imports torch

from app_pages import warmup  # noqa: E402  (after the thread limit: it imports the theory)

warmup.start()  # once per process: the Transforms page's default theory, traced in the background

ROOT = Path(__file__).parent
# (file, title, icon). Pages still being written are listed once their file exists.
PAGES = [
    ("app_pages/home.py", "Home", ":material/home:"),
    ("app_pages/tour.py", "Tour", ":material/school:"),
    ("app_pages/transforms.py", "Transforms & frontiers", ":material/insights:"),
    ("app_pages/models.py", "Models", ":material/smart_toy:"),
    ("app_pages/calibration.py", "Calibration", ":material/tune:"),
    ("app_pages/ctrl.py", "CTRL runs", ":material/model_training:"),
    ("app_pages/arena.py", "Best-of-N arena", ":material/emoji_events:"),
    ("app_pages/agency.py", "Agency (HAB)", ":material/diversity_3:"),
]

st.set_page_config(page_title="InfAlign Studio", page_icon=":material/balance:", layout="wide")
navigation = st.navigation(
    [
        st.Page(file, title=title, icon=icon, default=index == 0)
        for index, (file, title, icon) in enumerate(PAGES)
        if (ROOT / file).exists()
    ]
)


def show_loaded_models() -> None:
    """The sidebar's block of loaded models (drawn into one slot, so a second call replaces the first)."""
    with loaded_slot.container():
        loaded = st.session_state.get("loaded_models")
        st.caption("**Loaded models**")
        if loaded:
            for name, description in loaded.items():
                st.caption(f"**{name}**: {description}")
        else:
            st.caption("no language model loaded — the theory pages need none")
        st.caption("InfAlign: [arXiv 2412.19792](https://arxiv.org/abs/2412.19792)")


# Drawn before the page, so a page that calls st.stop() keeps it (nothing can be drawn after a
# stop), and again after the page, so it shows what this run loaded. The slot keeps its place
# above the page's own sidebar widgets.
loaded_slot = st.sidebar.empty()
show_loaded_models()
navigation.run()
show_loaded_models()
