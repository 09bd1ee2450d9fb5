"""The bundled default world: a review generator, its sentiment oracle, and the tiny models built on it.

The world is small enough to rebuild on a laptop CPU in minutes and rich enough that best-of-N has
something real to choose between:

* a generator of short movie-review sentences (positive, negative, mixed "X but Y", neutral, with
  intensifiers, downtoners, negation and exclamations) over a vocabulary of a few hundred words;
* ``sentiment_intensity(text)``, the generator's ground truth, computed from the text itself, so it
  also scores any model sample (the "oracle" reward);
* a byte-level BPE tokenizer, a tiny GPT-2 reference policy and a tiny GPT-2 reward model that
  regresses the intensity, written by ``build_world`` in the ``save_pretrained`` layout.

Text conventions (the policy, the reward model and every caller rely on them):

* The tokenizer prepends ``<|bos|>`` itself (a template post-processor) and never appends EOS.
  The policy was trained on ``<|bos|> sentence <|eos|>``; the reward model on ``<|bos|> sentence``
  (pooled at the last token), i.e. exactly what ``tokenizer(text)`` returns.
* Prompts are review openings that end at a word boundary WITHOUT a trailing space
  ("The acting was"). The byte-level pre-tokenizer attaches a space to the word after it
  ("Ġsuperb"), so the tokens of a prompt are a prefix of the tokens of the full sentence, and the
  policy's continuation starts with a space: ``prompt + response`` is the review as written.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

WORLD_DIR = Path(__file__).resolve().parent.parent / "assets" / "world"
POLICY_DIR = WORLD_DIR / "policy"
REWARD_DIR = WORLD_DIR / "reward"
PROMPTS_PATH = WORLD_DIR / "prompts.jsonl"

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"

# --- lexicon ------------------------------------------------------------------
# Base intensities of sentiment-bearing words. Genre and plot words (horror, villain, killer, war,
# murder, dark, bloody, ...) are deliberately absent: in a review they describe, they do not judge.
# A few horror-fan words (scary, chilling, terrifying) are mild praise here, where VADER calls them
# negative: two reward models, two different optima.
_POSITIVE_TIERS = {
    0.5: "okay fine watchable passable adequate serviceable",
    0.7: "decent competent reasonable creepy",
    0.8: "scary tense",
    1.0: "good nice pleasant solid likable enjoyable fun charming sweet entertaining engaging funny "
    "clever smart warm lovely chilling",
    1.3: "strong impressive touching moving gripping beautiful delightful thrilling witty compelling "
    "powerful heartfelt inventive memorable refreshing satisfying exciting hilarious haunting terrifying",
    1.6: "great excellent wonderful fantastic terrific superb brilliant outstanding amazing stunning "
    "gorgeous masterful remarkable riveting exceptional",
    2.0: "breathtaking unforgettable phenomenal perfect flawless extraordinary magnificent sublime "
    "spectacular astonishing marvelous",
}
_NEGATIVE_TIERS = {
    -0.5: "uneven slow thin dated",
    -0.7: "overlong predictable forgettable bland flat clumsy dull",
    -1.0: "bad boring weak messy tedious shallow lifeless annoying confusing silly cheap lazy stale "
    "tiresome sloppy cliched wooden muddled pointless disappointing",
    -1.3: "poor dumb painful irritating frustrating incoherent ridiculous laughable insulting hollow grating",
    -1.6: "awful terrible dreadful horrible atrocious pathetic miserable abysmal embarrassing unbearable",
    -2.0: "unwatchable disastrous horrendous insufferable",
}
# Neutral descriptive adjectives: what a review says about a film without judging it.
_NEUTRAL_ADJECTIVES = (
    "long short dark quiet loud simple familiar strange unusual serious modern old bloody violent grim "
    "sad tragic gory gritty bleak moody quirky odd nostalgic romantic political slow-paced"
).split()
_NEUTRAL_ADJECTIVES.remove("slow-paced")  # hyphenated words split oddly in the oracle; keep words plain

# Verbs a reviewer uses about a film, with their base forms for "did not like".
_VERBS = {
    "adored": ("adore", 2.0),
    "loved": ("love", 1.6),
    "enjoyed": ("enjoy", 1.0),
    "liked": ("like", 0.8),
    "admired": ("admire", 1.0),
    "appreciated": ("appreciate", 0.8),
    "disliked": ("dislike", -0.8),
    "hated": ("hate", -1.6),
    "despised": ("despise", -2.0),
    "loathed": ("loathe", -2.0),
}
_OTHER_SENTIMENT_WORDS = {
    "recommend": 1.0,
    "worth": 1.0,
    "masterpiece": 2.0,
    "gem": 1.6,
    "treat": 1.3,
    "joy": 1.3,
    "best": 1.6,
    "waste": -1.3,
    "mess": -1.3,
    "asleep": -1.0,
    "skip": -1.0,
    "worst": -2.0,
    "failure": -1.6,
    "letdown": -1.3,
}

LEXICON: dict[str, float] = {}
for _tiers in (_POSITIVE_TIERS, _NEGATIVE_TIERS):
    for _value, _words in _tiers.items():
        LEXICON.update(dict.fromkeys(_words.split(), _value))
for _past, (_base, _value) in _VERBS.items():
    LEXICON[_past] = _value
    LEXICON[_base] = _value
LEXICON.update(_OTHER_SENTIMENT_WORDS)

# Multipliers on the next sentiment word; values below 1 are downtoners ("a bit", "a little").
MODIFIERS: dict[str, float] = {
    "very": 1.5,
    "really": 1.4,
    "truly": 1.6,
    "absolutely": 1.8,
    "incredibly": 1.8,
    "extremely": 1.8,
    "so": 1.4,
    "remarkably": 1.5,
    "genuinely": 1.4,
    "utterly": 1.8,
    "deeply": 1.5,
    "highly": 1.5,
    "strongly": 1.5,
    "definitely": 1.3,
    "utter": 1.6,
    "absolute": 1.6,
    "complete": 1.5,
    "total": 1.5,
    "real": 1.3,
    "thoroughly": 1.6,
    "totally": 1.6,
    "completely": 1.7,
    "simply": 1.3,
    "downright": 1.6,
    "quite": 1.2,
    "pretty": 0.9,
    "rather": 0.8,
    "mostly": 0.8,
    "fairly": 0.7,
    "reasonably": 0.7,
    "moderately": 0.6,
    "bit": 0.6,
    "little": 0.6,
    "somewhat": 0.5,
    "slightly": 0.5,
    "mildly": 0.5,
}
NEGATORS = frozenset({"not", "never"})
# A negated word flips and is capped: "not great" is mildly negative, not the opposite of great.
NEGATION_SCALE = 0.7
# In "X but Y" the clause after "but" carries the sentence; earlier clauses count this much.
BUT_EARLIER_WEIGHT = 0.5
EXCLAMATION_BOOST = 0.15  # per "!", up to three
INTENSITY_SCALE = 3.0  # soft bound: intensity = 3 * tanh(raw / 3), so labels lie in (-3, 3)

# adverbs that modify an adjective; the adjectival ones ("an utter mess") appear in stock verdicts only
_INTENSIFIERS = [
    w for w, m in MODIFIERS.items() if m > 1.0 and w not in {"utter", "absolute", "complete", "total", "real"}
]
_DOWNTONERS = ["somewhat", "slightly", "fairly", "rather", "mildly", "a bit", "a little", "pretty"]
_ATTRIBUTIVE_DOWNTONERS = _DOWNTONERS[:5]  # "a rather dull film", never "an a bit dull film"
_STRONG_INTENSIFIERS = ["absolutely", "utterly", "truly", "incredibly", "extremely", "completely"]
_VERB_INTENSIFIERS = ["really", "absolutely", "truly", "genuinely", "thoroughly", "totally", "deeply"]

_TOKEN_RE = re.compile(r"[a-z']+|[,.!?;]")


def _clause_scores(text: str) -> tuple[list[float], int]:
    """Raw (unsquashed) score of each clause split at "but", and the number of "!"."""
    clauses = [0.0]
    multiplier, negated = 1.0, False
    for token in _TOKEN_RE.findall(text.lower()):
        if token == "but":
            clauses.append(0.0)
            multiplier, negated = 1.0, False
        elif token in MODIFIERS:
            multiplier *= MODIFIERS[token]
        elif token in NEGATORS:
            negated = True
        elif token in LEXICON:
            value = LEXICON[token] * multiplier
            if negated:
                value = -NEGATION_SCALE * math.copysign(min(abs(value), 1.0), value)
            clauses[-1] += value
            multiplier, negated = 1.0, False
        elif token in {",", ".", "!", "?", ";", "and"}:
            # modifiers and negation do not reach across a clause or list boundary
            multiplier, negated = 1.0, False
    return clauses, text.count("!")


def sentiment_intensity(text: str) -> float:
    """The world's ground-truth graded sentiment of any text, in (-3, 3); the oracle reward.

    Each sentiment word's intensity is multiplied by the modifiers before it ("very", "a bit"),
    flipped and capped by a negation ("not good"), and summed per clause; in "X but Y" the clause
    after "but" counts fully and earlier ones half; each "!" (up to three) adds 15 %; the total is
    softly bounded by 3·tanh(raw/3), which keeps the order. Unknown words count zero.
    """
    clauses, exclamations = _clause_scores(text)
    weights = [BUT_EARLIER_WEIGHT] * (len(clauses) - 1) + [1.0]
    raw = sum(w * c for w, c in zip(weights, clauses))
    raw *= 1.0 + EXCLAMATION_BOOST * min(exclamations, 3)
    return INTENSITY_SCALE * math.tanh(raw / INTENSITY_SCALE)


def sentiment_kind(text: str, *, threshold: float = 0.25) -> str:
    """Classify a text as "mixed" (clauses of opposite sign), "positive", "negative" or "neutral"."""
    clauses, _ = _clause_scores(text)
    if any(c > 0 for c in clauses) and any(c < 0 for c in clauses):
        return "mixed"
    score = sentiment_intensity(text)
    if score > threshold:
        return "positive"
    if score < -threshold:
        return "negative"
    return "neutral"


# --- the review generator -------------------------------------------------------
_ASPECTS_SINGULAR = (
    "plot story script screenplay dialogue acting casting direction pacing editing score soundtrack "
    "music ending opening finale premise twist villain hero heroine lead cast cinematography lighting "
    "humor tone atmosphere setting animation romance action climax monster killer ghost horror violence "
    "gore mystery camera|work sound|design third|act first|half second|half war|story crime|story "
    "murder|mystery final|battle"
).split()
_ASPECTS_PLURAL = (
    "performances characters visuals effects jokes songs costumes sets actors scares twists monsters "
    "zombies vampires ghosts villains kills special|effects action|scenes fight|scenes horror|scenes "
    "battle|scenes chase|scenes death|scenes war|scenes supporting|actors young|actors"
).split()
_FILM_NOUNS = (
    "film movie thriller comedy drama western musical sequel remake documentary mystery romance "
    "slasher horror|film war|film crime|drama ghost|story monster|movie zombie|movie action|movie "
    "disaster|movie murder|mystery spy|thriller horror|movie war|movie space|adventure "
    "family|film period|piece superhero|movie"
).split()
_GENRES = "horror comedy drama thriller western romance action mystery war crime superhero".split()
_OPENERS = [
    "",
    "Honestly, ",
    "Overall, ",
    "Frankly, ",
    "To be honest, ",
    "In my opinion, ",
    "For me, ",
    "I thought ",
    "I felt ",
    "I think ",
    "In the end, ",
    "All in all, ",
    "Surprisingly, ",
    "As expected, ",
    "To me, ",
]
_FILM_SUBJECTS = ["the film", "this film", "the movie", "this movie", "it"]
_PEOPLE = "detective soldier teacher family girl boy doctor singer pilot farmer writer nurse".split()
_PLACES = "small|town big|city village island ship prison school hotel forest desert".split()
_COMPANY = "friends family brother sister parents kids wife husband".split()
_WHEN = "last|night last|week on|Sunday on|Friday at|home in|the|cinema on|a|plane".split()


def _w(phrase: str) -> str:
    """Turn the compact "camera|work" spelling into words."""
    return phrase.replace("|", " ")


def _article(next_word: str) -> str:
    """'a' or 'an' before a word (the vocabulary has no silent-h or 'you'-sounding u words)."""
    return "an" if next_word[0] in "aeiou" else "a"


def _adjective(rng: random.Random, polarity: str, strength: float | None = None) -> str:
    """A sentiment adjective of the given polarity ("pos"/"neg"/"neutral"), near a strength if given."""
    if polarity == "neutral":
        return rng.choice(_NEUTRAL_ADJECTIVES)
    tiers = _POSITIVE_TIERS if polarity == "pos" else _NEGATIVE_TIERS
    values = sorted(tiers, key=abs)
    if strength is None:
        value = rng.choice(values)
    else:
        value = min(values, key=lambda v: abs(abs(v) - strength) + rng.random() * 0.5)
    return rng.choice(tiers[value].split())


def _adjective_phrase(rng: random.Random, polarity: str) -> str:
    """A predicate: an adjective with an optional modifier, a pair joined by "and", or a negation."""
    if polarity == "neutral":
        return _adjective(rng, "neutral")
    roll = rng.random()
    if roll < 0.08:
        # negate a mild or moderate word of the other polarity: "not good" for a negative phrase
        other = "neg" if polarity == "pos" else "pos"
        return f"{rng.choice(['not', 'not', 'never'])} {_adjective(rng, other, strength=1.0)}"
    if roll < 0.26:
        first = _modified(rng, polarity)
        second = _adjective(rng, polarity)
        return f"{first} and {second}" if first.split()[-1] != second else first
    return _modified(rng, polarity)


def _modified(rng: random.Random, polarity: str, *, attributive: bool = False) -> str:
    """An adjective, with an intensifier (45 %) or a downtoner (15 %) before it."""
    roll = rng.random()
    if roll < 0.45:
        return f"{rng.choice(_INTENSIFIERS)} {_adjective(rng, polarity)}"
    if roll < 0.60:
        downtoners = _ATTRIBUTIVE_DOWNTONERS if attributive else _DOWNTONERS
        return f"{rng.choice(downtoners)} {_adjective(rng, polarity, strength=0.8)}"
    return _adjective(rng, polarity)


def _subject(rng: random.Random) -> tuple[str, bool]:
    """A noun phrase to judge, and whether it is plural."""
    if rng.random() < 0.25:
        return rng.choice(_FILM_SUBJECTS), False
    if rng.random() < 0.3:
        return "the " + _w(rng.choice(_ASPECTS_PLURAL)), True
    return "the " + _w(rng.choice(_ASPECTS_SINGULAR)), False


def _copula(rng: random.Random, plural: bool, *, past: bool = False) -> str:
    """A linking verb that agrees with its subject (plain "was" after "I thought"/"I felt")."""
    roll = rng.random()
    if roll < 0.6 or past:
        return "were" if plural else "was"
    if roll < 0.8:
        return "are" if plural else "is"
    return rng.choice(["felt", "seemed"])


def _clause(
    rng: random.Random,
    polarity: str,
    subject: str | None = None,
    *,
    allow_verb: bool = True,
    past: bool = False,
) -> str:
    """One judgement in lower case: "the acting was very good"."""
    if subject is None:
        subject, plural = _subject(rng)
    else:
        plural = False
    if polarity != "neutral" and allow_verb and rng.random() < 0.15:
        verb = rng.choice([v for v, (_, s) in _VERBS.items() if (s > 0) == (polarity == "pos")])
        modifier = rng.choice(_VERB_INTENSIFIERS) + " " if rng.random() < 0.3 else ""
        return f"i {modifier}{verb} {subject}"
    copula = _copula(rng, plural, past=past)
    phrase = _adjective_phrase(rng, polarity)
    if phrase.split()[0] in NEGATORS and copula in {"felt", "seemed"}:
        copula = "were" if plural else "was"  # "seemed never good" is not English
    return f"{subject} {copula} {phrase}"


def _capitalize(text: str) -> str:
    """Upper-case the first letter and the pronoun "I"."""
    text = re.sub(r"\bi\b", "I", text)
    return text[0].upper() + text[1:]


def _ending(rng: random.Random, p_exclaim: float = 0.2) -> str:
    """A full stop, or an exclamation mark (rarely two)."""
    if rng.random() < p_exclaim:
        return "!!" if rng.random() < 0.15 else "!"
    return "."


def _polarity(rng: random.Random) -> str:
    """Positive or negative, evenly."""
    return "pos" if rng.random() < 0.5 else "neg"


def _judgement(rng: random.Random) -> str:
    """ "Honestly, the acting was superb." """
    opener = rng.choice(_OPENERS)
    reported = opener.startswith("I ")  # "I thought the plot was ...", never "I thought I loved ..."
    clause = _clause(rng, _polarity(rng), allow_verb=not reported, past=opener in {"I thought ", "I felt "})
    return _capitalize(opener + clause) + _ending(rng)


def _mixed(rng: random.Random) -> str:
    """ "The plot was thin, but the acting was superb." (the second clause dominates)"""
    first = _polarity(rng)
    second = ("neg" if first == "pos" else "pos") if rng.random() < 0.85 else first
    comma = "," if rng.random() < 0.5 else ""
    opener = rng.choice(_OPENERS[:8])
    reported = opener.startswith("I ")
    past = opener in {"I thought ", "I felt "}
    left = _clause(rng, first, allow_verb=not reported, past=past)
    right = _clause(rng, second, subject="it" if rng.random() < 0.2 else None, past=past)
    return _capitalize(f"{opener}{left}{comma} but {right}") + _ending(rng, 0.15)


def _compound(rng: random.Random) -> str:
    """ "The score was moving and the cast was excellent." """
    first = _polarity(rng)
    second = first if rng.random() < 0.75 else _polarity(rng)
    return _capitalize(f"{_clause(rng, first)} and {_clause(rng, second)}") + _ending(rng)


def _personal(rng: random.Random) -> str:
    """ "I absolutely loved the soundtrack." / "I found the ending a bit dull." """
    polarity = _polarity(rng)
    roll = rng.random()
    if roll < 0.45:
        verb = rng.choice([v for v, (_, s) in _VERBS.items() if (s > 0) == (polarity == "pos")])
        modifier = rng.choice(_VERB_INTENSIFIERS) + " " if rng.random() < 0.4 else ""
        obj = rng.choice(
            [
                "the " + _w(rng.choice(_ASPECTS_SINGULAR + _ASPECTS_PLURAL)),
                *_FILM_SUBJECTS[1:],
                "every minute of it",
            ]
        )
        if obj == "every minute of it" and polarity == "neg":
            obj = "it"
        return _capitalize(f"i {modifier}{verb} {obj}") + _ending(rng)
    if roll < 0.6:
        other = [v for v, (_, s) in _VERBS.items() if (s > 0) != (polarity == "pos") and abs(s) <= 1.0]
        base = _VERBS[rng.choice(other)][0]
        obj = rng.choice(["it", "the " + _w(rng.choice(_ASPECTS_SINGULAR)), "this movie"])
        return _capitalize(f"i did not {base} {obj}") + _ending(rng, 0.05)
    if roll < 0.85:
        obj = rng.choice(["it", "the film", "the " + _w(rng.choice(_ASPECTS_SINGULAR))])
        return _capitalize(f"i found {obj} {_adjective_phrase(rng, polarity)}") + _ending(rng)
    genre = rng.choice(_GENRES)
    return _capitalize(
        f"as {_article(genre)} {genre} fan, i found it {_adjective_phrase(rng, polarity)}"
    ) + _ending(rng)


def _noun_phrase(rng: random.Random) -> str:
    """ "This is an absolutely brilliant horror film." / "What a dreadful sequel!" """
    polarity = _polarity(rng)
    noun = _w(rng.choice(_FILM_NOUNS))
    adjective = (
        _modified(rng, polarity, attributive=True) if rng.random() < 0.7 else _adjective(rng, polarity)
    )
    roll = rng.random()
    if roll < 0.55:
        subject = rng.choice(["it", "this", "this film", "this movie", "it"])
        verb = rng.choice(["is", "was"])
        return _capitalize(f"{subject} {verb} {_article(adjective)} {adjective} {noun}") + _ending(rng)
    if roll < 0.8:
        return _capitalize(f"what {_article(adjective)} {adjective} {noun}") + _ending(rng, 0.9)
    if roll < 0.9:
        return _capitalize(f"{rng.choice(_STRONG_INTENSIFIERS)} {_adjective(rng, polarity)}") + "!"
    return _capitalize(f"{_adjective(rng, polarity)} from start to finish") + _ending(rng, 0.6)


def _verdict(rng: random.Random) -> str:
    """Stock verdicts: "I would highly recommend it." / "It was a waste of time." """
    options = [
        lambda: f"i would {rng.choice(['', 'highly ', 'strongly ', 'really '])}recommend it",
        lambda: "i would not recommend it",
        lambda: (
            f"it was {rng.choice(['', 'a bit of ', 'a complete ', 'an absolute '])}{'a ' if rng.random() < 0.5 else ''}waste of time".replace(
                "of a waste", "of waste"
            )
        ),
        lambda: f"it is {rng.choice(['', 'really ', 'absolutely ', 'definitely '])}worth watching",
        lambda: "it was worth every minute",
        lambda: f"i fell asleep {rng.choice(['halfway through', 'twice', 'after an hour'])}",
        lambda: f"{rng.choice(['', 'just '])}skip this one",
        lambda: (
            f"it is {rng.choice(['a', 'a real', 'an absolute', 'a little'])} {rng.choice(['gem', 'masterpiece', 'treat', 'joy'])}"
        ),
        lambda: (
            f"it was {rng.choice(['a', 'a total', 'an utter', 'a bit of a'])} {rng.choice(['mess', 'failure', 'letdown'])}"
        ),
        lambda: f"the best {rng.choice(['film', 'movie', 'thriller', 'comedy'])} i have seen this year",
        lambda: f"the worst {rng.choice(['film', 'movie', 'sequel', 'remake'])} i have seen in years",
    ]
    text = rng.choice(options)()
    text = re.sub(r"\s+", " ", text).replace("a a waste", "a waste").replace("an a waste", "a waste")
    return _capitalize(text) + _ending(rng)


def _neutral(rng: random.Random) -> str:
    """Sentences without a judgement: "The film is about a detective in a small town." """
    roll = rng.random()
    if roll < 0.25:
        person = rng.choice(_PEOPLE)
        return (
            _capitalize(f"the film is about {_article(person)} {person} in a {_w(rng.choice(_PLACES))}") + "."
        )
    if roll < 0.45:
        return _capitalize(f"i watched it with my {rng.choice(_COMPANY)} {_w(rng.choice(_WHEN))}") + "."
    if roll < 0.6:
        genre = rng.choice(_GENRES)
        adjective = _adjective(rng, "neutral")
        return _capitalize(f"it is {_article(adjective)} {adjective} {genre} film") + "."
    if roll < 0.75:
        return _capitalize(f"the story takes place in a {_w(rng.choice(_PLACES))}") + "."
    subject, plural = _subject(rng)
    return _capitalize(f"{subject} {_copula(rng, plural)} {_adjective(rng, 'neutral')}") + "."


_FAMILIES: list[tuple[float, Callable[[random.Random], str]]] = [
    (0.38, _judgement),
    (0.18, _mixed),
    (0.08, _compound),
    (0.14, _personal),
    (0.10, _noun_phrase),
    (0.05, _verdict),
    (0.07, _neutral),
]


def generate_reviews(n: int, seed: int = 0) -> list[str]:
    """n review sentences drawn from the world's generator with a fixed seed (duplicates allowed)."""
    rng = random.Random(seed)
    weights = [w for w, _ in _FAMILIES]
    families = rng.choices([f for _, f in _FAMILIES], weights=weights, k=n)
    return [family(rng) for family in families]


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    """Every lower-case word the generator can produce (the "known words" of a well-formed sample)."""
    words: set[str] = set()
    for text in generate_reviews(60_000, seed=12345):
        words.update(_TOKEN_RE.findall(text.lower()))
    return frozenset(w for w in words if w[0].isalpha())


