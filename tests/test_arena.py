"""Challenger loading, the arena loop, theory overlays, saved records and the winrate CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infalign_core import arena, arena_results, arena_theory, challengers
from infalign_core.cli import main as cli_main
from infalign_core.errors import InfAlignError
from infalign_core.sampling_settings import SamplingSettings
from infalign_core.winrate import METRICS

# --- models, runs and the arena -----------------------------------------------------------


@pytest.fixture(scope="module")
def reward_fn():
    from conftest import tiny_sentiment

    from infalign_core.rewards import callable_reward

    return callable_reward(lambda prompt, response: tiny_sentiment(prompt + response), "tiny sentiment")


PROMPTS = ["the movie", "this film", "the plot", "the acting", "the ending", "the music"]


def test_reference_against_itself_in_the_arena_is_one_half_with_zero_kl(tiny_policy, reward_fn):
    states = list(
        arena.run_arena(
            tiny_policy,
            tiny_policy,
            reward_fn,
            PROMPTS,
            sampling=SamplingSettings(max_new_tokens=8),
            n=2,
            k=6,
            prompts_per_batch=4,
        )
    )
    assert [s.done for s in states] == [4, 6]
    final = states[-1]
    assert final.challenger_rewards.shape == final.reference_rewards.shape == (6, 6)
    for name in METRICS:
        assert getattr(final.estimate, f"{name}_ci_low") <= 0.5 <= getattr(final.estimate, f"{name}_ci_high")
    assert final.kl.k1 == pytest.approx(0.0, abs=1e-6) and final.kl.k3 == pytest.approx(0.0, abs=1e-6)
    [pick] = arena.example_picks(final, 1)
    assert pick.winner in ("challenger", "reference", "tie") and pick.prompt == PROMPTS[0]


def test_arena_refuses_n_above_k(tiny_policy, reward_fn):
    with pytest.raises(InfAlignError, match="K ≥ N"):
        next(arena.run_arena(tiny_policy, tiny_policy, reward_fn, PROMPTS, n=5, k=4))


def test_a_folder_that_is_not_a_causal_lm_is_refused_clearly(tiny_world):
    with pytest.raises(InfAlignError, match="not a causal language model"):
        challengers.load_challenger(str(tiny_world.reward), device="cpu")
    with pytest.raises(InfAlignError, match=r"config\.json"):
        challengers.load_challenger(str(tiny_world.empty), device="cpu")


def _fake_run(root, tiny_world, *, checkpoint: bool, transform: str = "exp"):
    import shutil

    run = root / f"run-{transform}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"transform": transform, "t": 10.0, "mode": "best", "n": 4}))
    if checkpoint:
        shutil.copytree(tiny_world.policy, run / "checkpoint")
        (run / "checkpoint" / "trainer_state.pt").write_bytes(b"")
    return run


def test_a_run_folder_or_id_resolves_to_its_checkpoint(tmp_path, tiny_world):
    run = _fake_run(tmp_path, tiny_world, checkpoint=True)
    for source in (str(run), run.name, str(run / "checkpoint")):
        resolved = challengers.resolve_challenger(source, runs_root=tmp_path)
        assert resolved.model.endswith("checkpoint") and resolved.run_dir == run
        assert resolved.run_config["transform"] == "exp"
    assert challengers.resolve_challenger("reference").model == "default"


def test_a_run_without_checkpoint_says_to_wait(tmp_path, tiny_world):
    run = _fake_run(tmp_path, tiny_world, checkpoint=False)
    with pytest.raises(InfAlignError, match="no checkpoint yet"):
        challengers.resolve_challenger(str(run))


def test_theory_curve_and_point_for_a_run_and_none_for_raw():
    config = {"transform": "exp", "t": 12.0, "mode": "best", "n": 4}
    curve = arena_theory.theory_curve(config, 4)
    assert curve["kl"].size > 10 and np.all(np.diff(curve["bon_win_rate"]) * np.diff(curve["kl"]) >= -1e-9)
    point = arena_theory.theory_at_kl(config, 4, 0.5)
    assert point["kl"] == pytest.approx(0.5) and point["bon_win_rate"] == pytest.approx(0.8726, abs=1e-3)
    assert arena_theory.theory_curve({"transform": "raw"}, 4) is None
    assert arena_theory.theory_at_kl({"transform": "raw"}, 4, 0.5) is None


def test_arena_results_survive_as_json_and_replace_same_settings(tmp_path):
    first = {"settings": {"n": 4, "k": 8}, "win_rates": {"bon_win_rate": 0.6}}
    other = {"settings": {"n": 2, "k": 8}, "win_rates": {"bon_win_rate": 0.7}}
    arena_results.save_arena_result(tmp_path, first)
    arena_results.save_arena_result(tmp_path, other)
    arena_results.save_arena_result(tmp_path, {**first, "win_rates": {"bon_win_rate": 0.65}})
    saved = arena_results.load_arena_results(tmp_path)
    assert len(saved) == 2
    assert arena_results.find_arena_result(tmp_path, {"n": 4, "k": 8})["win_rates"]["bon_win_rate"] == 0.65
    assert arena_results.load_arena_results(tmp_path / "missing") == []


# --- command line -----------------------------------------------------------------------------


def test_cli_rejects_n_above_k(capsys):
    assert cli_main(["winrate", "--policy", "reference", "--n", "8", "--k", "4"]) == 2
    assert "raise K to at least" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_prints_win_rates_with_intervals_and_kl(tmp_path, tiny_world, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    code = cli_main(
        [
            "winrate",
            "--policy",
            str(tiny_world.policy),
            "--reference",
            str(tiny_world.policy),
            "--reward",
            "oracle",
            "--prompts",
            str(prompts),
            "--n",
            "2",
            "--k",
            "4",
            "--num-prompts",
            "6",
            "--max-new-tokens",
            "8",
            "--device",
            "cpu",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name in METRICS:
        assert out[f"{name}_ci_low"] <= out[name] <= out[f"{name}_ci_high"]
    assert out["kl"] == pytest.approx(0.0, abs=1e-6) and out["num_prompts"] == 6


def test_cli_on_a_run_folder_uses_its_checkpoint_reference_and_reward_and_saves(tmp_path, tiny_world, capsys):
    run = _fake_run(tmp_path, tiny_world, checkpoint=True)
    config = json.loads((run / "config.json").read_text())
    config.update(policy=str(tiny_world.policy), reward="oracle", max_new_tokens=8, temperature=0.7)
    (run / "config.json").write_text(json.dumps(config))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    args = ["winrate", "--policy", str(run), "--prompts", str(prompts), "--n", "2", "--k", "4"]
    assert cli_main([*args, "--num-prompts", "4", "--device", "cpu", "--save", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["policy"] == f"run {run.name}" and out["reward"] == "oracle"
    assert out["temperature"] == 0.7 and out["top_p"] == 1.0  # the run's own sampling by default
    assert out["kl"] == pytest.approx(0.0, abs=1e-6)  # the checkpoint is the reference's weights
    assert out["theory_bon_win_rate"] == 0.5
    [saved] = arena_results.load_arena_results(run)
    assert saved["win_rates"]["bon_win_rate"] == pytest.approx(out["bon_win_rate"])


def test_cli_at_top_p_below_one_reports_win_rates_and_no_kl_with_the_reason(tmp_path, tiny_world, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    args = ["winrate", "--policy", str(tiny_world.policy), "--reference", str(tiny_world.policy)]
    args += ["--reward", "oracle", "--prompts", str(prompts), "--n", "2", "--k", "4", "--num-prompts", "4"]
    assert cli_main([*args, "--max-new-tokens", "6", "--top-p", "0.8", "--device", "cpu", "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out.strip().splitlines()[-1])
    assert out["kl"] is None and 0.0 <= out["bon_win_rate"] <= 1.0 and out["top_p"] == 0.8
    assert "infinite KL" in captured.err
    assert cli_main([*args, "--top-p", "0", "--device", "cpu"]) == 2
    assert "top-p must be in (0, 1]" in capsys.readouterr().err


def test_an_optimal_run_is_compared_with_the_phi_it_trained_on(tmp_path, tiny_world):
    from infalign_core import ctrl, theory
    from infalign_core.optimal import optimal_transform, optimal_transform_for_kl

    run = _fake_run(tmp_path, tiny_world, checkpoint=True, transform="optimal")
    (run / "checkpoint" / ctrl.TRANSFORM_FILE).write_text(json.dumps({"phi_beta": 0.3}))
    config = challengers.resolve_challenger(str(run)).run_config
    assert config["phi_beta"] == 0.3
    trained = optimal_transform(4, 0.3, "best")
    point = arena_theory.theory_at_kl(config, 4, 0.25)
    expected = theory.evaluate(trained, theory.beta_for_kl(trained, 0.25), 4)
    assert point["bon_win_rate"] == pytest.approx(expected.bon_win_rate, abs=1e-9)
    # Φ solved for another β is below the optimum at this KL: the overlay must not hide that.
    best = optimal_transform_for_kl(4, 0.25, "best")
    assert point["bon_win_rate"] < theory.evaluate(best, best.beta, 4).bon_win_rate
    curve = arena_theory.theory_curve(config, 4)
    assert "β=0.3" in curve["label"] and curve["kl"].size > 10


# --- inference procedures in the arena -------------------------------------------------------------


def _state_from(challenger, reference):
    p, k = challenger.shape
    empty = np.zeros((p, k))
    return arena.ArenaState(["x"] * p, challenger, reference, [], [], empty, empty, p, 1)


def test_arena_calibrated_rewards_are_mid_ranks_against_the_other_reference_samples():
    state = _state_from(np.array([[0.5, 3.0, 1.0]]), np.array([[1.0, 2.0, 1.0]]))
    ours, theirs = arena.arena_calibrated_rewards(state)
    # Sample i of each side against the reference's samples other than the i-th.
    assert np.allclose(ours, [[0.0, 1.0, 0.25]])  # 1.0 vs {1.0, 2.0}: one tie of two
    assert np.allclose(theirs, [[0.25, 1.0, 0.25]])


@pytest.mark.parametrize("spec", ["mix:0.5:3", "poisson:1", "soft:3:0.2", "reject:0.6:3"])
def test_arena_procedure_estimate_is_a_half_for_the_reference_against_itself(spec):
    rng = np.random.default_rng(0)
    state = _state_from(rng.normal(size=(400, 8)), rng.normal(size=(400, 8)))
    est = arena.procedure_estimate(state, spec, draws=100, resamples=200)
    assert est.spec == spec and est.ci_low - est.bias_bound <= 0.5 <= est.ci_high + est.bias_bound


def test_procedure_theory_curve_and_point_for_a_run():
    config = {"transform": "exp", "t": 12.0, "mode": "best", "n": 4}
    curve = arena_theory.procedure_theory_curve(config, "poisson:3")
    assert curve["kl"].size > 10 and np.all(np.diff(curve["win_rate"]) * np.diff(curve["kl"]) >= -1e-9)
    at = arena_theory.procedure_theory_at_kl(config, "bon:4", 0.5)
    assert at == pytest.approx(arena_theory.theory_at_kl(config, 4, 0.5)["bon_win_rate"], abs=1e-9)
    envelope = arena_theory.procedure_theory_curve({"transform": "optimal"}, "mix:0.5:4", kl_max=1.0)
    assert envelope["kl"].size >= 4 and np.all(np.diff(envelope["win_rate"]) > 0)
    assert arena_theory.procedure_theory_curve({"transform": "raw"}, "poisson:3") is None
    trained = {"transform": "optimal", "procedure": "poisson:2", "phi_beta": 0.2}
    assert arena_theory.run_transform(trained).procedure.spec == "poisson:2"


def test_an_optimal_procedure_runs_best_of_n_curve_uses_the_phi_it_trained_on():
    from infalign_core.figures import arena as arena_figures

    curve = arena_figures.default_theory_curve("optimal", None, "best", 4, 0.2, 4, "poisson:2")
    assert "Poisson(2)" in curve["label"] and curve["kl"].size > 5


class _BatchNoisyReward:
    """A reward whose score moves in the last bits with the text's place in the batch (as padding does)."""

    def __new__(cls):
        from infalign_core.reward_base import RewardFunction

        class Noisy(RewardFunction):
            name = "noisy length"

            def _score_texts(self, texts):
                return np.array([len(t) + 1e-9 * i for i, t in enumerate(texts)], dtype=np.float64)

        return Noisy()


