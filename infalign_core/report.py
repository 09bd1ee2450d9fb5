"""The stakeholder report: one self-contained HTML file about a set of CTRL runs.

For each run: its setup, the theory's prediction at the KL it measured, the measured
win rates with their intervals and the KL, and best-of-N / worst-of-N sample picks; for
the set: the frontier with the runs on it and the win rates with their intervals. Plotly's
JavaScript is inlined once, so the file opens offline and fetches nothing.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go

from infalign_core.errors import InfAlignError

SETUP_FIELDS = (
    ("transform", "transform Φ"),
    ("t", "t"),
    ("mode", "mode"),
    ("n", "N"),
    ("kl_target", "KL target"),
    ("beta", "β (initial)"),
    ("steps", "steps"),
    ("k", "samples per prompt k"),
    ("prompts_per_step", "prompts per step"),
    ("m", "reference samples m"),
    ("learning_rate", "learning rate"),
    ("policy", "policy"),
    ("reward", "reward"),
    ("seed", "seed"),
)
RATES = (("standard_win_rate", "standard"), ("bon_win_rate", "best-of-N"), ("won_win_rate", "worst-of-N"))
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1F2430; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid #E45756; padding-bottom: 0.2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #dde1ea; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #F4F6FA; } .muted { color: #6b7280; font-size: 0.9rem; }
.picks { display: grid; grid-template-columns: 1fr 1fr; gap: 0.4rem 1.2rem; margin-bottom: 0.8rem; }
.win { color: #1a7f37; font-weight: 600; }
"""


def _fmt(value, digits: int = 4) -> str:
    """A table cell: numbers rounded, None as a dash, everything escaped."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(rows: Sequence[Sequence], header: Sequence[str] | None = None) -> str:
    """An HTML table from rows of cells."""
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _best_record(run_dir: Path) -> dict | None:
    """The run's most informative arena evaluation: the largest K, then the most prompts."""
    from infalign_core import arena_results

    records = arena_results.load_arena_results(run_dir)
    return max(records, key=lambda r: (r["settings"].get("k", 0), r.get("num_prompts_done", 0)), default=None)


def _eval_rewards_html(run_dir: Path, record: dict) -> str:
    """The three win rates under each other reward the run was scored with (the newest such evaluation)."""
    from infalign_core import arena_results, eval_rewards

    if not record.get("eval_rewards"):
        scored = [r for r in arena_results.load_arena_results(run_dir) if r.get("eval_rewards")]
        record = scored[-1] if scored else record
    others = dict(record.get("eval_rewards") or {})
    trained = others.pop("trained_on", None)
    if not others or trained is None:
        return ""
    mine = {
        **record["win_rates"],
        "tie_share": record.get("tie_share"),
        "unscored_share": record.get("unscored_share"),
    }
    rows = eval_rewards.table_rows(trained, mine, others, record["settings"]["n"])
    return (
        "<h3>Under other rewards</h3><p>The same samples of both sides scored again by each reward; a win "
        "rate the trained reward shows and the others do not is over-optimisation of the trained reward.</p>"
        + _table([[html.escape(str(v)) for v in row.values()] for row in rows], list(rows[0]))
    )


def _interval(win: dict, name: str) -> str:
    """'0.612 [0.580, 0.641]'."""
    return f"{win[name]:.3f} [{win[f'{name}_ci_low']:.3f}, {win[f'{name}_ci_high']:.3f}]"


