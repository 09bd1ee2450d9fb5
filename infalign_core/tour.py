"""The guided Tour: predict-then-reveal steps through calibrate → transform → train → arena.

The questions, choices and explanations live in ``assets/tour.yaml``; each step names an
answer function here, which computes the answer live from the core (theory, calibration)
or from the gallery's finished runs. No answer is typed in anywhere. Every answer runs in
well under 2 s on a CPU (the theory ones are closed-form or one solve).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from infalign_core.errors import InfAlignError

TOUR_FILE = Path(__file__).resolve().parent.parent / "assets" / "tour.yaml"
STAGES = ("calibrate", "transform", "train", "arena")
KL, N = 0.5, 4
BO4_RUN = "gallery-ctrl-bo4-exp"  # the run step 5 asks about


@dataclass(frozen=True)
class Step:
    """One question of the tour, as written in the YAML file."""

    title: str
    stage: str
    question: str
    choices: tuple[str, ...]
    answer: str
    explain: str


@dataclass
class Reveal:
    """A computed answer: which choice is right, the numbers behind it, and a chart or table."""

    correct: str
    summary: str
    figure: go.Figure | None = None
    table: list[dict] = field(default_factory=list)


def load_steps(path: Path | None = None) -> list[Step]:
    """The tour's steps, validated: known stages, known answer functions, at least two choices."""
    import yaml

    path = Path(path) if path is not None else TOUR_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise InfAlignError(f"cannot read the tour file {path}: {err}") from None
    steps = []
    for number, raw in enumerate((data or {}).get("steps", []), start=1):
        missing = {"title", "stage", "question", "choices", "answer", "explain"} - set(raw)
        if missing:
            raise InfAlignError(f"tour step {number} lacks {', '.join(sorted(missing))}")
        if raw["stage"] not in STAGES or raw["answer"] not in ANSWERS:
            raise InfAlignError(
                f"tour step {number}: unknown stage {raw['stage']!r} or answer {raw['answer']!r}"
            )
        choices = raw["choices"]
        if choices != "from_gallery" and (not isinstance(choices, list) or len(choices) < 2):
            raise InfAlignError(f"tour step {number} needs at least two choices")
        steps.append(
            Step(
                title=str(raw["title"]),
                stage=raw["stage"],
                question=" ".join(str(raw["question"]).split()),
                choices=tuple(choices) if isinstance(choices, list) else ("from_gallery",),
                answer=raw["answer"],
                explain=" ".join(str(raw["explain"]).split()),
            )
        )
    if not steps:
        raise InfAlignError(f"the tour file {path} has no steps")
    return steps


def question_of(step: Step) -> str:
    """The step's question with its {placeholders} filled from the data it is about (the gallery run's config)."""
    facts = QUESTION_FACTS.get(step.answer)
    if facts is None or "{" not in step.question:
        return step.question
    try:
        return step.question.format(**facts())
    except (InfAlignError, OSError, KeyError, ValueError):
        return step.question.format_map(_Unknown())


class _Unknown(dict):
    """Placeholders the data cannot fill read as 'its' (the question still makes sense)."""

    def __missing__(self, key: str) -> str:
        return "its configured"


def _bo4_run_facts() -> dict:
    """Steps and KL target of the gallery's CTRL best-of-4 (exp) run, from its config.json."""
    from infalign_core import ctrl, runs

    config = ctrl.CTRLConfig.load(runs.run_dir_of(BO4_RUN) / "config.json")
    return {"steps": config.steps, "kl_target": f"{config.kl_target:g}" if config.kl_target else "no"}


def choices_of(step: Step) -> tuple[str, ...]:
    """The step's choices; ``from_gallery`` becomes the gallery runs' titles."""
    if step.choices != ("from_gallery",):
        return step.choices
    return tuple(title for title, _ in _gallery_records())


def reveal(step: Step) -> Reveal:
    """Compute the step's answer now."""
    return ANSWERS[step.answer]()


# --- the answers -----------------------------------------------------------------------------


