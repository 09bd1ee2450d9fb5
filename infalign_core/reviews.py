"""The bundled world's review generator: short movie-review sentences with controllable sentiment.

Positive, negative, mixed "X but Y" and neutral sentences, with intensifiers, downtoners, negation
and exclamations, over a vocabulary of a few hundred words; the openings the prompts are made of;
and the check that a sample reads as one such review.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from infalign_core.lexicon import (
    _NEGATIVE_TIERS,
    _NEUTRAL_ADJECTIVES,
    _POSITIVE_TIERS,
    _TOKEN_RE,
    _VERBS,
    LEXICON,
    MODIFIERS,
    NEGATORS,
    sentiment_intensity,
    sentiment_kind,
)

# adverbs that modify an adjective; the adjectival ones ("an utter mess") appear in stock verdicts only
_INTENSIFIERS = [
    w for w, m in MODIFIERS.items() if m > 1.0 and w not in {"utter", "absolute", "complete", "total", "real"}
]
_DOWNTONERS = ["somewhat", "slightly", "fairly", "rather", "mildly", "a bit", "a little", "pretty"]
_ATTRIBUTIVE_DOWNTONERS = _DOWNTONERS[:5]  # "a rather dull film", never "an a bit dull film"
_STRONG_INTENSIFIERS = ["absolutely", "utterly", "truly", "incredibly", "extremely", "completely"]
_VERB_INTENSIFIERS = ["really", "absolutely", "truly", "genuinely", "thoroughly", "totally", "deeply"]


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
