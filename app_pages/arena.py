"""Best-of-N arena: a policy's best-of-N against the reference's best-of-N, live, and on the theory's chart."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_pages import arena_views
from infalign_core import arena, data, runs
from infalign_core.errors import InfAlignError
from infalign_core.figures import arena as arena_figures
from infalign_core.models import BUNDLED

REFERENCE, FOLDER = "reference (bundled default policy)", "a local model folder…"
LABELS = arena_figures.LABELS

st.title("Best-of-N arena")
st.caption(
    "K samples per prompt from the challenger and from the reference, scored by the reward. The best-of-N "
    "win rate averages 1{best of N challenger samples beats best of N reference samples} (ties ½) over "
    "all N-subsets of the K — unbiased, no subset enumerated — and over prompts; intervals are a "
    "bootstrap over prompts. The challenger's KL to the reference is measured on its own samples."
)


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def load_model(source: str, version: float):
    """A policy, loaded once per source and weights version (a running run's checkpoint changes)."""
    from infalign_core.models import load_policy

    return load_policy(source)


@st.cache_resource(max_entries=2, show_spinner="Loading the reward…")
def load_reward_fn(source: str, label: str | None):
    """A reward function, loaded once per source."""
    from infalign_core.rewards import load_reward

    return load_reward(source, label=label)


@st.cache_data(max_entries=32, show_spinner=False)
def theory_curve(transform, t, mode, n, phi_beta=None, run_n=None, procedure=None) -> dict | None:
    """The theory's curve at N for a run's transform (the optimal Φ it trained on, if recorded; cached)."""
    return arena_figures.default_theory_curve(transform, t, mode, n, phi_beta, run_n, procedure)


def weights_version(source: str) -> float:
    """Newest weight file's mtime: a cache key that changes when a run writes a new checkpoint."""
    path = BUNDLED["policy"] if source == "default" else Path(source)
    files = list(path.glob("*.safetensors")) if path.is_dir() else []
    return max((f.stat().st_mtime for f in files), default=0.0)


# --- choosing the contestants --------------------------------------------------------------------
infos = [info for info in runs.list_runs() if runs.has_checkpoint(info.path)]
if not infos:
    st.info(
        "No CTRL runs with a checkpoint yet: train one on the **CTRL runs** page (its checkpoint appears here "
        "after the first save), or evaluate the reference itself or a local model folder."
    )
run_of = {f"{i.run_id} · {i.config.get('transform')} · {i.state}": i for i in infos}
left, mid, right = st.columns(3)
choice = left.selectbox("Challenger", [*run_of, REFERENCE, FOLDER], key="challenger")
folder = left.text_input("Model folder", key="folder") if choice == FOLDER else ""
run_config = run_of[choice].config if choice in run_of else {}
reference_source = left.text_input(
    "Reference", run_config.get("reference") or run_config.get("policy") or "default", key="reference"
)
reward_source = left.text_input("Reward", run_config.get("reward") or "default", key="reward")
n = mid.number_input("N (best-of-N / worst-of-N)", 1, 64, int(run_config.get("n") or 4), key="n")
k = mid.number_input("K samples per prompt (≥ N)", 1, 512, 16, key="k")
split = right.selectbox("Prompts (bundled)", ["eval", "train"], key="split")
num_prompts = right.number_input("Number of prompts", 2, 480, 32, key="num_prompts")
with right.popover("Sampling"):
    max_new_tokens = st.number_input(
        "Max new tokens", 1, 256, int(run_config.get("max_new_tokens") or 24), key="max_new_tokens"
    )
    temperature = st.number_input(
        "Temperature", 0.05, 5.0, float(run_config.get("temperature") or 1.0), 0.05, key="temperature",
        help="Both sides sample at it; the KL is that of the tempered distributions. Default: the run's own.",
    )  # fmt: skip
    top_p = st.number_input(
        "Top-p", 0.01, 1.0, float(run_config.get("top_p") or 1.0), 0.01, key="top_p",
        help="Nucleus sampling for both sides. Below 1 the KL is not measured: a response outside the "
        "reference's nucleus has infinite KL.",
    )  # fmt: skip
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
    batch = st.number_input("Prompts per batch", 1, 64, 8, key="batch")


# --- the live evaluation ------------------------------------------------------------------------
if st.button("Evaluate", type="primary", key="evaluate"):
    try:
        if int(n) > int(k):
            raise InfAlignError(f"N = {n} needs K ≥ N samples per prompt; raise K to at least {n} or lower N")
        info = run_of.get(choice)
        source = arena.resolve_challenger(
            str(info.path) if info else ("reference" if choice == REFERENCE else folder)
        )
        prompts = data.load_prompts("bundled", split=split, limit=int(num_prompts)).prompts
        challenger = load_model(source.model, weights_version(source.model))
        same = source.model == "default" and reference_source == "default"
        reference = challenger if same else load_model(reference_source, weights_version(reference_source))
        reward_fn = load_reward_fn(reward_source, run_config.get("reward_label"))
        st.session_state.setdefault("loaded_models", {})["arena challenger"] = source.label
        progress, metrics, chart = st.progress(0.0, "sampling…"), st.empty(), st.empty()
        history = []
        for state in arena.run_arena(
            challenger,
            reference,
            reward_fn,
            prompts,
            n=int(n),
            k=int(k),
            max_new_tokens=int(max_new_tokens),
            temperature=float(temperature),
            top_p=float(top_p),
            seed=int(seed),
            prompts_per_batch=int(batch),
        ):
            history.append((state.done, state.estimate))
            progress.progress(
                state.done / state.total_prompts,
                f"{state.done}/{state.total_prompts} prompts · {state.seconds:.0f} s",
            )
            with metrics.container():
                cols = st.columns(4)
                for col, (name, label) in zip(cols, LABELS.items()):
                    e = state.estimate
                    col.metric(f"{label} win rate", f"{getattr(e, name):.3f}", help=f"{e.level:.0%} interval")
                    col.caption(f"[{getattr(e, f'{name}_ci_low'):.3f}, {getattr(e, f'{name}_ci_high'):.3f}]")
                kl = state.kl  # None at top-p < 1 (kl_note says why)
                cols[3].metric("KL(π‖π_ref), nats", f"{kl.k1:.3f}" if kl else "—", help=state.kl_note or None)
                cols[3].caption(f"± {kl.k1_stderr:.3f} (k3 {kl.k3:.3f})" if kl else state.kl_note)
            chart.plotly_chart(arena_figures.convergence_figure(history), key=f"convergence-{state.done}")
        settings = {
            "n": int(n),
            "k": int(k),
            "prompts": f"bundled:{split}",
            "num_prompts": state.done,
            "max_new_tokens": int(max_new_tokens),
            "temperature": float(temperature),
            "top_p": float(top_p),
            "seed": int(seed),
            "reference": reference.fingerprint,
            "reward": reward_fn.fingerprint,
        }
        record = arena.arena_record(state, settings, source.run_config)
        record["label"] = source.label
        if source.run_dir is not None:
            arena.save_arena_result(source.run_dir, record)
        st.session_state.setdefault("arena_results", {})[f"{source.label} · N={n} · K={k}"] = record
        st.session_state["arena_last"], st.session_state["arena_last_config"] = state, source.run_config
    except InfAlignError as err:
        st.error(str(err))

if "arena_last" in st.session_state:
    arena_views.show_picks(st.session_state["arena_last"])
    arena_views.show_procedure(st.session_state["arena_last"], st.session_state.get("arena_last_config"))

# --- every evaluation so far: on the theory's chart and in a table ----------------------------------
records = dict(st.session_state.get("arena_results", {}))
for info in runs.list_runs():
    for record in arena.load_arena_results(info.path):
        key = f"run {info.run_id} · N={record['settings']['n']} · K={record['settings']['k']}"
        records.setdefault(key, {**record, "label": f"run {info.run_id}"})
if records:
    st.subheader("Measured points on the theory's curves")
    st.caption(
        "Each evaluated run at its measured KL, with its win rate's interval (vertical) and ±1.96 standard "
        "errors of its KL (horizontal), beside the theory's curve for its transform and N: the exact "
        "win rate of the KL-regularised optimum as β sweeps."
    )
    place = st.radio("Place each run at", list(arena_figures.KL_PLACES), horizontal=True, key="kl_place", help=arena_figures.KL_PLACE_HELP)  # fmt: skip
    for tab, (name, label) in zip(st.tabs(["best-of-N", "worst-of-N"]), list(LABELS.items())[1:]):
        fig, notes = arena_figures.frontier_figure(
            records, name, label, theory_curve, at=arena_figures.KL_PLACES[place]
        )
        tab.plotly_chart(fig, key=f"frontier-{name}")
        for note in notes:
            tab.info(note)
    st.dataframe(arena_figures.comparison_table(records), hide_index=True)
    st.caption("Evaluations of runs are saved in each run's arena.json, so they survive restarts.")
