"""Each walk segment's prompt: the content prompt, the QCM text of the segment's camera action
(:mod:`unity_core.explore.qcm`) and an optional event, fitted to the text encoder's token limit
by shortening the content prompt from its end (the action text is never cut).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from unity_core.explore.actions import CameraAction
from unity_core.explore.qcm import action_prompt, segment_prompt


def prompt_fits(text_encoder, prompt: str) -> bool:
    """Whether ``prompt`` fits the encoder's token limit: its ``tokenizer`` gives at most
    ``max_length`` ids. An encoder without a tokenizer or a limit takes any prompt."""
    tok = getattr(text_encoder, "tokenizer", None)
    limit = getattr(text_encoder, "max_length", 0)
    if tok is None or not limit:
        return True
    return len(tok(prompt)["input_ids"]) <= limit


def fit_content(text_encoder, content: str, action_text: str) -> str:
    """The longest word prefix of ``content`` such that ``content + action_text`` fits the
    encoder's token limit (the action text is never cut; the content is, from its end); the
    empty string when not even one word fits."""
    words = (content or "").split()
    join = lambda k: " ".join(words[:k] + [action_text])  # noqa: E731
    if prompt_fits(text_encoder, join(len(words))):
        return " ".join(words)
    lo, hi = 0, len(words)
    while lo < hi:  # largest k that fits
        mid = (lo + hi + 1) // 2
        if prompt_fits(text_encoder, join(mid)):
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def segment_prompts(text_encoder, prompt: str, actions: Sequence[CameraAction], sentence_set: str = "v1",
                    prefix: Optional[bool] = None, speed: Optional[dict] = None,
                    event: str = "") -> Tuple[List[str], bool]:
    """Each segment's prompt: the content prompt, the action's QCM sentences, then ``event``.

    Segment k gets action k's text. (The release's ``sample_5b.py`` reads one caption line per
    segment and conditions segment k >= 1 on line k - 1, because it builds the next segment's
    context at the end of a segment from that segment's own line: segments 0 and 1 share line 0
    and the last line is never used. Here each segment has its own action, so there is no shift.)

    Args:
        text_encoder: the pipeline's encoder (its tokenizer and ``max_length`` bound the prompt).
        sentence_set: ``v1`` or ``v1_5`` (Yume 1.5's sentences, the default for Yume-5B).
        prefix: include the set's prefix sentence; None: when the whole prompt fits.
        speed: values of the speed sentence (:func:`~unity_core.explore.qcm.speed_sentence`), or None.
        event: free text appended to every segment (Yume's text-controlled events, e.g.
            ``"A red car drives past."``); empty for none.

    Returns:
        (prompts, shortened): shortened is True when the content prompt was cut from its end so
        that the action text and the event stay whole within the encoder's token limit.
    """
    event = (event or "").strip()
    prompts, shortened = [], False
    for a in actions:
        use_prefix = prefix
        if use_prefix is None:
            whole = " ".join(filter(None, [segment_prompt(prompt, a, sentence_set, speed, True), event]))
            use_prefix = prompt_fits(text_encoder, whole)
        tail = " ".join(filter(None, [action_prompt(a, sentence_set, speed, use_prefix), event]))
        content = fit_content(text_encoder, prompt, tail)
        shortened |= content != (prompt or "").strip()
        prompts.append(f"{content} {tail}" if content else tail)
    return prompts, shortened


__all__ = ["fit_content", "prompt_fits", "segment_prompts"]
