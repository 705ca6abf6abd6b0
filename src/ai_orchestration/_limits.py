"""Input limits: what a run accepts, and what each voice can take.

The facade checks an input once, at the boundary (``check_process_input``): its shape, its
text (UTF-8 encodable, within ``run.max_input_chars`` with every choice counted), its choices
(at least two, at most ``run.max_choices``, each a non-empty string or a number, none
repeated). A voice may declare ``context_tokens``, the input tokens (prompt, instructions and
the longest choice) it can take; ``over_context`` says when a request is over it, and
``check_voices_can_take`` turns an input no voice can take into an ``InputError`` naming them
before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ai_orchestration._encoding import unencodable
from ai_orchestration.context import Context, Message
from ai_orchestration.errors import InputError
from ai_orchestration.voices import Voice, VoiceRequest
from ai_orchestration.voices._types import estimate_input_tokens

__all__ = [
    "chat_context",
    "check_process_input",
    "check_run_input",
    "check_voices_can_take",
    "over_context",
]


def _choice_text(choice: Any, where: str) -> str:
    if isinstance(choice, str):
        if not choice.strip():
            raise InputError(f"{where} is an empty option")
        return choice
    if isinstance(choice, int | float) and not isinstance(choice, bool):
        if isinstance(choice, float) and not math.isfinite(choice):
            raise InputError(f"{where} is {choice!r}, not an option")
        return str(choice)
    raise InputError(f"{where} is {type(choice).__name__}; options are strings or numbers")


def _check_choices(choices: Any, max_choices: int) -> list[str]:
    if isinstance(choices, str) or not isinstance(choices, Sequence) or len(choices) < 2:
        raise InputError("input 'choices' must be a list of at least two options")
    if len(choices) > max_choices:
        raise InputError(
            f"input has {len(choices):,} choices, over the limit of {max_choices:,} "
            "(run.max_choices)"
        )
    texts: list[str] = []
    seen: dict[str, int] = {}
    for i, choice in enumerate(choices):
        text = _choice_text(choice, f"input['choices'][{i}]")
        if text in seen:
            raise InputError(f"input['choices'][{i}] repeats option {seen[text]} ({text[:40]!r})")
        seen[text] = i
        texts.append(text)
    return texts


_ROLES = ("system", "user", "assistant", "tool")


def _message_texts(raw: Any) -> list[str]:
    """The contents of an OpenAI-style ``messages`` list, or an ``InputError`` naming the
    offending element (``input['messages'][2].role``)."""
    if isinstance(raw, str) or not isinstance(raw, Sequence) or not raw:
        raise InputError("input 'messages' must be a non-empty list of {role, content} objects")
    texts: list[str] = []
    for i, message in enumerate(raw):
        where = f"input['messages'][{i}]"
        if not isinstance(message, Mapping):
            raise InputError(f"{where} is {type(message).__name__}, not a {{role, content}} object")
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise InputError(f"{where}.role is {role!r}; expected one of {', '.join(_ROLES)}")
        if not isinstance(content, str):
            raise InputError(f"{where}.content is {type(content).__name__}, not a string")
        texts.append(content)
    if not any(m["role"] == "user" for m in raw):
        raise InputError("input 'messages' has no 'user' message")
    return texts


def chat_context(input_data: Mapping[str, Any]) -> Context:
    """The ``Context`` of a checked ``{"messages": [...]}`` input (optional ``name`` kept)."""
    return Context(
        Message(
            m["role"], m["content"], name=m.get("name") if isinstance(m.get("name"), str) else None
        )
        for m in input_data["messages"]
    )


def check_process_input(input_data: Any, *, max_chars: int, max_choices: int) -> Any:
    """``input_data`` if ``process`` can take it, else an ``InputError`` naming the problem."""
    choices: list[str] = []
    if isinstance(input_data, str):
        text = input_data
    elif isinstance(input_data, Mapping) and "messages" in input_data:
        text = "\n".join(_message_texts(input_data["messages"]))
    elif isinstance(input_data, Mapping):
        prompt = input_data.get("prompt")
        if not isinstance(prompt, str):
            raise InputError("input mapping needs a 'prompt' string or a 'messages' list")
        raw = input_data.get("choices")
        text = prompt
        choices = [] if raw is None else _check_choices(raw, max_choices)
    else:
        raise InputError(
            f"input must be a prompt string or a mapping with 'prompt' or 'messages', "
            f"got {type(input_data).__name__}"
        )
    where = unencodable(input_data)
    if where is not None:
        raise InputError(f"{where} holds text UTF-8 cannot encode (a lone surrogate)")
    if not text.strip():
        raise InputError("input prompt is empty")
    size = len(text) + sum(len(c) for c in choices)
    if size > max_chars:
        what = "input" if not choices else "input (prompt and choices)"
        raise InputError(
            f"{what} is {size:,} characters, over the limit of {max_chars:,} (run.max_input_chars)"
        )
    return input_data


def check_run_input(value: Any, *, max_chars: int) -> None:
    """A workflow input (``ai-orchestration run``): encodable text, at most ``max_chars``
    characters of text in all."""
    where = unencodable(value)
    if where is not None:
        raise InputError(f"{where} holds text UTF-8 cannot encode (a lone surrogate)")
    size = sum(len(s) for s in _strings(value))
    if size > max_chars:
        raise InputError(
            f"input is {size:,} characters, over the limit of {max_chars:,} (run.max_input_chars)"
        )


def _strings(value: Any, depth: int = 0) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif depth < 32 and isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(k, depth + 1)
            yield from _strings(v, depth + 1)
    elif depth < 32 and isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v, depth + 1)


def _request_tokens(request: VoiceRequest) -> int:
    longest = max((len(c) for c in request.choices or ()), default=0)
    return estimate_input_tokens(request) + longest // 4


def over_context(voice: Voice, request: VoiceRequest) -> str | None:
    """Why ``request`` is more than ``voice`` can take (its ``context_tokens``), or None."""
    limit = getattr(voice, "context_tokens", None)
    if not isinstance(limit, int):
        return None
    need = _request_tokens(request)
    if need <= limit:
        return None
    return f"the input is ~{need:,} tokens, over this voice's context of {limit:,} tokens"


def check_voices_can_take(request: VoiceRequest, voices: Sequence[Voice]) -> None:
    """``InputError`` naming every voice when none of ``voices`` can take ``request``."""
    if not voices or any(over_context(v, request) is None for v in voices):
        return
    limits = ", ".join(f"{v.name} {getattr(v, 'context_tokens', '?')}" for v in voices)
    raise InputError(
        f"the input is ~{_request_tokens(request):,} tokens, more than any voice can take "
        f"(context tokens: {limits}); shorten it"
    )
