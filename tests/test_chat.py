import pytest

from value_lens.chat import format_chat
from value_lens.errors import InputError
from value_lens.testing import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_spans_point_at_each_message(tok):
    msgs = [
        {"role": "system", "content": "Play the game."},
        {"role": "user", "content": "Paragraph 1:\n\nThe river flows."},
        {"role": "assistant", "content": "<thinking>hm</thinking>The river flows."},
        {"role": "user", "content": "-1"},
    ]
    chat = format_chat(tok, msgs)
    for i, m in enumerate(msgs):
        assert chat.content(i) == m["content"]
        assert chat.spans[i].role == m["role"]
    assert chat.turns("assistant") == [2]


def test_repeated_content_is_located_in_its_own_turn(tok):
    # the assistant repeats the user's paragraph verbatim: its span must be the later copy
    para = "The river flows."
    chat = format_chat(
        tok, [{"role": "user", "content": para}, {"role": "assistant", "content": para}]
    )
    assert chat.spans[1].start > chat.spans[0].end
    assert (
        chat.text[chat.spans[1].start - len("assistant\n") : chat.spans[1].start] == "assistant\n"
    )


def test_enable_thinking_switch(tok):
    msgs = [{"role": "user", "content": "hi"}]
    off = format_chat(tok, msgs, add_generation_prompt=True, enable_thinking=False).text
    on = format_chat(tok, msgs, add_generation_prompt=True, enable_thinking=True).text
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert on.endswith("<|im_start|>assistant\n")


def test_bad_messages(tok):
    with pytest.raises(InputError, match="no messages"):
        format_chat(tok, [])
    with pytest.raises(InputError, match="'role' and 'content'"):
        format_chat(tok, [{"text": "x"}])