def is_well_formed(text: str) -> bool:
    """A sample reads as one review sentence: known words only, one final "." or "!" run, nothing after."""
    text = text.strip()
    match = re.fullmatch(r"([^.!?]+?)([.]|!{1,2})", text)
    if not match or not text[0].isupper():
        return False
    tokens = _TOKEN_RE.findall(match.group(1).lower())
    if not tokens or "".join(tokens).replace(",", "") == "":
        return False
    known = vocabulary()
    # rebuild the text from known tokens to catch stray characters the token pattern skipped
    words = [t for t in tokens if t != ","]
    if any(w not in known for w in words):
        return False
    return re.fullmatch(r"[A-Za-z' ,]+", match.group(1)) is not None


def review_openings(texts: Sequence[str], *, min_words: int = 2, max_words: int = 6) -> list[str]:
    """The opening of each judging review: its words before the first sentiment word or modifier.

    Openings end at a word boundary without a trailing space ("The acting was"); neutral sentences
    and openings outside [min_words, max_words] words are skipped. Order is kept, duplicates removed.
    """
    seen: dict[str, None] = {}
    for text in texts:
        words = text.split(" ")
        for i, word in enumerate(words):
            bare = word.strip(",.!").lower()
            if bare in LEXICON or bare in MODIFIERS or bare in NEGATORS or bare in {"a", "an"}:
                if (
                    bare in {"a", "an"}
                    and i + 1 < len(words)
                    and words[i + 1].strip(",.!").lower() not in (LEXICON.keys() | MODIFIERS.keys())
                ):
                    continue  # "a" before a plain noun is not where the judgement starts
                opening = " ".join(words[:i])
                if min_words <= i <= max_words and not opening.endswith(","):
                    seen.setdefault(opening, None)
                break
    return list(seen)


