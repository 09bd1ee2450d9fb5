"""Inference procedures: win rates, output laws and optimal transforms against independent checks."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from infalign_core import expression, optimal, procedures, theory
from infalign_core.errors import InfAlignError
from infalign_core.transforms import Transform

PHIS = [Transform("identity"), Transform("exp", 10.0, "best"), Transform("exp", 5.0, "worst")]


def parse(spec):
    return procedures.parse_procedure(spec)


@pytest.mark.parametrize(
    "spec",
    [
        "bon:4",
        "won:16",
        "poisson:3",
        "poisson:0",
        "mix:0.5:8",
        "expr:x**3",
        "expr:sqrt(x)",
        "soft:4:0.1",
        "reject:0.8:4",
    ],
)
def test_valid_specs_parse_and_round_trip(spec):
    proc = parse(spec)
    assert parse(proc.spec) == proc
    assert proc.description and proc.label


@pytest.mark.parametrize(
    "spec",
    [
        "bon",
        "bon:0",
        "bon:2000",
        "bon:2.5",
        "won:-1",
        "poisson:-1",
        "poisson:nan",
        "poisson:1e9",
        "mix:1.5:4",
        "mix:0.5",
        "soft:4:0",
        "soft:4:1e-9",
        "reject:2:4",
        "reject:0.5:0",
        "beam:4",
        "expr:",
        "expr:1-x",  # T(0) = 1
        "expr:x**2 + 1",
        "expr:x*(2-x)**3",  # T(1) = 1 but not increasing
        "expr:log(x)",  # not finite at 0
        "expr:__import__('os').system('true')",
        "expr:x.real",
        "expr:abs(x)",
        "expr:[x][0]",
        "expr:(lambda y: y)(x)",
        "expr:x if x else 1",
        "expr:y**2",
        "expr:'x'",
        "expr:exp(x, 2)",
        "expr:" + "x*" * 300 + "x",
    ],
)
def test_bad_specs_are_refused_with_the_project_error(spec):
    with pytest.raises(InfAlignError):
        parse(spec)


def test_expressions_are_never_evaluated_as_python(monkeypatch):
    import builtins

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    proc = parse("expr:(exp(2*x) - 1)/(exp(2) - 1)")
    assert proc.t(np.array([0.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx([0.0, 1.0])


@pytest.mark.parametrize(
    "text",
    [
        "x**3",
        "sqrt(x)",
        "x*exp(2*(x-1))",
        "log(1 + 3*x)/log(4)",
        "(x + x**2)/2",
        "x**(1 + x)",
        "-(-x)**3 * -1",
    ],
)
def test_symbolic_derivative_matches_a_central_difference(text):
    tree = expression.parse(text)
    x = np.linspace(0.05, 0.95, 91)
    h = 1e-6
    numeric = (expression.evaluate_tree(tree, x + h) - expression.evaluate_tree(tree, x - h)) / (2 * h)
    assert np.allclose(
        expression.evaluate_tree(expression.derivative(tree), x), numeric, rtol=1e-6, atol=1e-7
    )


@given(
    phi=st.sampled_from(PHIS),
    beta=st.floats(0.01, 10.0),
    n=st.integers(1, 256),
)
@settings(max_examples=25, deadline=None)
def test_bon_and_won_as_procedures_reproduce_the_engine_to_1e9(phi, beta, n):
    point = theory.evaluate(phi, beta, n)
    assert procedures.procedure_win_rate(phi, beta, parse(f"bon:{n}")) == pytest.approx(
        point.bon_win_rate, abs=1e-9
    )
    assert procedures.procedure_win_rate(phi, beta, parse(f"won:{n}")) == pytest.approx(
        point.won_win_rate, abs=1e-9
    )


@given(phi=st.sampled_from(PHIS), beta=st.floats(0.02, 5.0), p=st.floats(0.0, 1.0), n=st.integers(2, 32))
@settings(max_examples=15, deadline=None)
def test_mixture_win_rate_is_bilinear_in_its_parts(phi, beta, p, n):
    mix, bon, one = parse(f"mix:{p!r}:{n}"), parse(f"bon:{n}"), parse("bon:1")
    policy = procedures.policy_for(phi, beta, mix)
    parts = {(a, b): procedures.cross_win_rate(policy, a, b)[0] for a in (bon, one) for b in (bon, one)}
    weights = {bon: p, one: 1 - p}
    expected = sum(weights[a] * weights[b] * w for (a, b), w in parts.items())
    assert procedures.aligned_win_rate(policy, mix)[0] == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("mu", [0.0, 0.5, 3.0, 12.0])
@pytest.mark.parametrize("phi", PHIS)
def test_poisson_matches_a_direct_sum_over_n(mu, phi):
    proc = parse(f"poisson:{mu}")
    policy = procedures.policy_for(phi, 0.3, proc)
    ks = np.arange(0, int(mu + 12 * np.sqrt(mu) + 20))
    pmf = stats.poisson.pmf(ks, mu)
    bons = [parse(f"bon:{k + 1}") for k in ks]
    direct = sum(
        pmf[i] * pmf[j] * procedures.cross_win_rate(policy, bons[i], bons[j])[0]
        for i in range(len(ks))
        for j in range(len(ks))
        if pmf[i] * pmf[j] > 1e-18
    )
    assert procedures.aligned_win_rate(policy, proc)[0] == pytest.approx(direct, abs=1e-9)


def quadrature_win_rate(phi, beta, proc):
    """The pointwise formula by scipy's adaptive quadrature: the slow independent check."""
    quad = dict(limit=400, epsabs=1e-13, epsrel=1e-12)
    z = integrate.quad(lambda u: np.exp(phi(np.array([u]))[0] / beta), 0, 1, **quad)[0]

    def cdf(u):
        return integrate.quad(lambda v: np.exp(phi(np.array([v]))[0] / beta) / z, 0, u, **quad)[0]

    if proc.kind == "reject":
        gamma = cdf(proc.q)
        n, q = proc.n, proc.q
        c = sum(gamma**k for k in range(n))
        cq = sum(q**k for k in range(n))

        def integrand(u):
            g = cdf(u)
            upper = 1 - gamma ** (n - 1) * g if u < q else c * (1 - g)
            return upper * (q ** (n - 1) if u < q else cq)

        return integrate.quad(integrand, 0, 1, points=[q], limit=200)[0]

    def integrand(u):
        g = cdf(u)
        return (1 - proc.t(np.array([g]), np.array([1 - g]))[0]) * proc.t_prime(
            np.array([u]), np.array([1 - u])
        )[0]

    return integrate.quad(integrand, 0, 1, limit=200)[0]


