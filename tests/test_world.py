"""The bundled default world: the generator's oracle, a reduced build end to end, the shipped models."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infalign_core import lexicon, reviews, world
from infalign_core.lexicon import LEXICON, MODIFIERS, sentiment_intensity, sentiment_kind
from infalign_core.reviews import generate_reviews, is_well_formed, review_openings
from infalign_core.world import ORDERING_PROBES

# adjectives of two tiers on each side, so that pairs of equal strength exist
POSITIVE = sorted(lexicon._POSITIVE_TIERS[1.0].split() + lexicon._POSITIVE_TIERS[1.6].split())
NEGATIVE = sorted(lexicon._NEGATIVE_TIERS[-1.0].split() + lexicon._NEGATIVE_TIERS[-1.6].split())
ADJECTIVES = POSITIVE + NEGATIVE
INTENSIFIERS = sorted(w for w, m in MODIFIERS.items() if m > 1.0)
DOWNTONERS = sorted(w for w, m in MODIFIERS.items() if m < 1.0)


# --- the oracle -------------------------------------------------------------------


@given(st.sampled_from(ADJECTIVES), st.sampled_from(INTENSIFIERS))
def test_intensifier_increases_magnitude_and_keeps_sign(adjective, intensifier):
    plain = sentiment_intensity(f"The acting was {adjective}.")
    strong = sentiment_intensity(f"The acting was {intensifier} {adjective}.")
    assert abs(strong) > abs(plain) > 0
    assert (strong > 0) == (plain > 0)


@given(st.sampled_from(ADJECTIVES), st.sampled_from(DOWNTONERS))
def test_downtoner_decreases_magnitude(adjective, downtoner):
    plain = sentiment_intensity(f"The plot was {adjective}.")
    soft = sentiment_intensity(f"The plot was {downtoner} {adjective}.")
    assert 0 < abs(soft) < abs(plain)


EQUAL_STRENGTH_PAIRS = [(p, n) for p in POSITIVE for n in NEGATIVE if LEXICON[p] == -LEXICON[n]]


@given(st.sampled_from(EQUAL_STRENGTH_PAIRS))
def test_but_clause_dominates_at_equal_strength(pair):
    positive, negative = pair
    assert sentiment_intensity(f"The acting was {positive} but the plot was {negative}.") < 0
    assert sentiment_intensity(f"The plot was {negative}, but the acting was {positive}.") > 0
    assert sentiment_kind(f"The plot was {negative} but the acting was {positive}.") == "mixed"


def test_negative_words_score_negative_and_positive_words_positive():
    for word in NEGATIVE:
        assert sentiment_intensity(f"The film was {word}.") < -0.5
    for word in POSITIVE:
        assert sentiment_intensity(f"The film was {word}.") > 0.5


def test_genre_words_are_not_negative():
    for genre in ["horror", "villain", "killer", "murder mystery", "war scenes", "ghost", "monster"]:
        assert sentiment_intensity(f"The {genre} was superb.") == sentiment_intensity(
            "The acting was superb."
        )
    assert sentiment_intensity("It is a dark horror film about a killer and a ghost.") == 0.0
    assert sentiment_intensity("The villain was bloody and violent.") == 0.0


def test_descriptive_word_lists_hold_no_judging_word():
    # a judging word hidden in a noun ("love story") would give a plot description a sentiment
    judging = set(LEXICON) | set(MODIFIERS) | set(lexicon.NEGATORS)
    descriptive = [
        *reviews._ASPECTS_SINGULAR,
        *reviews._ASPECTS_PLURAL,
        *reviews._FILM_NOUNS,
        *reviews._GENRES,
        *reviews._PEOPLE,
        *reviews._PLACES,
        *reviews._COMPANY,
        *reviews._WHEN,
        *lexicon._NEUTRAL_ADJECTIVES,
        *reviews._OPENERS,
        *reviews._FILM_SUBJECTS,
    ]
    words = {w for phrase in descriptive for w in reviews._w(phrase).lower().replace(",", " ").split()}
    assert not words & judging


def test_exclamation_amplifies_and_graded_words_are_ordered():
    assert sentiment_intensity("The film was great!") > sentiment_intensity("The film was great.")
    assert sentiment_intensity("The film was awful!") < sentiment_intensity("The film was awful.")
    ladder = ["decent", "good", "great", "breathtaking"]
    scores = [sentiment_intensity(f"The score was {w}.") for w in ladder]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)


def test_negation_flips_and_softens():
    assert -1 < sentiment_intensity("The plot was not good.") < 0
    assert 0 < sentiment_intensity("The plot was not bad.") < sentiment_intensity("The plot was good.")
    assert sentiment_intensity("I would not recommend it.") < 0 < sentiment_intensity("I would recommend it.")


def test_intensity_is_bounded_and_spans_a_graded_range_on_the_corpus():
    scores = [sentiment_intensity(t) for t in generate_reviews(3000, seed=5)]
    assert all(-3 < s < 3 for s in scores)
    assert min(scores) < -2.5 and max(scores) > 2.5
    assert len({round(s, 3) for s in scores}) > 100


# --- the generator -----------------------------------------------------------------


def test_generator_is_deterministic_under_a_seed_and_varied():
    assert generate_reviews(200, seed=3) == generate_reviews(200, seed=3)
    assert generate_reviews(200, seed=3) != generate_reviews(200, seed=4)
    texts = generate_reviews(3000, seed=0)
    assert len(set(texts)) > 2500
    kinds = {sentiment_kind(t) for t in texts}
    assert kinds == {"positive", "negative", "mixed", "neutral"}
    assert 300 <= len(reviews.vocabulary()) <= 800


def test_generated_reviews_are_well_formed_and_malformed_text_is_not():
    assert all(is_well_formed(t) for t in generate_reviews(2000, seed=9))
    for bad in [
        "The acting was",
        "The acting was superb. The plot",
        "the plot was good.",
        "The zorblax was good.",
    ]:
        assert not is_well_formed(bad)


def test_prompt_openings_are_continued_both_ways():
    openings = reviews.two_sided_openings(generate_reviews(20_000, seed=1), 200)
    assert len(openings) == 200 and "I fell" not in openings
    assert all(" a" not in o[-2:] and not o.endswith((" an", ",")) for o in openings)


def test_review_openings_end_at_a_word_boundary_before_the_judgement():
    openings = review_openings(
        ["Honestly, the acting was absolutely superb!", "This is a brilliant film.", "I saw it."]
    )
    assert openings == ["Honestly, the acting was", "This is"]


# --- a reduced build, end to end ---------------------------------------------------


@pytest.fixture(scope="module")
def quick_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    metrics = world.build_world(out, quick=True, seed=0, log=lambda _message: None)
    return out, metrics


@pytest.mark.slow
def test_quick_build_policy_loss_falls(quick_world):
    _, metrics = quick_world
    policy = metrics["policy"]
    assert policy["val_loss"] < policy["val_loss_initial"] - 2.0
    assert policy["train_loss_last"] < policy["train_loss_first"]


@pytest.mark.slow
def test_quick_build_reward_model_beats_chance_clearly(quick_world):
    _, metrics = quick_world
    assert metrics["reward"]["heldout"]["spearman"] > 0.5
    assert metrics["reward"]["heldout"]["sign_accuracy"] > 0.7


@pytest.mark.slow
def test_quick_build_loads_with_auto_classes(quick_world):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    out, metrics = quick_world
    policy = AutoModelForCausalLM.from_pretrained(out / "policy", use_safetensors=True)
    reward = AutoModelForSequenceClassification.from_pretrained(out / "reward", use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(out / "reward")
    assert reward.config.num_labels == 1 and reward.config.pad_token_id == tokenizer.pad_token_id
    assert policy.config.eos_token_id == tokenizer.eos_token_id
    assert json.loads((out / "policy" / "tokenizer_config.json").read_text())["tokenizer_class"] == (
        "PreTrainedTokenizerFast"
    )
    for folder in ("policy", "reward"):
        assert (out / folder / "model.safetensors").exists() and (out / folder / "README.md").exists()
    saved = json.loads((out / "world.json").read_text())
    assert saved["seed"] == 0 and saved["quick"] is True
    assert saved["reward"]["heldout"] == metrics["reward"]["heldout"]
    rows = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "eval"}


def test_build_world_command_is_registered():
    from infalign_core.cli import build_parser

    args = build_parser().parse_args(["build-world", "--quick", "--out", "x", "--seed", "3"])
    assert args.quick and args.out == "x" and args.seed == 3 and callable(args.func)


# --- the shipped world -------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    assert world.POLICY_DIR.is_dir(), "assets/world is missing: run python -m infalign_core build-world"
    return {
        "tokenizer": AutoTokenizer.from_pretrained(world.POLICY_DIR),
        "policy": AutoModelForCausalLM.from_pretrained(world.POLICY_DIR, use_safetensors=True).eval(),
        "reward": AutoModelForSequenceClassification.from_pretrained(
            world.REWARD_DIR, use_safetensors=True
        ).eval(),
    }


def test_shipped_tokenizer_round_trips_and_prompts_are_token_prefixes(shipped):
    tokenizer = shipped["tokenizer"]
    for text in generate_reviews(300, seed=77):
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.bos_token_id and tokenizer.eos_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
        for opening in review_openings([text]):
            assert ids[: len(tokenizer(opening)["input_ids"])] == tokenizer(opening)["input_ids"]


def test_shipped_reward_model_orders_enthusiastic_over_lukewarm_over_negative(shipped):
    scores = world.score_texts(shipped["reward"], shipped["tokenizer"], list(ORDERING_PROBES))
    assert scores[0] > scores[1] > scores[2]
    assert scores[1] > 0 > scores[2]


def test_shipped_policy_continues_prompts_into_well_formed_reviews(shipped):
    prompts = [json.loads(line)["prompt"] for line in world.PROMPTS_PATH.read_text().splitlines()][:16]
    repeated = [p for p in prompts for _ in range(4)]
    texts, finished = world._sample_continuations(
        shipped["policy"], shipped["tokenizer"], repeated, 40, seed=0
    )
    assert all(t.startswith(" ") for t in texts)
    full = [p + t for p, t in zip(repeated, texts)]
    assert sum(f and is_well_formed(t) for t, f in zip(full, finished)) / len(full) > 0.85
    # best-of-N needs variety: the same prompt yields both praise and criticism
    assert {"positive", "negative"} <= {sentiment_kind(t) for t in full}


def test_shipped_prompts_are_deduplicated_openings_with_a_split():
    rows = [json.loads(line) for line in world.PROMPTS_PATH.read_text().splitlines()]
    prompts = [r["prompt"] for r in rows]
    assert len(prompts) >= 300 and len(set(prompts)) == len(prompts)
    assert all(p == p.strip() and p[0].isupper() for p in prompts)
    splits = [r["split"] for r in rows]
    assert 0.1 < splits.count("eval") / len(splits) < 0.4 and set(splits) == {"train", "eval"}


def test_shipped_world_metrics_meet_the_bar():
    metrics = json.loads((world.WORLD_DIR / "world.json").read_text())
    assert metrics["quick"] is False
    assert metrics["reward"]["heldout"]["sign_accuracy"] > 0.97
    assert metrics["reward"]["heldout"]["spearman"] > 0.95
    assert metrics["policy"]["prompted"]["well_formed"] > 0.9
    total = sum(p.stat().st_size for p in world.WORLD_DIR.rglob("*") if p.is_file())
    assert total < 20e6