def calibrated_histogram(prompts: int = 12, m: int = 64, heldout: int = 64, seed: int = 0) -> Reveal:
    """Reference replies ranked against their prompt's bank: a reward model with a scale per prompt."""
    from infalign_core import calibration

    rng = np.random.default_rng(seed)
    scales, shifts = np.exp(rng.uniform(-2, 2, prompts)), rng.normal(0, 5, prompts)  # per-prompt scale
    index = np.repeat(np.arange(prompts), m)
    bank = calibration.bank_from_samples(
        [f"prompt {i}" for i in range(prompts)],
        index,
        shifts[index] + scales[index] * rng.standard_normal(index.size),
    )
    held = np.repeat(np.arange(prompts), heldout)
    rewards = shifts[held] + scales[held] * rng.standard_normal(held.size)
    check = calibration.uniformity_check(bank, held, rewards, num_permutations=200, seed=seed)
    # A rank against m replies takes m + 1 values k/m, equally likely for a reference reply. Bins of
    # `per_bin` values each expect the same count; bins of 0.1 would hold 6 or 7 values and differ
    # by design, not by noise.
    per_bin = next(d for d in (5, 13, 1) if (m + 1) % d == 0)
    edges = (np.arange(0, m + 2, per_bin) - 0.5) / m
    counts, _ = np.histogram(check.calibrated, bins=edges)
    share = per_bin / (m + 1)
    expected = check.num_samples * share
    noise = 2 * np.sqrt(check.num_samples * share * (1 - share))  # ±2 binomial s.d. per bar
    centres, width = (edges[:-1] + edges[1:]) / 2, per_bin / m
    fig = go.Figure(
        [
            go.Bar(x=centres, y=counts, width=width * 0.95, marker_color="#4C78A8", name="held-out replies"),
            go.Scatter(x=[0, 1], y=[expected, expected], mode="lines", line={"color": "#F58518"},
                       name="expected if uniform (band: ± 2 s.d. of sampling noise)"),
        ]
    )  # fmt: skip
    # The band as a shape below the bars: a filled trace would tint the bars it covers.
    fig.add_shape(
        type="rect", x0=0, x1=1, y0=expected - noise, y1=expected + noise, layer="below",
        fillcolor="rgba(245,133,24,0.18)", line={"width": 0},
    )  # fmt: skip
    fig.update_layout(
        height=320,
        margin={"t": 20, "b": 40},
        xaxis_title="calibrated reward",
        yaxis_title="held-out replies",
        yaxis_rangemode="tozero",
        legend={"orientation": "h", "y": -0.25},
    )
    flat = check.ks_pvalue >= 0.05
    outside = int(np.sum(np.abs(counts - expected) > noise))
    summary = (
        f"{check.num_samples} held-out replies over {prompts} prompts whose raw scores range from "
        f"{rewards.min():.1f} to {rewards.max():.1f}: KS distance to Uniform[0, 1] {check.ks_statistic:.3f}, "
        f"p = {check.ks_pvalue:.2f} ({'consistent with' if flat else 'not consistent with'} uniform). "
        f"Each bar holds {per_bin} of the {m + 1} values a rank against {m} replies can take, so a uniform "
        f"reward puts {expected:.0f} replies in each; sampling noise alone moves a bar by about ±{noise:.0f} "
        f"(the band), so bars from {counts.min()} to {counts.max()} are what flat looks like at this size "
        f"({outside} of {len(counts)} outside the band; about 1 in 20 is expected)."
    )
    return Reveal(
        "flat: uniform on [0, 1]" if flat else "it depends on the reward model's scale", summary, fig
    )


def _points_at(kl: float = KL, n: int = N):
    """Calibrated RLHF, the best exponential and the optimal transform at one KL, for best-of-N."""
    from infalign_core import explorer

    return {
        name: explorer.resolve_transform(name, n=n, mode="best", kl=kl)
        for name in ("identity", "exp", "optimal")
    }


def _tradeoff_figure(points) -> go.Figure:
    from infalign_core import explorer, figures

    return figures.tradeoff_figure(explorer.tradeoff(list(points.values())), f"best-of-{N} win rate")


def bon_transform_winner() -> Reveal:
    """Best-of-4 win rate at 0.5 nats: identity against the best exponential (and the optimum)."""
    points = _points_at()
    identity, exp, best = (points[k].win_rate for k in ("identity", "exp", "optimal"))
    tie = abs(exp - identity) < 5e-4
    correct = (
        "they tie"
        if tie
        else ("the best exponential exp(t·u)" if exp > identity else "identity (calibrated RLHF)")
    )
    summary = (
        f"Best-of-{N} win rate at {KL} nats: identity {identity:.4f}, best exponential {exp:.4f} "
        f"({points['exp'].label}), optimal {best:.4f}. The exponential is {100 * (best - exp):.3f} points below the optimum."
    )
    return Reveal(correct, summary, _tradeoff_figure(points))