def test_identical_texts_get_one_score_whatever_batch_or_side_they_come_from():
    reward = _BatchNoisyReward()
    scores = reward.score(["p", "q", "p", "p"], [" a", " a", " b", " a"])
    assert scores[0] == scores[3] and scores[0] != scores[1]  # same pair, same score; another prompt differs


def test_identical_challenger_and_reference_texts_tie_in_the_arena_and_its_picks(tiny_policy):
    reward = _BatchNoisyReward()
    # Near-greedy sampling: both sides write many of the same responses, in different batch slots.
    [*_, final] = arena.run_arena(tiny_policy, tiny_policy, reward, PROMPTS, sampling=SamplingSettings(max_new_tokens=4, temperature=0.05), n=2, k=6, prompts_per_batch=3, with_kl=False)  # fmt: skip
    shared = 0
    for row in range(final.done):
        for i, ours in enumerate(final.challenger_responses[row]):
            for j, theirs in enumerate(final.reference_responses[row]):
                if ours == theirs:
                    shared += 1
                    assert final.challenger_rewards[row, i] == final.reference_rewards[row, j]
    assert shared  # the test saw identical texts on both sides
    for mode in ("best", "worst"):
        for pick in arena.example_picks(final, 6, mode):
            if pick.challenger_response == pick.reference_response:
                assert pick.winner == "tie"
    assert final.estimate.standard_win_rate == pytest.approx(0.5, abs=0.2)


