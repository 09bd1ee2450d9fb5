"""What-if links on the Transforms page: a link restores its state, a move updates the link."""

import itertools
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180


def _open(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    at.switch_page("app_pages/transforms.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _tables(at: AppTest) -> list:
    return [frame.value for frame in at.dataframe]


def test_a_link_with_n_8_and_1_nat_opens_best_of_8_at_one_nat():
    at = _open(n="8", kl="1.0", transforms="identity,exp", mode="best")
    assert at.number_input(key="n").value == 8
    assert at.slider(key="kl").value == 1.0
    assert at.multiselect(key="names").value == ["identity", "exp"]
    trade = _tables(at)[0]
    assert "best-of-8 win rate" in trade.columns
    assert trade["KL"].round(4).tolist() == [1.0, 1.0]


def test_moving_the_kl_slider_writes_the_link():
    at = _open()
    assert "kl" not in at.query_params  # defaults make a short link
    at.slider(key="kl").set_value(1.25).run()
    assert at.query_params["kl"] in ("1.25", ["1.25"])
    assert not at.exception


def test_a_bad_link_value_is_refused_with_a_warning_and_the_default_kept():
    at = _open(n="0", kl="99")
    warnings = " ".join(w.value for w in at.warning)
    assert "n=0 is outside" in warnings and "kl=99 is outside" in warnings
    assert at.number_input(key="n").value == 4
    assert at.slider(key="kl").value == 0.5


def test_a_procedure_link_shows_the_users_expression_literally_not_as_markdown():
    from infalign_core.text import literal

    at = _open(procedure="expr:x**3")
    captions = " ".join(c.value for c in at.caption)
    assert literal("T(x) = x**3") in captions  # x**3, not "x3" with a stray bold marker


def test_a_refused_expression_is_quoted_literally_in_the_warning():
    from infalign_core.text import literal, unescaped

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"procedure": "expr:__import__('os')"})
    at.run()
    at.switch_page("app_pages/transforms.py").run()
    warnings = " ".join(w.value for w in at.warning)
    assert "__import__" in unescaped(warnings) and literal("__import__") in warnings


def test_the_procedure_view_hides_the_controls_it_ignores():
    at = _open(procedure="poisson:3")
    keys = {w.key for w in at.sidebar.multiselect} | {w.key for w in at.sidebar.select_slider}
    assert not keys & {"names", "ns", "t"}  # transforms, N-chart and t are the best-of-N view's
    assert not [t for t in at.sidebar.toggle if t.key == "best_t"]
    assert at.slider(key="kl").value == 0.5  # the controls it uses stay


def test_worst_of_n_best_t_text_follows_the_table_and_names_the_beta_floor():
    at = _open(mode="worst", n="4", ns="1,4,16,64")
    rows = next(frame.value for frame in at.dataframe if "best t" in frame.value.columns)
    side = " ".join(m.value for m in at.markdown if "The best steepness" in m.value)
    ts = list(rows["best t"])
    assert ("grows with N" in side) == all(b >= a for a, b in itertools.pairwise(ts))
    floor = [int(n) for n, note in zip(rows["N"], rows["note"]) if str(note).startswith("β at its floor")]
    for n in floor:
        assert f"N = {n}" in side or f", {n}" in side
    assert "Pick a steeper" not in " ".join(e.value for e in at.error)


def test_the_sidebar_ns_best_t_is_the_exact_search_ctrl_and_the_tour_use():
    from infalign_core import procedures
    from infalign_core.transforms import t_label

    exact = procedures.best_exponential_t(procedures.of_n(4, "best"), 0.5)
    at = _open(n="4", kl="0.5", transforms="identity,exp", best_t="true")
    rows = next(frame.value for frame in at.dataframe if "best t" in frame.value.columns)
    assert float(rows.set_index("N").loc[4, "best t"]) == exact.t
    trade = _tables(at)[0]
    assert f"exp (best t={t_label(exact.t)} for N=4)" in list(trade["transform"])