def standard_price() -> Reveal:
    """The standard win rate of the best exponential for best-of-4 against calibrated RLHF's, at 0.5 nats."""
    points = _points_at()
    identity, exp = (points[k].point.standard_win_rate for k in ("identity", "exp"))
    if abs(exp - identity) < 5e-4:
        correct = "leaves it unchanged"
    else:
        correct = "lowers it" if exp < identity else "raises it"
    summary = (
        f"Standard win rate at {KL} nats: calibrated RLHF {identity:.4f}, best exponential for best-of-{N} "
        f"{exp:.4f} ({100 * (exp - identity):+.2f} points), while its best-of-{N} win rate rises by "
        f"{100 * (points['exp'].win_rate - points['identity'].win_rate):+.2f} points."
    )
    return Reveal(correct, summary, _tradeoff_figure(points))


def bon_policy_kl() -> Reveal:
    """The best-of-4 policy's KL from the reference, and its win rate."""
    from infalign_core import theory

    point = theory.bon_policy_point(N, 1)
    options = {"about 0.1 nats": 0.1, "about 0.64 nats": 0.64, "about 1.4 nats (log 4)": float(np.log(N))}
    correct = min(options, key=lambda k: abs(options[k] - point.kl))
    summary = (
        f"KL(best-of-{N} ‖ reference) = log {N} − {N - 1}/{N} = {point.kl:.4f} nats; its standard win rate "
        f"is {point.standard_win_rate:.4f} (= {N}/{N + 1})."
    )
    return Reveal(correct, summary)


def _gallery_records() -> list[tuple[str, dict]]:
    """(title, best arena record) of every gallery run with arena results."""
    from infalign_core import gallery, report, runs

    found = [
        (gallery.title(info.run_id) or info.run_id, report._best_record(info.path))
        for info in runs.list_gallery()
    ]
    found = [(title, record) for title, record in found if record is not None]
    if not found:
        raise InfAlignError(
            "the gallery has no evaluated runs yet: build it with `make gallery`, or train and evaluate a run"
        )
    return found


def gallery_vs_theory() -> Reveal:
    """The gallery's CTRL best-of-4 (exp) run: measured best-of-4 win rate against the theory at its KL."""
    from infalign_core import gallery

    title = gallery.title(BO4_RUN)
    records = dict(_gallery_records())
    if title not in records:
        raise InfAlignError(
            "the gallery's CTRL best-of-4 (exp) run is missing: rebuild it with `make gallery`"
        )
    record = records[title]
    w, theory_point = record["win_rates"], record.get("theory")
    if theory_point is None:
        raise InfAlignError(
            "the gallery run's arena record has no theory point; rebuild it with `make gallery`"
        )
    low, high, predicted = w["bon_win_rate_ci_low"], w["bon_win_rate_ci_high"], theory_point["bon_win_rate"]
    correct = (
        "on the curve (within its interval)"
        if low <= predicted <= high
        else ("above the curve" if low > predicted else "below the curve")
    )
    summary = (
        f"Measured best-of-{record['settings']['n']} win rate {w['bon_win_rate']:.3f} "
        f"[{low:.3f}, {high:.3f}] at KL {record['kl']['k1']:.3f} nats; the theory's curve there: {predicted:.3f}."
    )
    if record["kl"].get("optimum_visible"):
        summary += (
            f" The reward sees {record['kl']['calibrated']:.3f} nats of its KL, {record['kl']['share_seen']:.0%} of "
            f"what the exact optimum shows through the same {record['settings']['k']} reference samples."
        )
    figure = _run_on_curve_figure(record) if record.get("run") else None  # older records lack the run's Φ
    return Reveal(correct, summary, figure, table=[_row(title, record)])


def _run_on_curve_figure(record: dict) -> go.Figure:
    """The theory's best-of-N curve for the run's Φ across KL, with the run's measured point and interval."""
    from infalign_core import theory
    from infalign_core.transforms import make_transform

    run, n, w = record["run"], int(record["settings"]["n"]), record["win_rates"]
    phi = make_transform(run["transform"], t=run.get("t"), mode=run.get("mode", "best"))
    curve = theory.frontier(phi, np.geomspace(0.01, 50, 60), (n,))
    keep = curve.kl <= max(1.5, 2.5 * record["kl"]["k1"])
    kl, kl_err = record["kl"]["k1"], 1.96 * record["kl"].get("k1_stderr", 0.0)
    fig = go.Figure(
        [
            go.Scatter(x=curve.kl[keep], y=curve.bon_win_rate[0][keep], mode="lines",
                       name=f"theory: {phi.label}, best-of-{n}", line={"color": "#F58518"}),
            go.Scatter(
                x=[kl], y=[w["bon_win_rate"]], mode="markers", marker={"size": 11, "color": "#4C78A8"},
                name="the run, measured in the arena (95 % intervals)",
                error_y={"type": "data", "symmetric": False,
                         "array": [w["bon_win_rate_ci_high"] - w["bon_win_rate"]],
                         "arrayminus": [w["bon_win_rate"] - w["bon_win_rate_ci_low"]]},
                error_x={"type": "data", "array": [kl_err]},
            ),
        ]
    )  # fmt: skip
    fig.update_layout(
        height=340, margin={"t": 20, "b": 40}, xaxis_title="KL(π‖π_ref), nats",
        yaxis_title=f"best-of-{n} win rate", legend={"orientation": "h", "y": -0.25},
    )  # fmt: skip
    return fig