def win_rates_figure(evaluations: dict[str, dict]) -> go.Figure:
    """Each run's standard, best-of-N and worst-of-N win rate with its interval (vs the reference)."""
    colors = {"standard_win_rate": "#9ECAE9", "bon_win_rate": "#F58518", "won_win_rate": "#54A24B"}
    names = list(evaluations)
    # Each bar says its N: best-of-4 and best-of-8 win rates are different quantities.
    labels = [f"{n} (N={evaluations[n]['settings']['n']})" for n in names]
    traces = []
    for key, label in RATES:
        values = [evaluations[n]["win_rates"][key] for n in names]
        traces.append(
            go.Bar(
                x=labels,
                y=values,
                name=label,
                marker_color=colors[key],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [
                        evaluations[n]["win_rates"][f"{key}_ci_high"] - v for n, v in zip(names, values)
                    ],
                    "arrayminus": [
                        v - evaluations[n]["win_rates"][f"{key}_ci_low"] for n, v in zip(names, values)
                    ],
                },
                hovertemplate="%{x}<br>" + label + " win rate %{y:.3f}<extra></extra>",
            )
        )
    fig = go.Figure(traces)
    fig.add_hline(y=0.5, line={"dash": "dot", "color": "#888"})
    ns = sorted({evaluations[n]["settings"]["n"] for n in names})
    fig.update_layout(
        barmode="group",
        height=460,
        margin={"t": 110, "b": 40},
        yaxis={"title": "win rate against the reference", "range": [0, 1.05]},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"},
        title={
            "text": "Measured win rates with their intervals"
            + (
                f"<br><sup>Runs evaluated at different N ({', '.join(map(str, ns))}): compare best-of-N "
                "and worst-of-N bars only between runs of the same N</sup>"
                if len(ns) > 1
                else f"<br><sup>All at N = {ns[0]}</sup>"
            ),
            "y": 0.97,
            "yanchor": "top",
        },
    )
    return fig


def _picks_html(record: dict) -> str:
    """The saved best-of-N and worst-of-N picks, challenger beside reference."""
    picks = record.get("picks")
    if not picks:
        return '<p class="muted">No sample picks were saved with this evaluation (evaluate it on the arena page to add them).</p>'
    n = record["settings"]["n"]
    parts = []
    for mode in ("best", "worst"):
        parts.append(f"<h4>{mode}-of-{n} picks</h4>")
        for pick in picks.get(mode, []):
            cells = []
            # The same text on both sides is a tie whatever its saved scores say (records written
            # before scoring was batch-invariant can differ in the last bits).
            same = pick["challenger_response"] == pick["reference_response"]
            winner = "tie" if same else pick["winner"]
            for who, text, reward in (
                ("challenger", pick["challenger_response"], pick["challenger_reward"]),
                ("reference", pick["reference_response"], pick["reference_reward"]),
            ):
                mark = (
                    ' <span class="win">wins</span>'
                    if winner == who
                    else (" · tie" if winner == "tie" else "")
                )
                cells.append(
                    f'<div><span class="muted">{who}{mark} · reward {reward:+.3f}</span><br>'
                    f"<b>{html.escape(pick['prompt'])}</b>{html.escape(text)}</div>"
                )
            parts.append('<div class="picks">' + "".join(cells) + "</div>")
    return "".join(parts)


def _optimum_section(name: str, record: dict) -> str:
    """The exact optimum's evaluation: what it is, its settings, and measured against the theory."""
    win, kl, s, theory = record["win_rates"], record["kl"], record["settings"], record.get("theory") or {}
    pool = (record.get("optimum") or {}).get("pool")
    measured = [[label, _interval(win, key), _fmt(theory.get(key))] for key, label in RATES]
    return (
        f"<h2>{html.escape(name)}</h2><p>The exact optimum π* ∝ π_ref·e^{{Φ(C)/β}} for this Φ, sampled with no "
        f"training: {pool} reference samples per prompt, each calibrated by its rank among them, resampled with "
        "weights e^{Φ(C)/β}. It is where a perfect trainer would land in this world, and a decoding procedure "
        f"in its own right (a soft best-of-{pool}). Arena: N = {s['n']}, K = {s['k']} samples per prompt on "
        f"{record['num_prompts_done']} prompts. KL of the resampled law against the reference samples = "
        f"<b>{kl.get('k1', float('nan')):.3f}</b> nats.</p>"
        + _table(measured, ["win rate", "measured [interval]", "theory at the measured KL"])
        + "<h3>Sample picks</h3>"
        + _picks_html(record)
    )