# --- building the world ----------------------------------------------------------


@dataclass
class BuildConfig:
    """Sizes and step counts of one build; ``quick`` shrinks everything to seconds for tests."""

    corpus_size: int = 120_000  # policy training sentences (duplicates kept: they are the distribution)
    val_size: int = 3_000  # fresh sentences for the policy's validation loss
    reward_size: int = 60_000  # sentences drawn for the reward model (deduplicated, then split)
    reward_heldout_fraction: float = 0.1
    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 64
    policy_steps: int = 2_400  # validation loss is within ~0.01 of its plateau by then
    policy_batch: int = 64
    policy_lr: float = 2e-3
    reward_steps: int = 1_500
    reward_batch: int = 64
    reward_lr: float = 2e-3
    n_prompts: int = 600
    eval_prompt_fraction: float = 0.2
    n_eval_samples: int = 600  # policy samples drawn to measure well-formedness and sentiment mix
    max_new_tokens: int = 40

    @classmethod
    def quick(cls) -> BuildConfig:
        """A reduced build: small corpus, few steps (seconds on a CPU)."""
        return cls(
            corpus_size=3_000,
            val_size=300,
            reward_size=3_000,
            policy_steps=100,
            reward_steps=150,
            n_prompts=60,
            n_eval_samples=60,
        )


