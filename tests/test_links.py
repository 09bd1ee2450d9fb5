"""What-if links: a page's state survives the URL round trip; bad values are refused with a reason."""

from hypothesis import given, settings
from hypothesis import strategies as st

from infalign_core import links


def _defaults(spec):
    return {p.key: p.default for p in spec}


@given(
    n=st.integers(1, 1024),
    kl=st.sampled_from([0.05, 0.5, 1.0, 2.35, 8.0]),
    names=st.lists(st.sampled_from(["identity", "log", "exp", "optimal"]), min_size=1, unique=True),
    mode=st.sampled_from(["best", "worst"]),
    t=st.sampled_from(links.T_CHOICES),
)
def test_transforms_state_round_trips_through_the_link(n, kl, names, mode, t):
    state = {**_defaults(links.TRANSFORMS), "n": n, "kl": kl, "names": names, "mode": mode, "t": t}
    values, errors = links.read_transforms(links.write(state, links.TRANSFORMS))
    assert not errors
    seeded = {"procedure_kind": "won"} if mode == "worst" else {}  # mode=worst selects worst-of-N
    assert {**_defaults(links.TRANSFORMS), **values} == {**state, **seeded}


@settings(deadline=None)  # the first call imports the theory engine
@given(
    spec=st.sampled_from(["poisson:3", "mix:0.25:8", "soft:4:0.1", "reject:0.8:4", "expr:x**3"]),
    n=st.integers(1, 64),
)
def test_a_procedure_link_seeds_its_widgets_and_round_trips(spec, n):
    from infalign_core import explorer

    state = {**_defaults(links.TRANSFORMS), "n": n, "procedure_spec": spec}
    values, errors = links.read_transforms(links.write(state, links.TRANSFORMS))
    assert not errors and values["procedure_spec"] == spec
    values = {**_defaults(links.TRANSFORMS), **values}
    widgets = explorer.procedure_widgets(spec)
    assert values["procedure_kind"] == widgets["kind"]
    # The spec's own N wins over the link's n; poisson and expr have none, so n stays.
    assert values["n"] == (n if widgets["kind"] in ("poisson", "expr") else widgets["n"])
    rebuilt = explorer.procedure_spec(
        values["procedure_kind"],
        n=values["n"],
        **{name: values.get(f"procedure_{name}") for name in ("mu", "p", "tau", "q", "expr")},
    )
    assert rebuilt == spec


def test_a_bad_procedure_in_a_link_is_refused_with_a_message():
    values, errors = links.read_transforms({"procedure": "poisson:-1"})
    assert "procedure_spec" not in values and len(errors) == 1 and "procedure" in errors[0]


def test_defaults_make_an_empty_link():
    assert links.write(_defaults(links.TRANSFORMS), links.TRANSFORMS) == {}


def test_the_issue_example_link_reads_as_best_of_8_at_one_nat():
    values, errors = links.read_transforms(
        {"n": "8", "kl": "1.0", "transforms": "identity,exp", "mode": "best"}
    )
    assert not errors
    assert values == {"n": 8, "kl": 1.0, "names": ["identity", "exp"], "mode": "best", "hold": "KL budget"}


def test_out_of_range_and_unknown_values_are_refused_with_a_message():
    values, errors = links.read_transforms({"n": "0", "kl": "nan", "transforms": "identity,bogus", "t": "11"})
    assert values == {}
    assert len(errors) == 4
    assert any("n=0 is outside [1, 1024]" in e for e in errors)
    assert any("'bogus' is not one of" in e for e in errors)


def test_a_beta_link_holds_beta_fixed():
    values, _ = links.read_transforms({"beta": "0.1"})
    assert values == {"beta": 0.1, "hold": "β"}


def test_url_joins_base_page_and_query():
    assert links.url("http://127.0.0.1:8501/transforms?n=2", "transforms", {"n": "8", "kl": "1"}) == (
        "http://127.0.0.1:8501/transforms?n=8&kl=1"
    )
    assert links.url("http://h:1/", "arena", {}) == "http://h:1/arena"