def build_report(
    run_ids: Sequence[str],
    runs_root: Path | None = None,
    *,
    title: str | None = None,
    optimum_records: dict[str, dict] | None = None,
) -> str:
    """The report's HTML for these runs (ids of yours or the gallery's), and any exact optima evaluated beside them."""
    import plotly.offline

    from infalign_core import arena_theory, gallery, optimum_gap, runs
    from infalign_core.figures import arena as arena_figures

    if not run_ids and not optimum_records:
        raise InfAlignError(
            "a report needs at least one run: pass --run ID (see `python -m infalign_core runs`)"
        )
    sections, evaluations, frontier_records = [], {}, {}
    for run_id in dict.fromkeys(run_ids):
        run_dir = runs.run_dir_of(run_id, runs_root)
        config = json.loads((run_dir / runs.CONFIG_FILE).read_text(encoding="utf-8"))
        status = runs.read_status(run_dir)
        name = gallery.title(run_id) or run_id
        setup = [(html.escape(label), _fmt(config.get(key))) for key, label in SETUP_FIELDS]
        setup.append(("state", _fmt(status.get("state"))))
        parts = [f"<h2>{html.escape(name)}</h2>", f'<p class="muted">run {html.escape(run_id)}</p>']
        parts += ["<h3>Setup</h3>", _table(setup)]
        record = _best_record(run_dir)
        if record is None:
            parts.append('<p class="muted">Not evaluated in the arena yet: no measured win rates.</p>')
        else:
            win, kl, s = record["win_rates"], record["kl"], record["settings"]
            evaluations[name] = record
            frontier_records[name] = record
            theory = record.get("theory") or arena_theory.theory_at_kl(
                config, s["n"], kl.get("k1", float("nan"))
            )
            measured = [
                [label, _interval(win, key), _fmt(theory.get(key) if theory else None)]
                for key, label in RATES
            ]
            parts.append(
                f"<h3>Measured against the theory</h3><p>Arena: N = {s['n']}, K = {s['k']} samples per prompt "
                f"on {record['num_prompts_done']} prompts ({html.escape(str(s.get('prompts')))}); "
                f"{win.get('level', 0.95):.0%} bootstrap intervals over prompts. "
                f"KL(π‖π_ref) = <b>{kl.get('k1', float('nan')):.3f}</b> ± {kl.get('k1_stderr') or 0:.3f} nats.</p>"
            )
            if kl.get("optimum_visible"):
                parts.append(
                    f"<p>The reward sees {kl['calibrated']:.3f} nats of that KL: {kl['share_seen']:.0%} of the "
                    f"{kl['optimum_visible']:.3f} that the exact optimum for this Φ, at the same KL, shows through "
                    f"the same {s['k']} reference samples per prompt (the rest changes text without changing its rank).</p>"
                )
            parts.append(_table(measured, ["win rate", "measured [interval]", "theory at the measured KL"]))
            gap = optimum_gap.from_arena(config, record)
            if gap is not None:  # the run's own objective: its exact optimum at the KL it spent
                parts.append(f"<p><b>Against the exact optimum.</b> {html.escape(gap.text())}</p>")
            if theory is None:
                parts.append(
                    '<p class="muted">No theory curve for this transform: the raw reward is a '
                    "prompt-dependent transform, so the theory makes no prediction for it.</p>"
                )
            parts.append(_eval_rewards_html(run_dir, record))
            parts += ["<h3>Sample picks</h3>", _picks_html(record)]
        sections.append("".join(parts))
    for name, record in (optimum_records or {}).items():  # the yardstick, after the runs it measures
        evaluations[name] = frontier_records[name] = record
        sections.append(_optimum_section(name, record))
    charts = []
    if evaluations:
        for key, label in RATES[1:]:
            fig, notes = arena_figures.measured_frontier_figure(frontier_records, key, label)
            fig = go.Figure(fig)  # a copy: the figure is shared with the arena's sessions
            # Room above the plot for the title: the figure's own top margin clipped it.
            fig.update_layout(
                title={"text": f"{label} win rate against KL: the theory's curves and the runs", "y": 0.98},
                margin={"t": 80},
            )
            charts.append(fig.to_html(full_html=False, include_plotlyjs=False, default_width="100%"))
            charts += [f'<p class="muted">{html.escape(note)}</p>' for note in dict.fromkeys(notes)]
        fig = win_rates_figure(evaluations)
        charts.append(fig.to_html(full_html=False, include_plotlyjs=False, default_width="100%"))
    else:
        charts.append('<p class="muted">No run here has arena results, so there is nothing to chart yet.</p>')
    heading = html.escape(title or "InfAlign Studio: CTRL runs report")
    intro = (
        "<p>InfAlign calibrates the reward per prompt against reference samples, transforms it with Φ for "
        "the inference procedure (best-of-N or worst-of-N), and runs KL-regularised RL (CTRL). Win rates "
        "compare N samples of the trained policy with N samples of the reference (ties count half); the "
        "theory's curve is the exact win rate of the KL-regularised optimum for the run's Φ.</p>"
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{heading}</title><style>{_STYLE}</style>"
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head><body>"
        f"<h1>{heading}</h1><p class='muted'>Written {time.strftime('%Y-%m-%d %H:%M')} for "
        f"{len(sections)} run(s).</p>{intro}{verdict_html(evaluations)}"
        f"<h2>Overview</h2>{''.join(charts)}{''.join(sections)}</body></html>"
    )


