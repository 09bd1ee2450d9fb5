"""Agency: a policy on HumanAgencyBench's six dimensions with a judge, plain and under best-of-N / worst-of-N."""

import streamlit as st

from app_pages import cached
from infalign_core import agency, hab, rubrics
from infalign_core.errors import InfAlignError
from infalign_core.figures.agency import agency_figure

st.title("Agency (HumanAgencyBench)")
st.caption(
    "HumanAgencyBench (HAB, [arXiv 2509.08494](https://arxiv.org/abs/2509.08494)) tests whether an assistant "
    "supports the user's agency on six dimensions. Each test is answered K times by the policy and each answer "
    "graded by a judge model on that dimension's rubric (0–1, deductions from 10, assets/rubrics). Best-of-N and "
    "worst-of-N keep the answer a *selection* reward ranks highest or lowest among N: does best-of-4 on a "
    "helpfulness reward cost agency support? The expected score of the pick is exact over all N-subsets."
)
left, mid, right = st.columns(3)
policy_source = left.text_input(
    "Policy (a chat model)", key="agency_policy", help="A folder, a hub id or a preset."
)
judge_source = left.text_input(
    "Judge model", key="agency_judge", help="A chat model's folder, hub id or preset."
)
source = mid.selectbox(
    "HAB tests", ["hab-fixture", "hab"], key="agency_source",
    help="hab loads the hub dataset (needs the hub or a downloaded copy in $INFALIGN_HAB_DATA); hab-fixture "
    "is the small offline sample shipped in assets/hab.",
)  # fmt: skip
titles = {hab.TITLES[d]: d for d in rubrics.HAB_DIMENSIONS}
chosen = mid.multiselect("Dimensions", list(titles), default=list(titles), key="agency_dimensions")
per_dimension = mid.number_input("Tests per dimension", 1, 500, 2, key="agency_tests")
select_source = right.text_input(
    "Selection reward for best/worst-of-N", "judge:helpfulness", key="agency_select",
    help="Any reward: judge:RUBRIC (uses the judge model), vader, a reward model's folder; 'none' for plain scores.",
)  # fmt: skip
n = right.number_input("N", 1, 64, 4, key="agency_n")
k = right.number_input("K answers per test (≥ N)", 1, 256, 8, key="agency_k")
with right.popover("Generation"):
    max_new_tokens = st.number_input("Policy's max new tokens", 1, 2048, 128, key="agency_tokens")
    judge_tokens = st.number_input("Judge's max new tokens", 1, 2048, 256, key="agency_judge_tokens")
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="agency_seed")

if st.button("Score agency", type="primary", key="agency_run"):
    try:
        if not policy_source.strip() or not judge_source.strip():
            raise InfAlignError(
                "Give a policy and a judge model (a chat model's folder, a hub id or a preset)."
            )
        if not chosen:
            raise InfAlignError("Choose at least one dimension.")
        if int(n) > int(k):
            raise InfAlignError(f"N = {n} needs K ≥ N answers per test; raise K to at least {n} or lower N.")
        dims = ",".join(titles[t] for t in chosen)
        tests = hab.load_tests(f"{source}:{dims}", limit=int(per_dimension))
        policy = cached.arena_model(policy_source.strip(), cached.weights_version(policy_source.strip()))
        judge_model = cached.arena_model(judge_source.strip(), cached.weights_version(judge_source.strip()))
        judges = agency.judges_for(judge_model, int(judge_tokens))
        select = agency.selection_reward(select_source, judge_model, cached.reward, int(judge_tokens))
        status = st.status("Scoring…", expanded=False)
        results = agency.agency_scores(
            policy, tests, judges, n=int(n), k=int(k), select_reward=select,
            max_new_tokens=int(max_new_tokens), seed=int(seed), progress=status.write,
        )  # fmt: skip
        status.update(label="Scored", state="complete")
        notes = [
            j.unscored_note()
            for j in {id(judges(r.dimension)): judges(r.dimension) for r in results}.values()
        ]
        st.session_state["agency_result"] = (
            results,
            int(n),
            select.name if select else None,
            [x for x in notes if x],
        )
    except InfAlignError as err:
        st.error(str(err))

if "agency_result" in st.session_state:
    results, n_used, select_name, notes = st.session_state["agency_result"]
    st.plotly_chart(agency_figure(results, n_used, select_name), key="agency_chart")
    st.dataframe([r.as_dict() for r in results], hide_index=True, width="stretch")
    for line in agency.change_lines(results, n_used, select_name or ""):
        st.markdown(f"- {line}")
    for note in notes:
        st.info(note)
    st.caption(
        "Mean over tests ± standard error (error bars: ±1.96 SE). Unscored answers (the judge's format failed "
        "twice) are left out, never counted as 0. CLI: `python -m infalign_core agency --policy P --judge J`."
    )
