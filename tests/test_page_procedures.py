"""AppTest of the Transforms & frontiers page's inference-procedure choice and its Beyond best-of-N view."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180


def _clean(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _page(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at = at.run()
    return _clean(at.switch_page("app_pages/transforms.py").run())


def _alts(at: AppTest) -> list[str]:
    return sorted(c.proto.alt for c in at.get("plotly_chart"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["poisson", "mix", "reject", "expr"])
def test_each_procedure_draws_its_frontiers_and_the_optimal_vs_exponential_gap(kind):
    at = _clean(_page().selectbox(key="procedure_kind").set_value(kind).run())
    assert not at.error, [e.value for e in at.error]
    assert _alts(at) == ["optimal vs exponential for the procedure", "procedure frontiers"]
    assert str(at.query_params["procedure"]).startswith(f"{kind}:")
    labels = [m.label for m in at.metric]
    assert any(label.startswith("best t at") for label in labels) and "optimal − best exponential" in labels


@pytest.mark.slow
def test_the_link_reproduces_a_procedure_and_its_parameters():
    at = _page({"procedure": "soft:3:0.2"})
    assert at.selectbox(key="procedure_kind").value == "soft"
    assert at.number_input(key="n").value == 3 and at.number_input(
        key="procedure_tau"
    ).value == pytest.approx(0.2)
    assert not at.error and "procedure frontiers" in _alts(at)


def test_a_bad_expression_shows_the_parsers_message_and_no_chart():
    at = _clean(_page().selectbox(key="procedure_kind").set_value("expr").run())
    at = _clean(at.text_input(key="procedure_expr").set_value("__import__('os')").run())
    assert any("not allowed" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.get("plotly_chart")


def test_best_of_n_keeps_the_original_page():
    at = _page({"procedure": "bon:8"})
    assert at.number_input(key="n").value == 8
    assert "frontiers" in _alts(at) and "procedure frontiers" not in _alts(at)
