"""The report says its verdict in words, pairs runs, labels N on its bars and shows identical texts as ties."""

from __future__ import annotations

import numpy as np

from infalign_core import arena_results, report


def _record(bon, won, n=4, **settings):
    per_prompt = {"standard_win_rate": [0.6] * len(bon), "bon_win_rate": list(bon), "won_win_rate": list(won)}
    rates = {}
    for name, values in per_prompt.items():
        mean = float(np.mean(values))
        rates |= {name: mean, f"{name}_ci_low": mean - 0.02, f"{name}_ci_high": mean + 0.02}
    return {
        "settings": {
            "n": n,
            "k": 64,
            "prompts": "bundled:eval",
            "num_prompts": len(bon),
            "seed": 0,
            **settings,
        },
        "num_prompts_done": len(bon),
        "per_prompt": per_prompt,
        "win_rates": rates,
        "run": {"mode": "best"},
    }


def test_the_verdict_names_the_winner_and_whether_the_paired_lead_holds():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.6, 0.8, 32)
    noise = rng.normal(0, 0.05, 32)
    evaluations = {
        "CTRL best-of-4": _record(base + 0.05, base + noise - noise.mean()),  # worst-of-4: equal on average
        "calibrated RLHF": _record(base, base + 0.0001),
    }
    lines = report.verdict(evaluations)
    assert lines[0].startswith("Served with best-of-4, CTRL best-of-4 wins most often")
    assert "a lead the interval confirms" in lines[0]
    assert "too close to call" in lines[1]
    paired = arena_results.paired_comparison(
        [evaluations["CTRL best-of-4"]], [evaluations["calibrated RLHF"]], "bon_win_rate"
    )
    assert paired.text("CTRL best-of-4", "calibrated RLHF") in lines[0]


def test_the_report_pairs_each_run_with_calibrated_rlhf_on_its_own_procedure():
    base = np.linspace(0.5, 0.9, 16)
    worst = {**_record(base, base + 0.02), "run": {"mode": "worst"}}
    rows = report.paired_rows({"calibrated RLHF": _record(base, base), "CTRL worst-of-4": worst})
    assert rows == [
        ["CTRL worst-of-4", "worst-of-4", "CTRL worst-of-4 − calibrated RLHF: +0.020 [+0.020, +0.020]"]
    ]


def test_the_bar_chart_names_each_runs_n_and_says_when_they_differ():
    fig = report.win_rates_figure(
        {"a": _record([0.7] * 4, [0.6] * 4, n=4), "b": _record([0.7] * 4, [0.6] * 4, n=8)}
    )
    assert list(fig.data[0].x) == ["a (N=4)", "b (N=8)"]
    assert "different N (4, 8)" in fig.layout.title.text
    assert fig.layout.yaxis.range[0] == 0


def test_identical_texts_show_as_a_tie_in_the_reports_picks():
    pick = {
        "prompt": "It was",
        "challenger_response": " I would highly recommend it.",
        "challenger_reward": 1.4950001,
        "reference_response": " I would highly recommend it.",
        "reference_reward": 1.4950002,
        "winner": "reference",
    }
    html = report._picks_html({"settings": {"n": 4}, "picks": {"best": [pick], "worst": []}})
    assert "wins" not in html and html.count("tie") == 2
