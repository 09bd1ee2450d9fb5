"""One recommended run, read by everything that starts one; one set of arena settings from a run."""

import sys
from pathlib import Path

from infalign_core import challengers, ctrl, gallery_build
from infalign_core.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def test_the_gallery_trains_the_recommended_run_and_follows_a_change_to_it(monkeypatch):
    config = gallery_build.config_for("gallery-ctrl-bo4-exp")
    assert (
        config.steps == ctrl.RECOMMENDED_RUN["steps"]
        and config.kl_target == ctrl.RECOMMENDED_RUN["kl_target"]
    )
    monkeypatch.setitem(ctrl.RECOMMENDED_RUN, "steps", 7)
    monkeypatch.setitem(ctrl.RECOMMENDED_RUN, "k", 16)
    changed = gallery_build.config_for("gallery-ctrl-bo4-exp")
    assert (changed.steps, changed.k, changed.checkpoint_every) == (7, 16, 7)


def test_build_gallery_without_steps_builds_the_recommended_number_of_steps(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(gallery_build, "build_run", lambda name, out, steps, **kw: seen.append(steps) or out)
    args = build_parser().parse_args(["build-gallery", "--out", str(tmp_path), "--only", "gallery-raw-rlhf"])
    assert args.func(args) == 0
    assert [gallery_build.config_for("gallery-raw-rlhf", s).steps for s in seen] == [
        ctrl.RECOMMENDED_RUN["steps"]
    ]


def test_the_headline_experiment_defaults_to_the_recommended_run(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    sys.modules.pop("headline_experiment", None)
    import headline_experiment

    args = headline_experiment.parse_args([])
    run = ctrl.recommended_config()
    for name in ("n", "kl_target", "steps", "num_prompts", "m", "k", "prompts_per_step", "learning_rate"):
        assert getattr(args, name) == getattr(run, name), name


def test_arena_settings_of_a_run_are_its_reference_reward_and_sampling_at_top_p_one():
    trained = ctrl.CTRLConfig(
        policy="some/policy", reward="oracle", max_new_tokens=12, temperature=0.7
    ).to_dict()
    settings = challengers.arena_settings(trained)
    assert (settings.reference, settings.reward, settings.reward_label) == ("some/policy", "oracle", None)
    assert (settings.max_new_tokens, settings.temperature, settings.top_p) == (12, 0.7, 1.0)
    with_reference = challengers.arena_settings(
        {**trained, "reference": "frozen/ref", "reward_label": "POSITIVE"}
    )
    assert (with_reference.reference, with_reference.reward_label) == ("frozen/ref", "POSITIVE")


def test_arena_settings_without_a_run_are_the_bundled_defaults():
    bare = ctrl.CTRLConfig()
    settings = challengers.arena_settings(None)
    assert (settings.reference, settings.reward) == ("default", "default")
    assert (settings.max_new_tokens, settings.temperature, settings.top_p) == (
        bare.max_new_tokens,
        bare.temperature,
        1.0,
    )
