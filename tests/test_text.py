"""User text escaped for Markdown renders character for character."""

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from infalign_core.text import literal, unescaped

_MD = MarkdownIt("commonmark")


def _rendered_text(markdown: str) -> str:
    """The visible text of rendered Markdown (tags stripped, entities decoded)."""
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", _MD.render(markdown))).strip()


def test_the_issues_examples_render_literally():
    for text in [
        "T(x) = x**3",
        "__import__ is refused",
        "a_b *c* [l](u) <b>x</b> $y$",
        "# not a heading",
        "1. no",
    ]:
        assert _rendered_text(literal(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab *_`[]()<>$~|#+-=.!1\\x:")), max_size=30))
def test_any_single_line_of_ascii_punctuation_renders_as_typed(text):
    text = text.strip()
    if text:
        assert _rendered_text(literal(text)) == text.strip()


@given(st.text(max_size=40))
def test_unescaped_inverts_literal(text):
    assert unescaped(literal(text)) == text
