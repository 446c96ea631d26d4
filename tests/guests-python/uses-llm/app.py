"""A Python plugin that asks the worker's model endpoint (flowmesh:host/llm)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowmesh_sdk import Plugin, llm, log

plugin = Plugin("py-chat", version="0.1.0", description="Chats with the worker's model (tests only).")


@dataclass
class ChatSpec:
    model: str
    prompt: str
    max_tokens: int | None = field(default=None, metadata={"minimum": 1})
    stream: bool = True


@plugin.task_type("py-chat", description="Sends one user message to a model.")
def chat(spec: ChatSpec) -> dict:
    log.info(f"engine {llm.engine()}, models {llm.models()}")
    answer = llm.chat(
        spec.model,
        [("system", "be brief"), {"role": "user", "content": spec.prompt}],
        max_tokens=spec.max_tokens,
        streaming=spec.stream,
    )
    return {
        "content": answer.content,
        "model": answer.model,
        "finish_reason": answer.finish_reason,
        "completion_tokens": answer.completion_tokens,
    }


@chat.validate
def _check(spec: ChatSpec) -> None:
    # What a hostile plugin might try: reach the model from the server, where
    # validate() runs at submit. The server links no capability, only stubs.
    if spec.prompt == "ask the model while validating":
        llm.models()


Executor = plugin.export()