def _train_tokenizer(texts: Sequence[str], n_positions: int):
    """A byte-level BPE trained on the corpus; it stops when every frequent word is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=8192,  # an upper bound only: merges run out first on a corpus this small
        min_frequency=2,
        special_tokens=[BOS_TOKEN, EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B", special_tokens=[(BOS_TOKEN, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=n_positions,
        clean_up_tokenization_spaces=False,
    )


def _save_tokenizer(tokenizer, folder: Path) -> None:
    """Save, then name the class explicitly so transformers 4.5x (which lacks "TokenizersBackend") loads it."""
    tokenizer.save_pretrained(folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("backend", None)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _gpt2_config(cfg: BuildConfig, tokenizer, **extra):
    """The tiny GPT-2 shape shared by policy and reward model (no dropout: the data never repeats much)."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def _pad(rows: Sequence[Sequence[int]], pad_id: int):
    """Right-pad token rows into (input_ids, attention_mask) tensors."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def _lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over 5 % of the steps, then cosine decay to a tenth of the peak."""
    warmup = max(1, total // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def _policy_loss(model, rows, pad_id: int) -> tuple[float, int]:
    """Summed next-token loss (nats) and token count of rows, without gradients."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), 256):
            ids, mask = _pad(rows[start : start + 256], pad_id)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
            )
            total += float(loss)
            count += int((targets != -100).sum())
    return total, count


def _train_policy(cfg: BuildConfig, tokenizer, train_texts, val_texts, seed: int, log) -> tuple[object, dict]:
    """Train the reference policy on ``<|bos|> sentence <|eos|>``; return it and its training metrics."""
    import torch
    from transformers import GPT2LMHeadModel

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(_gpt2_config(cfg, tokenizer))
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    train_rows = [[*r, eos] for r in tokenizer(list(train_texts))["input_ids"]]
    val_rows = [[*r, eos] for r in tokenizer(list(val_texts))["input_ids"]]
    total, count = _policy_loss(model, val_rows, pad)
    initial_val = total / count
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.policy_lr, betas=(0.9, 0.98), weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    started, losses = time.perf_counter(), []
    for step in range(cfg.policy_steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, cfg.policy_steps, cfg.policy_lr)
        batch = torch.randint(len(train_rows), (cfg.policy_batch,), generator=generator).tolist()
        ids, mask = _pad([train_rows[i] for i in batch], pad)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % max(1, cfg.policy_steps // 10) == 0:
            log(
                f"policy step {step + 1}/{cfg.policy_steps}: train loss {sum(losses[-50:]) / len(losses[-50:]):.3f}"
            )
    model.eval()
    total, count = _policy_loss(model, val_rows, pad)
    head = losses[: max(1, len(losses) // 20)]
    tail = losses[-max(1, len(losses) // 20) :]
    return model, {
        "train_seconds": round(time.perf_counter() - started, 1),
        "steps": cfg.policy_steps,
        "batch_size": cfg.policy_batch,
        "train_loss_first": round(sum(head) / len(head), 4),
        "train_loss_last": round(sum(tail) / len(tail), 4),
        "val_loss_initial": round(initial_val, 4),
        "val_loss": round(total / count, 4),
        "val_tokens": count,
    }


def _sample_continuations(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, seed: int):
    """One sampled continuation per prompt (temperature 1, no top-k/top-p); returns (texts, finished)."""
    import torch

    torch.manual_seed(seed)
    encoded = tokenizer(list(prompts))["input_ids"]
    by_length: dict[int, list[int]] = {}
    for i, row in enumerate(encoded):
        by_length.setdefault(len(row), []).append(i)
    texts, finished = [""] * len(prompts), [False] * len(prompts)
    eos = tokenizer.eos_token_id
    with torch.no_grad():
        for indices in by_length.values():  # equal lengths need no padding
            for start in range(0, len(indices), 256):
                chunk = indices[start : start + 256]
                ids = torch.tensor([encoded[i] for i in chunk])
                out = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=True,
                    top_k=0,
                    top_p=1.0,
                    temperature=1.0,
                    max_new_tokens=max_new_tokens,
                    eos_token_id=eos,
                    pad_token_id=tokenizer.pad_token_id,
                )[:, ids.shape[1] :].tolist()
                for i, row in zip(chunk, out):
                    done = eos in row
                    row = row[: row.index(eos)] if done else row
                    texts[i] = tokenizer.decode(row, skip_special_tokens=True)
                    finished[i] = done
    return texts, finished


def _sample_report(prompts: Sequence[str], responses: Sequence[str], finished: Sequence[bool]) -> dict:
    """Fraction of well-formed samples and their sentiment mix by the oracle."""
    full = [p + r for p, r in zip(prompts, responses)]
    ok = [f and is_well_formed(t) for t, f in zip(full, finished)]
    kinds = [sentiment_kind(t) for t in full]
    n = len(full)
    return {
        "n": n,
        "well_formed": round(sum(ok) / n, 4),
        "finished": round(sum(finished) / n, 4),
        **{f"frac_{k}": round(kinds.count(k) / n, 4) for k in ("positive", "negative", "mixed", "neutral")},
        "distinct": round(len(set(full)) / n, 4),
    }


def _train_reward(cfg: BuildConfig, tokenizer, texts, labels, seed: int, log) -> tuple[object, dict]:
    """Regress the sentiment intensity with a tiny GPT-2 sequence classifier (MSE, pooled at the last token)."""
    import torch
    from transformers import GPT2ForSequenceClassification

    torch.manual_seed(seed)
    model = GPT2ForSequenceClassification(
        _gpt2_config(cfg, tokenizer, num_labels=1, problem_type="regression")
    )
    rows = tokenizer(list(texts))["input_ids"]
    targets = torch.tensor(labels, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.reward_lr, betas=(0.9, 0.98), weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    started, losses = time.perf_counter(), []
    for step in range(cfg.reward_steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, cfg.reward_steps, cfg.reward_lr)
        batch = torch.randint(len(rows), (cfg.reward_batch,), generator=generator)
        ids, mask = _pad([rows[i] for i in batch.tolist()], tokenizer.pad_token_id)
        predicted = model(input_ids=ids, attention_mask=mask).logits[:, 0]
        loss = torch.nn.functional.mse_loss(predicted, targets[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % max(1, cfg.reward_steps // 5) == 0:
            log(
                f"reward step {step + 1}/{cfg.reward_steps}: train mse {sum(losses[-50:]) / len(losses[-50:]):.4f}"
            )
    model.eval()
    head = losses[: max(1, len(losses) // 20)]
    tail = losses[-max(1, len(losses) // 20) :]
    return model, {
        "train_seconds": round(time.perf_counter() - started, 1),
        "steps": cfg.reward_steps,
        "batch_size": cfg.reward_batch,
        "train_mse_first": round(sum(head) / len(head), 4),
        "train_mse_last": round(sum(tail) / len(tail), 4),
    }


def score_texts(model, tokenizer, texts: Sequence[str], batch_size: int = 256):
    """The reward model's scalar score of each full text, as a float64 numpy array."""
    import numpy as np
    import torch

    scores = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            rows = tokenizer(list(texts[start : start + batch_size]))["input_ids"]
            ids, mask = _pad(rows, tokenizer.pad_token_id)
            scores.append(model(input_ids=ids, attention_mask=mask).logits[:, 0].double().numpy())
    return np.concatenate(scores) if scores else np.zeros(0)


def _agreement(scores, truth) -> dict:
    """Spearman correlation with the truth, and sign accuracy on texts whose truth is not ~0."""
    import numpy as np
    from scipy.stats import spearmanr

    scores, truth = np.asarray(scores, float), np.asarray(truth, float)
    judged = np.abs(truth) > 0.1
    rho = float(spearmanr(scores, truth).statistic) if len(truth) > 1 else float("nan")
    return {
        "n": len(truth),
        "spearman": round(rho, 4) if math.isfinite(rho) else None,  # None: too few or constant scores
        "sign_accuracy": round(float(np.mean(np.sign(scores[judged]) == np.sign(truth[judged]))), 4),
    }


def _reward_report(model, tokenizer, texts: Sequence[str]) -> dict:
    """Held-out agreement of the reward model (and of VADER, as a lesson) with the true intensity."""
    import numpy as np
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    truth = np.array([sentiment_intensity(t) for t in texts])
    mixed = np.array([sentiment_kind(t) == "mixed" for t in texts])
    scores = score_texts(model, tokenizer, texts)
    vader = SentimentIntensityAnalyzer()
    vader_scores = np.array([vader.polarity_scores(t)["compound"] for t in texts])
    judged = np.abs(truth) > 0.1
    report = {
        "heldout": _agreement(scores, truth),
        "heldout_mixed": _agreement(scores[mixed], truth[mixed]),
        "rmse": round(float(np.sqrt(np.mean((scores - truth) ** 2))), 4),
        "vader_heldout": _agreement(vader_scores, truth),
        "vader_heldout_mixed": _agreement(vader_scores[mixed], truth[mixed]),
        # VADER's lexicon lacks many review words (tedious, riveting, forgettable): it scores 0
        "vader_zero_fraction": round(float(np.mean(vader_scores[judged] == 0)), 4),
    }
    return report


def two_sided_openings(texts: Sequence[str], n: int) -> list[str]:
    """Up to n openings that the texts continue both positively and negatively, most frequent first.

    Best-of-N needs a choice: an opening like "I fell" (always "asleep") gives none.
    """
    counts: dict[str, list[int]] = {}
    for text in texts:
        openings = review_openings([text])
        if openings:
            kind = sentiment_kind(text)
            tally = counts.setdefault(openings[0], [0, 0, 0])
            tally[0] += 1
            tally[1] += kind == "positive" or (kind == "mixed" and sentiment_intensity(text) > 0)
            tally[2] += kind == "negative" or (kind == "mixed" and sentiment_intensity(text) < 0)
    two_sided = [o for o, (_, pos, neg) in counts.items() if pos and neg]
    two_sided.sort(key=lambda o: -counts[o][0])  # stable: ties keep first-seen order
    return two_sided[:n]


# Reviews that any sane reward model must order: enthusiastic > lukewarm positive > negative.
ORDERING_PROBES = (
    "Honestly, the acting was absolutely breathtaking and the score was superb!",
    "The acting was fairly decent.",
    "The acting was dull and the plot was awful.",
)


def _model_card(kind: str, metrics: dict, cfg: BuildConfig, seed: int) -> str:
    """A short README.md for a built model: how it was built, on what data, and what the build measured."""
    policy, reward, tok = metrics["policy"], metrics["reward"], metrics["tokenizer"]
    shape = f"{cfg.n_layer} layers, {cfg.n_embd} wide, {cfg.n_head} heads, {cfg.n_positions} positions"
    common = (
        f"Built by `python -m infalign_core build-world --seed {seed}{' --quick' if metrics['quick'] else ''}` "
        f"(`infalign_core/world.py`) in {metrics['build_seconds']} s on "
        f"{metrics['environment']['torch_threads']} CPU threads (load average "
        f"{metrics['environment']['loadavg_before']} before, {metrics['environment']['loadavg_after']} after; "
        "the machine was shared). Data: reviews drawn from the "
        "world's generator (a few hundred words of movie-review vocabulary; positive, negative, mixed "
        '"X but Y" and neutral sentences with intensifiers, downtoners, negation and exclamations). '
        f"Tokenizer: byte-level BPE trained on that corpus, {tok['vocab_size']} tokens; it prepends "
        f"`{BOS_TOKEN}` itself. Prompts are openings without a trailing space; a continuation starts with "
        "a space, so prompt + response is the review as written.\n"
    )
    if kind == "policy":
        front = "---\nlibrary_name: transformers\npipeline_tag: text-generation\nlicense: mit\n---\n"
        body = (
            "# InfAlign Studio world: reference policy\n\n"
            f"A tiny GPT-2 (`GPT2LMHeadModel`, {shape}, {policy['num_parameters']:,} parameters, "
            f"{policy['size_bytes'] / 1e6:.1f} MB) trained on `{BOS_TOKEN} sentence {EOS_TOKEN}` "
            f"for {policy['steps']} steps of batch {policy['batch_size']}. It is the reference policy "
            "π_ref of the app: best-of-N, calibration and CTRL all sample from it.\n\n" + common + "\n"
            "| metric | value |\n| --- | --- |\n"
            f"| validation loss (nats/token) | {policy['val_loss']} (untrained: {policy['val_loss_initial']}) |\n"
            f"| well-formed unconditional samples | {policy['unconditional']['well_formed']:.1%} |\n"
            f"| well-formed prompt continuations | {policy['prompted']['well_formed']:.1%} |\n"
            f"| prompted samples positive / negative / mixed / neutral | "
            f"{policy['prompted']['frac_positive']:.0%} / {policy['prompted']['frac_negative']:.0%} / "
            f"{policy['prompted']['frac_mixed']:.0%} / {policy['prompted']['frac_neutral']:.0%} |\n\n"
            'Well-formed: ends with EOS within the token budget, ends with "." or "!", known words only. '
            "Sentiment by the oracle `infalign_core.world.sentiment_intensity`.\n"
        )
    else:
        front = "---\nlibrary_name: transformers\npipeline_tag: text-classification\nlicense: mit\n---\n"
        body = (
            "# InfAlign Studio world: reward model\n\n"
            f"A tiny GPT-2 sequence classifier (`GPT2ForSequenceClassification`, {shape}, one output, "
            f"regression, {reward['num_parameters']:,} parameters, {reward['size_bytes'] / 1e6:.1f} MB) "
            "trained with mean squared error to predict the generator's graded sentiment intensity "
            '(about -3 to 3: word intensities times modifiers, the clause after "but" counting double, '
            '"!" amplifying). It scores the full text (prompt + response), pooled at its last token. '
            f"{reward['steps']} steps of batch {reward['batch_size']} on {reward['n_train']:,} distinct "
            f"sentences; {reward['heldout']['n']:,} held out.\n\n" + common + "\n"
            "| held-out metric | reward model | VADER |\n| --- | --- | --- |\n"
            f"| Spearman with true intensity | {reward['heldout']['spearman']} | {reward['vader_heldout']['spearman']} |\n"
            f"| sign accuracy | {reward['heldout']['sign_accuracy']:.1%} | {reward['vader_heldout']['sign_accuracy']:.1%} |\n"
            f"| Spearman, mixed sentences | {reward['heldout_mixed']['spearman']} | "
            f"{reward['vader_heldout_mixed']['spearman']} |\n"
            f"| sign accuracy, mixed sentences | {reward['heldout_mixed']['sign_accuracy']:.1%} | "
            f"{reward['vader_heldout_mixed']['sign_accuracy']:.1%} |\n"
            f"| RMSE | {reward['rmse']} | |\n\n"
            "VADER's lexicon calls genre words (horror, villain, killer, war) and horror praise (scary, "
            "terrifying) negative, and lacks many review words (it scores "
            f"{reward['vader_zero_fraction']:.0%} of the judged held-out sentences exactly 0); this world "
            "does not: two reward models, two different optima.\n"
        )
    return front + body


def _folder_size(folder: Path) -> int:
    """Bytes of the safetensors weights in a folder."""
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def build_world(out_dir, *, quick: bool = False, seed: int = 0, log=print) -> dict:
    """Generate the corpus, train tokenizer, policy and reward model, write prompts; return the metrics.

    Writes ``policy/`` and ``reward/`` (``save_pretrained`` safetensors, tokenizer, model card),
    ``prompts.jsonl`` and ``world.json`` (metrics and seed) under ``out_dir``.
    """
    import platform

    import torch
    import transformers
    from transformers import GenerationConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the build logs its own progress; shard bars only add noise

    started, load_before = time.perf_counter(), _loadavg()
    cfg = BuildConfig.quick() if quick else BuildConfig()
    out = Path(out_dir)
    # Build beside the target and swap it in at the end: running trainers memory-map the old
    # safetensors, and overwriting them in place kills those processes with SIGBUS.
    staging = out.with_name(out.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    policy_dir, reward_dir = staging / "policy", staging / "reward"
    for folder in (policy_dir, reward_dir):
        folder.mkdir(parents=True, exist_ok=True)

    log(f"generating {cfg.corpus_size:,} reviews (seed {seed})")
    corpus = generate_reviews(cfg.corpus_size, seed=seed)
    val_texts = generate_reviews(cfg.val_size, seed=seed + 1)
    tokenizer = _train_tokenizer(corpus, cfg.n_positions)
    log(f"tokenizer: {len(tokenizer)} tokens over {len(vocabulary())} words")

    policy, policy_metrics = _train_policy(cfg, tokenizer, corpus, val_texts, seed, log)
    log(f"policy: val loss {policy_metrics['val_loss']} in {policy_metrics['train_seconds']} s")

    prompts = two_sided_openings(
        generate_reviews(max(100 * cfg.n_prompts, 20_000), seed=seed + 3), cfg.n_prompts
    )
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    n_eval = round(cfg.eval_prompt_fraction * len(prompts))
    eval_ids = set(order[:n_eval])
    prompt_rows = [
        {"prompt": p, "split": "eval" if i in eval_ids else "train"} for i, p in enumerate(prompts)
    ]

    n_samples = cfg.n_eval_samples
    free, free_done = _sample_continuations(policy, tokenizer, [""] * n_samples, cfg.max_new_tokens, seed)
    sampled_prompts = [prompts[i % len(prompts)] for i in range(n_samples)]
    cont, cont_done = _sample_continuations(policy, tokenizer, sampled_prompts, cfg.max_new_tokens, seed + 1)
    policy_metrics["unconditional"] = _sample_report([""] * n_samples, free, free_done)
    policy_metrics["prompted"] = _sample_report(sampled_prompts, cont, cont_done)
    policy_metrics["examples"] = [p + r for p, r in zip(sampled_prompts[:8], cont[:8])]
    log(f"policy samples: {policy_metrics['unconditional']} / prompted {policy_metrics['prompted']}")

    distinct = sorted(set(generate_reviews(cfg.reward_size, seed=seed + 2)))
    random.Random(seed + 2).shuffle(distinct)
    n_heldout = round(cfg.reward_heldout_fraction * len(distinct))
    heldout, reward_train = distinct[:n_heldout], distinct[n_heldout:]
    labels = [sentiment_intensity(t) for t in reward_train]
    reward, reward_metrics = _train_reward(cfg, tokenizer, reward_train, labels, seed, log)
    reward_metrics["n_train"] = len(reward_train)
    reward_metrics.update(_reward_report(reward, tokenizer, heldout))
    probe_scores = score_texts(reward, tokenizer, ORDERING_PROBES)
    reward_metrics["ordering_probes"] = {t: round(float(s), 4) for t, s in zip(ORDERING_PROBES, probe_scores)}
    log(f"reward: {reward_metrics['heldout']} mixed {reward_metrics['heldout_mixed']}")

    policy.generation_config = GenerationConfig(
        do_sample=True,
        top_k=0,
        top_p=1.0,
        temperature=1.0,
        max_new_tokens=24,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    for model, folder in ((policy, policy_dir), (reward, reward_dir)):
        model.save_pretrained(folder, safe_serialization=True)
        _save_tokenizer(tokenizer, folder)
    for metrics_, model, folder in (
        (policy_metrics, policy, policy_dir),
        (reward_metrics, reward, reward_dir),
    ):
        metrics_["num_parameters"] = sum(p.numel() for p in model.parameters())
        metrics_["size_bytes"] = _folder_size(folder)
    with open(staging / "prompts.jsonl", "w") as f:
        for row in prompt_rows:
            f.write(json.dumps(row) + "\n")

    metrics = {
        "seed": seed,
        "quick": quick,
        "build_seconds": round(time.perf_counter() - started, 1),
        "config": asdict(cfg),
        "corpus": {
            "sentences": len(corpus),
            "distinct_sentences": len(set(corpus)),
            "words": len(vocabulary()),
        },
        "tokenizer": {"vocab_size": len(tokenizer)},
        "prompts": {"n": len(prompt_rows), "eval": n_eval, "train": len(prompt_rows) - n_eval},
        "policy": policy_metrics,
        "reward": reward_metrics,
        "environment": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": _loadavg(),
        },
    }
    (policy_dir / "README.md").write_text(_model_card("policy", metrics, cfg, seed))
    (reward_dir / "README.md").write_text(_model_card("reward", metrics, cfg, seed))
    (staging / "world.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _replace_folder(staging, out)
    log(f"world written to {out} in {metrics['build_seconds']} s")
    return metrics


def _replace_folder(new: Path, target: Path) -> None:
    """Put ``new`` at ``target`` by renames, so open (memory-mapped) files of the old one stay valid."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _loadavg() -> str | None:
    """The 1/5/15-minute load average where the OS reports one (the CPU is often shared)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None
