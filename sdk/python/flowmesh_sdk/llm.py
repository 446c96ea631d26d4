"""Chat and text completion through the worker's OpenAI-compatible model
endpoint (``flowmesh:host/llm``).

A plugin that uses this module imports the interface in its world
(``import flowmesh:host/llm@0.1.0;`` in ``wit/world.wit``). Only workers whose
model endpoint answered run it; every other worker reports the plugin
unavailable, with the reason.

An unreachable or failing endpoint (and a call that timed out) raises
:class:`~flowmesh_sdk.Retryable`; a refused request :class:`~flowmesh_sdk.Failed`.
Left uncaught, they fail or retry the task accordingly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from . import _host
from ._errors import Failed, Retryable


@dataclass(frozen=True)
class Response:
    """The assembled answer of a model."""

    model: str
    content: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


def _bindings() -> Any:
    return _host.capability("llm")


def _call(call: Any) -> Any:
    _bindings()  # says what is missing before anything else
    try:
        return call()
    except _host.WitErr as error:
        raise _error(error.value) from None


def _error(value: Any) -> Exception:
    kind = type(value).__name__.removeprefix("LlmError_")
    detail = getattr(value, "value", None)
    text = {
        "BadRequest": f"the model endpoint refused the request: {detail}",
        "UnknownModel": f"the model endpoint does not serve {detail}",
        "TooLarge": f"the model's answer is over the worker's size limit: {detail}",
        "TimedOut": "the model endpoint did not answer in time",
        "Unavailable": f"the model endpoint is unavailable: {detail}",
    }.get(kind, f"the model call failed: {value}")
    return Retryable(text) if kind in ("TimedOut", "Unavailable") else Failed(text)


def _sampling(max_tokens: int | None, temperature: float | None, top_p: float | None,
              stop: Iterable[str], seed: int | None) -> Any:
    return _bindings().Sampling(max_tokens, temperature, top_p, list(stop), seed)


def _response(raw: Any) -> Response:
    usage = raw.usage
    return Response(
        raw.model,
        raw.content,
        raw.finish_reason,
        usage.prompt_tokens if usage else None,
        usage.completion_tokens if usage else None,
    )


def models() -> list[str]:
    """The models the endpoint serves."""
    return list(_call(lambda: _bindings().models()))


def engine() -> str:
    """The serving engine as the endpoint names itself (``vllm``, ...)."""
    return _bindings().engine()


def load_adapter(name: str, source: str) -> None:
    """Loads a LoRA adapter into the endpoint under ``name``."""
    _call(lambda: _bindings().load_adapter(name, source))


def chat(model: str, messages: Iterable[dict[str, str] | tuple[str, str]], *,
         max_tokens: int | None = None, temperature: float | None = None,
         top_p: float | None = None, stop: Iterable[str] = (), seed: int | None = None,
         streaming: bool = False, extra: dict[str, Any] | None = None) -> Response:
    """A chat completion. ``messages`` are ``{"role": ..., "content": ...}``
    dicts or ``(role, content)`` pairs; ``extra`` is merged into the request
    body (endpoint-specific options). Streamed tokens go to the task log."""
    llm = _bindings()
    wit_messages = []
    for message in messages:
        role, content = (message["role"], message["content"]) if isinstance(message, dict) else message
        wit_messages.append(llm.Message(role, content))
    request = llm.ChatRequest(
        model,
        wit_messages,
        _sampling(max_tokens, temperature, top_p, stop, seed),
        streaming,
        None if extra is None else json.dumps(extra),
    )
    return _response(_call(lambda: llm.chat(request)))


def complete(model: str, prompt: str, *, max_tokens: int | None = None,
             temperature: float | None = None, top_p: float | None = None,
             stop: Iterable[str] = (), seed: int | None = None, streaming: bool = False,
             extra: dict[str, Any] | None = None) -> Response:
    """A text completion."""
    llm = _bindings()
    request = llm.CompletionRequest(
        model,
        prompt,
        _sampling(max_tokens, temperature, top_p, stop, seed),
        streaming,
        None if extra is None else json.dumps(extra),
    )
    return _response(_call(lambda: llm.complete(request)))
