"""User text shown through Markdown (titles, messages, samples), escaped so it reads as typed."""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation. Inline, these are the characters that
# Markdown, Streamlit's LaTeX ($) and its HTML pass-through (<) act on: ``x**3`` must not turn bold.
_INLINE = re.compile(r"([\\`*_\[\]<>$~|])")
# At a line's start a few more open a block: a heading, a list, a quote, a rule.
_LINE_START = re.compile(r"^(\s*\d*)([#+\-=>.)])", flags=re.MULTILINE)


def literal(text: object) -> str:
    """`text` escaped for Markdown, so ``T(x) = x**3`` and ``__import__`` render character for character."""
    escaped = _INLINE.sub(r"\\\1", str(text))
    escaped = _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), escaped)
    return escaped.replace("\n", "  \n")  # a line break stays a line break, not a paragraph join


def unescaped(text: str) -> str:
    """The text a reader sees for Markdown made by :func:`literal` (for comparing messages)."""
    return re.sub(r"\\(.)", r"\1", text.replace("  \n", "\n"))
