"""Landing page: what InfAlign is, the three CTRL steps, the path through the app. Imports no torch."""

from pathlib import Path

import streamlit as st

from infalign_core import explorer
from infalign_core.errors import InfAlignError
from infalign_core.text import literal

ROOT = Path(__file__).resolve().parents[1]
HEADLINE_N, HEADLINE_KL = 4, 0.5


@st.cache_data(show_spinner="Solving the optimal transform…")
def _headline(n: int, kl: float) -> dict[str, float]:
    """Best-of-N win rates at one KL budget (cached: the optimal transform takes ~0.5 s)."""
    return explorer.headline(n=n, kl=kl, mode="best")


st.title("InfAlign Studio")
st.markdown(
    "Aligned language models are rarely used one sample at a time. A product often samples "
    "**N** answers and shows the one the reward model likes best (**best-of-N**); an attacker "
    "keeps sampling until one answer is bad, which is **worst-of-N**. Ordinary RLHF optimises "
    "the *single-sample* win rate against the reference model, which is the wrong target once "
    "such a procedure runs at inference time. "
    "[InfAlign (arXiv 2412.19792)](https://arxiv.org/abs/2412.19792) shows that the KL-regularised "
    "policy that maximises the *inference-time* win rate is still ordinary RLHF, run on a "
    "**transformed calibrated reward**."
)

st.subheader("Three steps: calibrate, transform, RL (CTRL)")
steps = st.columns(3)
with steps[0]:
    st.markdown(
        "**1 · Calibrate.** Replace the reward by its rank among reference samples for the same prompt, a number in [0, 1] that is uniform under the reference."
    )
    st.latex(r"C(x,y)=\Pr_{z\sim\pi_{\mathrm{ref}}}\big[r(x,z)<r(x,y)\big]")
with steps[1]:
    st.markdown(
        "**2 · Transform.** Bend the calibrated reward towards what the decoding procedure cares about: the top for best-of-N, the bottom for worst-of-N."
    )
    st.latex(r"\Phi(u)=\frac{e^{tu}-1}{e^{t}-1}\ \ \text{(best-of-}N\text{)}")
with steps[2]:
    st.markdown(
        "**3 · RL.** Run KL-regularised RL on the transformed reward; its optimum tilts the reference by the transform."
    )
    st.latex(r"\max_\pi\ \mathbb{E}[\Phi(C)]-\beta\,\mathrm{KL}(\pi\|\pi_{\mathrm{ref}})")

st.subheader("Why it matters, in one number")
try:
    rates = _headline(HEADLINE_N, HEADLINE_KL)
except InfAlignError as err:
    st.error(literal(err))
else:
    st.markdown(
        f"Best-of-{HEADLINE_N} win rate against the reference's best-of-{HEADLINE_N}, for policies "
        f"that all spend **{HEADLINE_KL} nats** of KL (computed live, exactly):"
    )
    base = rates["identity"]
    cols = st.columns(3)
    cols[0].metric("calibrated RLHF (identity Φ)", f"{base:.2%}")
    for col, label in zip(cols[1:], ("best exponential", "optimal")):
        col.metric(f"{label} Φ", f"{rates[label]:.2%}", f"{100 * (rates[label] - base):+.2f} points")
    st.caption(
        "Same KL, same reward model: only the transform changed. The best exponential comes within "
        "a fraction of a point of the optimal transform."
    )

st.subheader("A path through the app")
tour = [
    (
        "app_pages/tour.py",
        "Tour",
        "a guided walk through calibrate → transform → train → arena: predict each answer, then reveal it",
    ),
    (
        "app_pages/transforms.py",
        "Transforms & frontiers",
        "see the transforms, the aligned densities and win rate against KL for any N; no model needed",
    ),
    (
        "app_pages/models.py",
        "Models",
        "load the bundled tiny models or your own policy, reference and reward model",
    ),
    (
        "app_pages/calibration.py",
        "Calibration",
        "build reference reward banks and check that calibrated rewards are uniform",
    ),
    (
        "app_pages/ctrl.py",
        "CTRL runs",
        "train a policy with calibrate-and-transform RL and watch its win rates (or open a gallery run)",
    ),
    (
        "app_pages/arena.py",
        "Best-of-N arena",
        "measure a run's best-of-N and worst-of-N win rates on fresh samples, on the theory's curve",
    ),
]
for file, label, what in tour:
    if (ROOT / file).exists():
        st.page_link(file, label=f"**{label}**: {what}", icon=":material/arrow_forward:")