# --- paired comparisons ---------------------------------------------------------------------------


def _record(per_prompt_bon, seed=0, **settings):
    """An arena record; `seed` is the run's training seed, settings["seed"] the arena's sampling seed."""
    base = {"n": 4, "k": 64, "prompts": "bundled:eval", "num_prompts": len(per_prompt_bon), "seed": 12345}
    per_prompt = {
        name: list(per_prompt_bon) for name in ("standard_win_rate", "bon_win_rate", "won_win_rate")
    }
    return {
        "settings": {**base, **settings},
        "num_prompts_done": len(per_prompt_bon),
        "per_prompt": per_prompt,
        "run": {"seed": seed, "mode": "best"},
    }


def test_a_paired_comparison_is_the_mean_difference_with_the_headlines_bootstrap():
    from infalign_core import winrate

    rng = np.random.default_rng(0)
    these = [_record(rng.uniform(0.5, 0.9, 32), seed=s) for s in range(3)]
    those = [_record(rng.uniform(0.4, 0.8, 32), seed=s) for s in range(3)]
    paired = arena_results.paired_comparison(these, those, "bon_win_rate")
    first = np.array([r["per_prompt"]["bon_win_rate"] for r in these])
    second = np.array([r["per_prompt"]["bon_win_rate"] for r in those])
    assert (paired.difference, paired.ci_low, paired.ci_high) == winrate.paired_difference(
        first, second, resamples=2000, seed=1
    )
    assert paired.num_pairs == 3 and paired.text("A", "B").startswith("A − B: +")


