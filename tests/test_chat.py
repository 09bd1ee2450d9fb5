"""Prompt rendering: chat templates for the policy and the reward model, HH dialogues, completion mode."""

from __future__ import annotations

import arch_zoo
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infalign_core.chat import (
    COMPLETION,
    ChatFormat,
    encode_prompt,
    is_dialogue,
    parse_dialogue,
    prompt_text,
    render_conversation,
    render_prompt,
    rendering_key,
    to_messages,
)
from infalign_core.errors import InfAlignError
from infalign_core.sampling_settings import SamplingSettings


@pytest.fixture(scope="module")
def chatml():
    """A tokenizer whose template carries <bos> and that also adds <bos> itself (Llama-style)."""
    return arch_zoo.make_tokenizer(template=arch_zoo.CHATML, pad=False, add_bos=True)


@pytest.fixture(scope="module")
def plain():
    """A tokenizer without a chat template."""
    return arch_zoo.make_tokenizer(template=None, pad=True, add_bos=False)


def test_plain_prompt_renders_as_one_user_turn_with_generation_prompt(chatml):
    text = render_prompt(chatml, "how do i help")
    assert text == "<bos><|im_start|>user\nhow do i help<|im_end|>\n<|im_start|>assistant\n"


def test_rendered_prompt_carries_exactly_one_bos(chatml):
    ids = encode_prompt(chatml, "how do i help")
    assert ids.count(arch_zoo.BOS) == 1 and ids[0] == arch_zoo.BOS
    # The raw tokenizer call would have added a second one.
    assert chatml(render_prompt(chatml, "how do i help"))["input_ids"][:2] == [arch_zoo.BOS, arch_zoo.BOS]


def test_system_prompt_goes_first(chatml):
    text = render_prompt(chatml, "hi", ChatFormat(system_prompt="be kind"))
    assert text.startswith("<bos><|im_start|>system\nbe kind<|im_end|>\n<|im_start|>user\nhi")


def test_completion_mode_conditions_on_the_raw_text(chatml):
    hh = "\n\nHuman: hi\n\nAssistant:"
    assert render_prompt(chatml, "hi", COMPLETION) == "hi"
    assert render_prompt(chatml, hh, COMPLETION) == hh
    assert encode_prompt(chatml, "hi", COMPLETION) == chatml("hi")["input_ids"]


def test_template_less_tokenizer_renders_the_prompt_text(plain):
    assert render_prompt(plain, "hi") == "hi"
    assert render_conversation(plain, "hi", " there") is None


def test_multi_turn_messages_render_every_turn(chatml):
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert render_prompt(chatml, messages) == render_prompt(chatml, prompt_text(messages))
    assert "<|im_start|>assistant\nb<|im_end|>" in render_prompt(chatml, messages)


def test_hh_transcript_parses_into_messages_without_the_reply_slot():
    text = "\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: how are you?\n\nAssistant:"
    assert is_dialogue(text)
    assert parse_dialogue(text) == [
        {"role": "user", "content": "hi there"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "how are you?"},
    ]
    assert not is_dialogue("the movie was great")


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_characters="\n\r", min_codepoint=32), min_size=1).filter(
            lambda t: t.strip() == t and ":" not in t
        ),
        min_size=1,
        max_size=5,
    )
)
def test_messages_round_trip_through_their_transcript(contents):
    roles = ["user" if i % 2 == 0 else "assistant" for i in range(len(contents))]
    if roles[-1] != "user":
        roles, contents = roles[:-1], contents[:-1]
    messages = [{"role": r, "content": c} for r, c in zip(roles, contents)]
    if not messages:
        return
    assert to_messages(prompt_text(messages)) == messages


def test_reward_conversation_appends_the_response_as_assistant_turn(chatml):
    text = render_conversation(chatml, "hi", " there")
    assert text == "<bos><|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nthere<|im_end|>\n"


def test_template_that_fails_to_render_is_one_clear_message():
    gemma = arch_zoo.make_tokenizer(template=arch_zoo.GEMMA_LIKE, pad=True, add_bos=True)
    with pytest.raises(InfAlignError, match=r"chat template failed to render.*System role not supported"):
        render_prompt(gemma, "hi", ChatFormat(system_prompt="be kind"))
    broken = arch_zoo.make_tokenizer(template="{% for m in messages %}{{ m.content ", pad=True, add_bos=False)
    with pytest.raises(InfAlignError, match="chat template failed to render"):
        render_prompt(broken, "hi")


def test_dialogue_ending_on_an_assistant_turn_is_refused_as_a_prompt(chatml):
    with pytest.raises(InfAlignError, match="does not end on a user turn"):
        render_prompt(chatml, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])


def test_bad_messages_are_refused():
    with pytest.raises(InfAlignError, match="role"):
        to_messages([{"role": "wizard", "content": "x"}])
    with pytest.raises(InfAlignError, match="at least one"):
        to_messages([])


def test_rendering_key_changes_with_template_system_prompt_and_mode(chatml, plain):
    keys = {
        str(rendering_key(chatml, None)),
        str(rendering_key(chatml, ChatFormat(system_prompt="x"))),
        str(rendering_key(chatml, COMPLETION)),
    }
    assert len(keys) == 3
    other = arch_zoo.make_tokenizer(template=arch_zoo.GEMMA_LIKE, pad=True, add_bos=True)
    assert rendering_key(other, None) != rendering_key(chatml, None)
    assert rendering_key(plain, None)["template"] is None


def test_bank_key_changes_with_the_policys_rendering(chatml):
    from types import SimpleNamespace

    from infalign_core import calibration

    reward = SimpleNamespace(fingerprint="r", name="r")

    def key(chat):
        policy = SimpleNamespace(fingerprint="p", tokenizer=chatml, chat=chat, source="p", dtype="float32")
        settings = calibration.bank_settings(
            policy, reward, ["hi"], 4, SamplingSettings(max_new_tokens=4, temperature=1.0, top_p=1.0, seed=0)
        )
        return calibration.settings_key(settings)

    keys = {key(None), key(ChatFormat(system_prompt="x")), key(COMPLETION)}
    assert len(keys) == 3
    assert key(ChatFormat()) == key(None)  # the default rendering is the default
