"""Tour: calibrate → transform → train → arena, step by step; predict each answer, then reveal it.

The questions live in assets/tour.yaml; every answer is computed live by infalign_core.tour
from the theory, the calibration code and the gallery's finished runs.
"""

import streamlit as st

from infalign_core import tour
from infalign_core.errors import InfAlignError
from infalign_core.text import literal

STAGE_ICONS = {
    "calibrate": ":material/tune:",
    "transform": ":material/insights:",
    "train": ":material/model_training:",
    "arena": ":material/emoji_events:",
}


@st.cache_resource(show_spinner=False)
def _steps() -> list[tour.Step]:
    """The tour's steps from its YAML file, read once per process."""
    return tour.load_steps()


@st.cache_resource(show_spinner="Computing the answer…", max_entries=16)
def _reveal(number: int, gallery_version: float) -> tour.Reveal | str:
    """One step's computed answer (cached; the gallery's mtime keys the runs' answers), or the error."""
    try:
        return tour.reveal(_steps()[number])
    except InfAlignError as err:
        return str(err)


def _go(number: int) -> None:
    """Button callback: move to a step."""
    st.session_state["tour_step"] = number


st.title("Tour: predict, then reveal")
st.caption(
    "Questions that walk through InfAlign's recipe: calibrate the reward, transform it for the "
    "inference procedure, train with KL-regularised RL, and measure in the arena. Commit to a guess first; "
    "the answer is then computed live from the studio's own code and the gallery's finished runs."
)
steps = _steps()
number = min(int(st.session_state.setdefault("tour_step", 0)), len(steps) - 1)
step = steps[number]
st.progress((number + 1) / len(steps), text=f"Step {number + 1} of {len(steps)} · {step.stage}")
st.subheader(f"{STAGE_ICONS.get(step.stage, '')} {number + 1}. {step.title}")
st.markdown(tour.question_of(step))
try:
    choices = tour.choices_of(step)
except InfAlignError as err:
    st.error(literal(err))
    choices = ()
# The revealed step keeps the guess committed before the reveal: coming back shows that guess and
# its verdict, locked, instead of revealing the answer at whatever is picked first.
revealed = f"tour_revealed_{number}"
committed = st.session_state.get(revealed)
if committed in choices:
    st.session_state[f"tour_guess_{number}"] = committed
guess = (
    st.radio(
        "Your prediction", choices, index=None, key=f"tour_guess_{number}", disabled=committed in choices
    )
    if choices
    else None
)
if st.button("Reveal the answer", type="primary", disabled=guess is None, key=f"tour_reveal_{number}"):
    st.session_state[revealed] = committed = guess
if committed is not None and guess is not None:
    guess = committed
    from infalign_core.gallery import gallery_root

    root = gallery_root()
    result = _reveal(number, root.stat().st_mtime if root.exists() else 0.0)
    if isinstance(result, str):
        st.error(literal(result))
    else:
        if guess == result.correct:
            st.success(f"Right: **{result.correct}**.")
        else:
            st.warning(f"Not quite: the answer is **{result.correct}** (you said {guess}).")
        st.markdown(result.summary)
        if result.figure is not None:
            st.plotly_chart(result.figure, key=f"tour_figure_{number}")
        if result.table:
            st.dataframe(result.table, hide_index=True, width="stretch")
        st.info(step.explain)

back, _, forward = st.columns([1, 4, 1])
back.button("← Back", disabled=number == 0, on_click=_go, args=(number - 1,), key="tour_back")
forward.button("Next →", disabled=number == len(steps) - 1, on_click=_go, args=(number + 1,), key="tour_next")
if number == len(steps) - 1:
    st.caption("That is the tour. Explore on your own: Transforms & frontiers, CTRL runs, the arena.")