def test_evaluations_on_other_prompts_or_reference_samples_are_not_paired():
    one = _record([0.6] * 8)
    assert (
        arena_results.pairing_problem(one, _record([0.5] * 8, seed=7)) is None
    )  # another training seed pairs
    with pytest.raises(InfAlignError, match="different seed"):
        arena_results.paired_comparison(
            [one], [{**one, "settings": {**one["settings"], "seed": 7}}], "bon_win_rate"
        )
    with pytest.raises(InfAlignError, match="different prompts_per_batch"):
        arena_results.paired_comparison([one], [_record([0.5] * 8, prompts_per_batch=16)], "bon_win_rate")
    assert arena_results.pairing_problem(one, _record([0.5] * 8, prompts_per_batch=8)) is None


def test_a_worst_of_n_run_is_measured_on_worst_of_n():
    assert arena_results.run_metric({"run": {"mode": "worst"}}) == "won_win_rate"
    assert arena_results.run_metric({"run": {"mode": "best"}}) == "bon_win_rate"
    assert arena_results.run_metric({"run": {"procedure": "won:4"}}) == "won_win_rate"


def test_cli_compare_gives_this_minus_that_paired_over_the_same_prompts(
    tmp_path, tiny_world, capsys, monkeypatch
):
    from infalign_core import runs

    monkeypatch.setenv(runs.RUNS_ENV_VAR, str(tmp_path / "runs"))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    made = {}
    for transform in ("exp", "identity"):
        run = _fake_run(tmp_path / "runs", tiny_world, checkpoint=True, transform=transform)
        config = json.loads((run / "config.json").read_text())
        config.update(policy=str(tiny_world.policy), reward="oracle", max_new_tokens=8, temperature=0.7)
        (run / "config.json").write_text(json.dumps(config))
        made[transform] = run
    args = [
        "winrate",
        "--prompts",
        str(prompts),
        "--n",
        "2",
        "--k",
        "4",
        "--num-prompts",
        "4",
        "--device",
        "cpu",
    ]
    assert cli_main([*args, "--policy", str(made["exp"]), "--compare", made["identity"].name]) == 2
    assert "has no saved arena evaluation" in capsys.readouterr().err
    assert cli_main([*args, "--policy", str(made["identity"]), "--save", "--json"]) == 0
    that = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cli_main([*args, "--policy", str(made["exp"]), "--compare", made["identity"].name, "--json"]) == 0
    this = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for metric in ("standard_win_rate", "bon_win_rate", "won_win_rate"):
        paired = this["compare"][metric]
        assert paired["difference"] == pytest.approx(this[metric] - that[metric], abs=1e-9)
        assert paired["ci_low"] <= paired["difference"] <= paired["ci_high"]
    assert (
        cli_main([*args, "--policy", str(made["exp"]), "--compare", made["identity"].name, "--seed", "3"])
        == 2
    )
    assert "different seed" in capsys.readouterr().err


