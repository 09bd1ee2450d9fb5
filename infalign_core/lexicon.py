"""The bundled world's lexicon and its sentiment scorer: the ground truth behind the oracle reward.

``sentiment_intensity(text)`` scores any text from its words (intensities, modifiers, negation,
"X but Y", exclamations), so it scores the generator's reviews and any model sample alike.
"""

from __future__ import annotations

import math
import re

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