@pytest.mark.parametrize("spec", ["poisson:3", "mix:0.3:8", "expr:x**2*(3-2*x)", "reject:0.7:5"])
@pytest.mark.parametrize(
    ("phi", "beta"), [(Transform("identity"), 0.3), (Transform("exp", 8.0, "best"), 0.5)]
)
def test_matches_adaptive_quadrature_to_1e6(spec, phi, beta):
    proc = parse(spec)
    assert procedures.procedure_win_rate(phi, beta, proc) == pytest.approx(
        quadrature_win_rate(phi, beta, proc), abs=1e-6
    )


def monte_carlo(phi, beta, proc, draws=200_000, seed=0):
    """Sample the aligned policy's calibrated rewards and run the procedure on both sides."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 1, 200_001)
    g = np.exp((phi(grid) - phi(grid).max()) / beta)
    cdf = np.concatenate([[0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]

    def run(sample):
        c = sample((draws, proc.n))
        if proc.kind == "soft":
            logits = c / proc.tau
            prob = np.exp(logits - logits.max(1, keepdims=True))
            prob /= prob.sum(1, keepdims=True)
            pick = (rng.random((draws, 1)) > np.cumsum(prob, 1)).sum(1)
            return c[np.arange(draws), np.minimum(pick, proc.n - 1)]
        ok = c >= proc.q
        first = np.where(ok.any(1), ok.argmax(1), proc.n - 1)
        return c[np.arange(draws), first]

    ours = run(lambda shape: np.interp(rng.random(shape), cdf, grid))
    theirs = run(lambda shape: rng.random(shape))
    return np.mean(ours > theirs)


@pytest.mark.parametrize("spec", ["soft:4:0.1", "soft:3:1", "reject:0.8:4", "reject:0.5:2"])
def test_functional_procedures_match_monte_carlo(spec):
    proc, phi, beta = parse(spec), Transform("exp", 6.0, "best"), 0.5
    ours = procedures.procedure_win_rate(phi, beta, proc)
    # 200 000 draws: standard error ≤ 0.0012; 4.5 of them is a 1-in-10^5 false alarm.
    assert ours == pytest.approx(monte_carlo(phi, beta, proc), abs=4.5 * 0.5 / np.sqrt(200_000))


@pytest.mark.parametrize("spec", ["soft:4:0.1", "soft:16:0.02", "reject:0.8:4", "poisson:3"])
def test_output_density_integrates_to_one(spec):
    proc = parse(spec)
    policy = procedures.policy_for(Transform("exp", 10.0, "best"), 0.2, proc)
    assert policy.grid.integrate(procedures.output_density(policy, proc))[0] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("phi", PHIS)
def test_soft_best_of_n_tends_to_best_of_n_as_tau_falls_and_to_one_sample_as_it_grows(phi):
    n, beta = 4, 0.3
    point = theory.evaluate(phi, beta, n)
    gaps = [
        abs(procedures.procedure_win_rate(phi, beta, parse(f"soft:{n}:{tau}")) - point.bon_win_rate)
        for tau in (0.3, 0.1, 0.03, 0.01)
    ]
    assert all(a > b for a, b in itertools.pairwise(gaps)) and gaps[-1] < 0.02
    far = [
        abs(procedures.procedure_win_rate(phi, beta, parse(f"soft:{n}:{tau}")) - point.standard_win_rate)
        for tau in (1, 10, 100, 1000)
    ]
    assert all(a > b for a, b in itertools.pairwise(far)) and far[-1] < 1e-3


@pytest.mark.parametrize("spec", ["reject:0:4", "reject:1:4", "soft:1:0.5", "mix:0:8", "poisson:0"])
def test_degenerate_procedures_are_one_sample(spec):
    phi, beta = Transform("exp", 10.0, "best"), 0.3
    assert procedures.procedure_win_rate(phi, beta, parse(spec)) == pytest.approx(
        theory.evaluate(phi, beta, 1).standard_win_rate, abs=1e-9
    )


@pytest.mark.parametrize("spec", ["poisson:3", "mix:0.5:8", "expr:x**3", "soft:4:0.1", "reject:0.8:4"])
def test_optimum_is_a_fixed_point_with_a_small_residual(spec):
    opt = procedures.optimal_for_procedure(parse(spec), kl=0.5)
    assert opt.kl == pytest.approx(0.5, rel=1e-6)
    assert opt.residual < 1e-9 and procedures.fixed_point_residual(opt) < 1e-7
    assert opt(np.array([0.0]))[0] == pytest.approx(0.0, abs=1e-12)
    if opt.procedure.pointwise:
        # Φ′ = T′(u)·T′(G) ≥ 0. The functional procedures' Φ need not be monotone: under soft
        # best-of-N a hopeless candidate is almost never picked, while a mediocre one can steal
        # the pick; under rejection a reward just below q buys another try, one just above is kept.
        assert np.all(np.diff(opt(np.linspace(0, 1, 501))) >= -1e-12)


@pytest.mark.parametrize(
    "spec", ["soft:4:0.1", "soft:2:1", "reject:0.8:4", "reject:0.3:3", "poisson:3", "expr:x**3"]
)
def test_first_variation_is_the_directional_derivative_of_the_win_rate(spec):
    proc = parse(spec)
    policy = procedures.policy_for(Transform("exp", 6.0, "best"), 0.4, proc)
    grid, g = policy.grid, policy.density
    direction = np.cos(7 * grid.u) + grid.u**2
    direction = g * (direction - grid.integrate(g * direction)[:, None, None])  # ∫ δg = 0

    def w(eps):
        tilted = theory.AlignedPolicy(beta=policy.beta, grid=grid, log_density=np.log(g + eps * direction))
        return procedures.aligned_win_rate(tilted, proc)[0]

    eps = 1e-5
    numeric = (w(eps) - w(-eps)) / (2 * eps)
    analytic = grid.integrate(direction * procedures.first_variation(policy, proc))[0]
    assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize(("n", "mode"), [(4, "best"), (8, "worst")])
def test_fixed_point_solver_agrees_with_the_scaled_ode_for_best_and_worst_of_n(n, mode):
    proc = parse(f"{'bon' if mode == 'best' else 'won'}:{n}")
    ode = optimal.optimal_transform_for_kl(n, 0.8, mode)
    fixed = procedures.optimal_for_procedure(proc, kl=0.8, method="fixed_point")
    assert fixed.beta == pytest.approx(ode.beta, rel=1e-6)
    u = np.linspace(0, 1, 201)
    assert np.max(np.abs(fixed(u) - ode(u))) < 1e-5 * np.ptp(ode(u))  # PCHIP between grid nodes


@given(
    spec=st.sampled_from(
        [
            "poisson:3",
            "poisson:0.5",
            "mix:0.5:8",
            "mix:0.2:4",
            "expr:x**3",
            "soft:4:0.1",
            "reject:0.8:4",
            "won:4",
        ]
    ),
    kl=st.floats(0.05, 1.5),
)
@settings(max_examples=10, deadline=None)
def test_optimal_is_never_below_the_best_exponential_at_equal_kl(spec, kl):
    proc = parse(spec)
    opt = procedures.optimal_for_procedure(proc, kl=kl)
    best_exp = procedures.best_exponential_t(proc, kl)
    assert opt.win_rate >= best_exp.win_rate - 1e-8


def test_a_procedure_optimum_that_cannot_be_reached_says_so():
    with pytest.raises(InfAlignError, match="KL"):
        procedures.optimal_for_procedure(parse("bon:4"), kl=50.0)
    with pytest.raises(InfAlignError, match="exactly one"):
        procedures.optimal_for_procedure(parse("poisson:3"))


@pytest.mark.parametrize(
    ("tau", "phi", "beta"), [(0.3, Transform("identity"), 0.5), (0.1, Transform("exp", 5.0, "best"), 0.4)]
)
def test_soft_best_of_two_matches_nested_adaptive_quadrature_to_1e6(tau, phi, beta):
    # N = 2: f(c) = 2 g(c) ∫ g(c') w(c)/(w(c) + w(c')) dc'; under the reference (g = 1) the inner
    # integral has the closed form 1 − τ log((w + 1)/(w + e^{−1/τ})).
    quad = dict(limit=200, epsabs=1e-12, epsrel=1e-11)

    def w(c):
        return np.exp((c - 1.0) / tau)

    z = integrate.quad(lambda u: np.exp(phi(np.array([u]))[0] / beta), 0, 1, **quad)[0]

    def g(u):
        return np.exp(phi(np.array([u]))[0] / beta) / z

    def f_ref(c):
        return 2.0 * (1.0 - tau * np.log((w(c) + 1.0) / (w(c) + np.exp(-1.0 / tau))))

    def f_policy(c):
        return 2.0 * g(c) * integrate.quad(lambda v: g(v) * w(c) / (w(c) + w(v)), 0, 1, **quad)[0]

    expected = integrate.quad(
        lambda c: f_policy(c) * integrate.quad(f_ref, 0, c, **quad)[0], 0, 1, limit=100
    )[0]
    assert procedures.procedure_win_rate(phi, beta, parse(f"soft:2:{tau}")) == pytest.approx(
        expected, abs=1e-6
    )


def test_a_users_t_equal_to_worst_of_three_reaches_the_odes_optimum():
    ours = procedures.optimal_for_procedure(parse("expr:1-(1-x)**3"), kl=0.6)
    ode = procedures.optimal_for_procedure(parse("won:3"), kl=0.6)
    assert ours.win_rate == pytest.approx(ode.win_rate, abs=1e-7)


def test_a_singular_t_fails_with_the_project_error_not_a_crash():
    # T′ = 1/(2√x) is infinite at 0: the fixed point runs off to −∞ there and must say so.
    with pytest.raises(InfAlignError, match="did not converge"):
        procedures.optimal_for_procedure(parse("expr:sqrt(x)"), kl=1.0)