@pytest.mark.gallery
def test_the_comparison_table_uses_each_runs_own_procedure_and_pairs_against_the_baseline():
    from pathlib import Path

    from infalign_core.figures import arena as arena_figures

    root = Path(__file__).resolve().parents[1] / "assets" / "gallery"
    records = {
        run.name: {**arena_results.load_arena_results(run)[-1], "label": run.name}
        for run in sorted(root.iterdir())
        if arena_results.load_arena_results(run)
    }
    if "gallery-ctrl-wo4-exp" not in records or "gallery-calibrated-rlhf" not in records:
        pytest.skip("the gallery lacks its worst-of-4 or calibrated run")
    table = arena_figures.comparison_table(records, "gallery-calibrated-rlhf").set_index("challenger")
    worst = records["gallery-ctrl-wo4-exp"]
    assert (
        table.loc["gallery-ctrl-wo4-exp", "− theory (own)"]
        == f"{worst['gap_to_theory']['won_win_rate']:+.3f} WoN"
    )
    paired = arena_results.paired_comparison([worst], [records["gallery-calibrated-rlhf"]], "won_win_rate")
    assert table.loc["gallery-ctrl-wo4-exp", "Δ vs baseline"].startswith(f"{paired.difference:+.3f}")
    assert table.loc["gallery-calibrated-rlhf", "Δ vs baseline"] == "baseline"
    for columns in arena_figures.COMPARISON_PARTS.values():
        assert set(columns) <= set(table.columns) | {"challenger"} and len(columns) <= 6
