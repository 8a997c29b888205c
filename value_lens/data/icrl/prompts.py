"""The game's system prompt and the scripted thinking phrasings (written for value_lens).

Each phase has many phrasings so that an axis fitted on scripted data cannot key on a template.
Slots: ``{hyp}`` a hypothesis in words, ``{rule}`` the true criterion in words, ``{k}`` the
paragraph number.
"""

from __future__ import annotations

from random import Random

__all__ = ["THINKING", "game_system_prompt", "thinking"]


def game_system_prompt(num_paragraphs: int, max_attempts: int = 5) -> str:
    """The system prompt that explains the game to the player."""
    return (
        "Let's play a rewriting game. I will show you "
        f"{num_paragraphs} short paragraphs, one at a time. For each one, write a modified "
        "version of the paragraph. A hidden rule decides whether a rewrite earns a reward: "
        "I will answer +1 if your version satisfies the rule and -1 if it does not. The rule "
        "is the same for every paragraph, so use the feedback to work out what it is. "
        f"You get up to {max_attempts} attempts per paragraph; after a +1, or after the last "
        "attempt, we move on to the next paragraph.\n\n"
        "Format every reply like this: first your reasoning inside <thinking></thinking> tags, "
        "then the full modified paragraph and nothing else."
    )


THINKING: dict[str, tuple[str, ...]] = {
    # first attempt at a paragraph before the rule is known
    "explore": (
        "I have no feedback on this paragraph yet. My guess is that the rule asks me to {hyp}, so I will try that.",
        "Paragraph {k}. I still don't know the rule. Let me test whether it wants me to {hyp}.",
        "New paragraph. A reasonable hypothesis: the reward comes when I {hyp}. Trying it.",
        "I'm not sure what earns the reward. Maybe I should {hyp}. Let me see what happens.",
        "Let me try a different idea on this one: {hyp}.",
        "Still guessing. This time I'll {hyp} and watch the feedback.",
        "Hmm, the rule could be almost anything. One option is to {hyp}; I'll go with that.",
        "I'll start this paragraph by testing one idea: {hyp}.",
    ),
    # retry after a -1 before the rule is known
    "retry": (
        "That got -1, so that was not it. Maybe the rule is to {hyp} instead.",
        "-1 again. Let me drop that idea and {hyp}.",
        "The last change didn't work. Perhaps I need to {hyp}.",
        "No reward. I'll try something else: {hyp}.",
        "That hypothesis failed. Next guess: {hyp}.",
        "Negative feedback. Could it be that I should {hyp}? Trying it now.",
        "Not that. Let me try to {hyp} and see if that is what's rewarded.",
        "Still -1. I'm running out of ideas, so let me {hyp}.",
    ),
    # the discovery moment
    "discover": (
        "Wait, I think I'm starting to see the pattern. The rewarded versions all seem to {rule}. Let me make sure this one does.",
        "I'm starting to realise what the rule might be: looking back, the +1 answers were the ones that happened to {rule}. Let me test that.",
        "Hmm, let me compare the attempts that got +1. They seem to share one thing: they {rule}. I'll try exactly that.",
        "Something clicks now. None of my hypotheses explained the rewards, but every success managed to {rule}. Let me do that deliberately.",
        "I think I finally see it. The reward seems to depend on whether I {rule}. Trying that now.",
        "Let me rethink. The successes weren't about my guesses at all; they all {rule}. I'll test that idea.",
        "I'm beginning to suspect the real rule: {rule}. Let me check it on this paragraph.",
        "Okay, a new idea that fits all the feedback so far: I need to {rule}.",
    ),
    # after the discovery, applied with confidence
    "confident": (
        "I know the rule now: {rule}. I'll apply it to this paragraph.",
        "Same rule as before: {rule}. Easy.",
        "The pattern is clear: {rule}. Applying it again.",
        "This worked on the last paragraph, so I'll {rule} here too.",
        "I'm confident the hidden rule is to {rule}. Doing that.",
        "No need to guess anymore: {rule}.",
        "Paragraph {k}: I'll simply {rule}, as before.",
        "The rule is settled, so I'll {rule} and keep the rest of the paragraph as it is.",
    ),
}


def thinking(phase: str, rng: Random, **slots: object) -> str:
    """One thinking text for ``phase`` (``explore``, ``retry``, ``discover``, ``confident``)."""
    return rng.choice(THINKING[phase]).format(**slots)