def verdict(evaluations: dict[str, dict]) -> list[str]:
    """The report's verdict in plain words: for each N, which run wins best-of-N and worst-of-N most
    often, and whether its lead over the runner-up holds on the same prompts and reference samples."""
    from infalign_core import arena_results

    lines = []
    for n in sorted({record["settings"]["n"] for record in evaluations.values()}):
        group = {name: r for name, r in evaluations.items() if r["settings"]["n"] == n}
        for metric, procedure in (("bon_win_rate", f"best-of-{n}"), ("won_win_rate", f"worst-of-{n}")):
            ranked = sorted(group, key=lambda name: group[name]["win_rates"][metric], reverse=True)
            top = ranked[0]
            line = (
                f"Served with {procedure}, {top} wins most often against the reference: "
                f"{_interval(group[top]['win_rates'], metric)} of comparisons."
            )
            if len(ranked) > 1:
                second = ranked[1]
                problem = arena_results.pairing_problem(group[top], group[second])
                if problem:
                    line += f" It cannot be paired with the runner-up, {second} ({problem})."
                else:
                    d = arena_results.paired_comparison([group[top]], [group[second]], metric)
                    words = {
                        "ahead": "a lead the interval confirms",
                        "behind": "behind on the paired comparison",
                        "not distinguishable": "too close to call on these prompts: the interval includes 0",
                    }[d.verdict]
                    line += f" Against the runner-up on the same prompts and reference samples: {d.text(top, second)}, {words}."
            lines.append(line)
    return lines


def paired_rows(evaluations: dict[str, dict]) -> list[list[str]]:
    """Each run − a baseline (calibrated RLHF when present, else the first run) on the run's own procedure."""
    from infalign_core import arena_results

    names = list(evaluations)
    baseline = next((name for name in names if "calibrated" in name.lower()), names[0] if names else None)
    rows = []
    for name in names:
        if name == baseline:
            continue
        record, base = evaluations[name], evaluations[baseline]
        metric = arena_results.run_metric(record)
        label = arena_results.metric_label(metric, record["settings"]["n"])
        problem = arena_results.pairing_problem(record, base)
        if problem:
            rows.append([name, label, f"not paired: {problem}"])
        else:
            rows.append(
                [name, label, arena_results.paired_comparison([record], [base], metric).text(name, baseline)]
            )
    return rows


def verdict_html(evaluations: dict[str, dict]) -> str:
    """The verdict as a short list and the paired comparisons (empty when nothing was evaluated)."""
    lines = verdict(evaluations) if evaluations else []
    if not lines:
        return ""
    out = "<h2>Verdict</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"
    rows = paired_rows(evaluations)
    if rows:
        out += (
            "<h3>Paired comparisons</h3><p>Each run minus the baseline on the procedure it was trained for, "
            "averaged over the same prompts and the same reference samples, with a 95 % paired bootstrap "
            "interval.</p>"
            + _table(
                [[html.escape(cell) for cell in row] for row in rows],
                ["run", "win rate", "difference [interval]"],
            )
        )
    return out


def write_report(run_ids: Sequence[str], out: str | Path, runs_root: Path | None = None) -> Path:
    """Write the report to ``out`` (an .html file); returns its path."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InfAlignError(
            f"the report is an HTML file: give --out a name ending in .html, not {out.name!r}"
        )
    text = build_report(run_ids, runs_root)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise InfAlignError(f"cannot write the report to {out}: {err.strerror or err}") from None
    return out
