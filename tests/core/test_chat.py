import pytest

from value_lens.core.chat import format_chat
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
    header = chat.text.rfind("<|im_start|>assistant\n", 0, chat.spans[1].start)
    assert header > chat.spans[0].end
    assert chat.content(1) == para


# What Qwen3's real template renders (hand-written from its documented behaviour), the oracle
# for the tiny template that stands in for it in tests.
_CONV = [
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "u1"},
    {"role": "assistant", "content": "<think>\nr1\n</think>\n\na1"},
    {"role": "user", "content": "u2"},
    {"role": "assistant", "content": "a2"},
]
_HEAD = "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nu1<|im_end|>\n"


@pytest.mark.parametrize("thinking", [None, True, False])
def test_tiny_template_renders_like_qwen3(tok, thinking):
    kw = {} if thinking is None else {"enable_thinking": thinking}
    render = lambda msgs, **k: tok.apply_chat_template(msgs, tokenize=False, **kw, **k)  # noqa: E731
    # the final assistant turn after the last user message: reasoning shown, even when empty
    assert (
        render(_CONV[:3])
        == _HEAD + "<|im_start|>assistant\n<think>\nr1\n</think>\n\na1<|im_end|>\n"
    )
    # an earlier assistant turn: reasoning stripped
    earlier = _HEAD + "<|im_start|>assistant\na1<|im_end|>\n<|im_start|>user\nu2<|im_end|>\n"
    assert render(_CONV[:4]) == earlier
    # the final assistant turn gets the empty think block whether thinking is on or off
    assert render(_CONV) == earlier + "<|im_start|>assistant\n<think>\n\n</think>\n\na2<|im_end|>\n"
    prompt = render(_CONV[:4], add_generation_prompt=True)
    empty = "<think>\n\n</think>\n\n" if thinking is False else ""
    assert prompt == earlier + "<|im_start|>assistant\n" + empty


def test_spans_follow_a_template_that_strips_reasoning(tok):
    chat = format_chat(tok, _CONV)
    assert [chat.content(i) for i in range(5)] == ["sys", "u1", "a1", "u2", "a2"]
    # the final turn's span excludes the template's empty think block
    assert chat.text[: chat.spans[4].start].endswith("assistant\n<think>\n\n</think>\n\n")


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