def _row(title: str, record: dict, procedure: str = "best") -> dict:
    """One gallery run as a table row, with the theory's figure for the procedure the step asks about."""
    w, n = record["win_rates"], record["settings"]["n"]
    return {
        "run": title,
        "KL": round(record["kl"].get("k1", float("nan")), 3),
        "standard": round(w["standard_win_rate"], 3),
        f"best-of-{n}": round(w["bon_win_rate"], 3),
        f"worst-of-{n}": round(w["won_win_rate"], 3),
        f"theory {procedure}-of-{n} (run's Φ at its KL)": round(
            (record.get("theory") or {}).get(
                f"{'bon' if procedure == 'best' else 'won'}_win_rate", float("nan")
            ),
            3,
        ),
        # The KL the reward sees, as a share of what the exact optimum shows through the same bank.
        "share seen": round(record["kl"]["share_seen"], 2) if record["kl"].get("optimum_visible") else None,
    }


def best_worst_of_4() -> Reveal:
    """Which gallery run has the highest measured worst-of-4 win rate."""
    records = _gallery_records()
    title, record = max(records, key=lambda item: item[1]["win_rates"]["won_win_rate"])
    summary = (
        f"Highest worst-of-{record['settings']['n']} win rate: **{title}**, "
        f"{record['win_rates']['won_win_rate']:.3f} [{record['win_rates']['won_win_rate_ci_low']:.3f}, "
        f"{record['win_rates']['won_win_rate_ci_high']:.3f}] at KL {record['kl'].get('k1', float('nan')):.3f} nats."
    )
    optimum = (record.get("theory") or {}).get("won_win_rate")
    if optimum is not None:
        summary += (
            f" The exact optimum of its own objective at that KL would reach {optimum:.3f}: the distance is "
            "what the trainer still leaves (the table's theory column gives it for every run)."
        )
    return Reveal(title, summary, table=[_row(t, r, "worst") for t, r in records])


def goodhart_curve() -> Reveal:
    """Trained on the weak proxy: does the oracle's win rate follow the proxy's as KL grows? (shipped curves)"""
    from infalign_core import goodhart
    from infalign_core.figures.goodhart import goodhart_figure

    results = goodhart.load_results()
    curves = results["curves"]
    gaps = {
        method: points[-1]["proxy_win_rate"] - points[-1]["oracle_win_rate"]
        for method, points in curves.items()
    }
    widest = max(gaps, key=gaps.get)
    last = curves[widest][-1]
    correct = (
        "the proxy's keeps rising, the oracle's falls behind" if gaps[widest] > 0.05 else "they rise together"
    )
    summary = (
        f"Farthest out, **{widest}** at {last['kl']:.2f} nats wins {last['proxy_win_rate']:.3f} under the proxy "
        f"but {last['oracle_win_rate']:.3f} under the oracle (gap {gaps[widest]:+.3f})."
    )
    table = [
        {"method": method, **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}}
        for method, row in results.get("summary", {}).items()
    ]
    return Reveal(correct, summary, figure=goodhart_figure(curves), table=table)


QUESTION_FACTS: dict[str, Callable[[], dict]] = {"gallery_vs_theory": _bo4_run_facts}
"""Answer name → the facts its question's {placeholders} are filled from."""

ANSWERS: dict[str, Callable[[], Reveal]] = {
    "calibrated_histogram": calibrated_histogram,
    "bon_transform_winner": bon_transform_winner,
    "standard_price": standard_price,
    "bon_policy_kl": bon_policy_kl,
    "gallery_vs_theory": gallery_vs_theory,
    "best_worst_of_4": best_worst_of_4,
    "goodhart_curve": goodhart_curve,
}
