"""Structured output: ask for JSON that fits a pydantic model, and check what comes back.

Three ways to ask, by what the server supports:
- json_schema:        OpenAI structured outputs (OpenAI, vLLM, SGLang)
- json_object_schema: {"type": "json_object", "schema": ...} (llama.cpp's server; its
                      json_schema format returns 500)
- text:               no constraint; the schema is written into the prompt
Whatever the way, the reply is parsed and validated the same way, so a server that ignores the
constraint is caught here.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any, Callable

from pydantic import BaseModel, ValidationError


class InvalidReply(ValueError):
    """The reply does not fit: the message is shown to the teacher in the repair request."""


def inline_schema(model: type[BaseModel]) -> dict:
    """A copy of _inline_schema(model) (computed once per model: schema generation is slow)."""
    return copy.deepcopy(_inline_schema(model))


@functools.lru_cache(maxsize=256)
def _inline_schema(model: type[BaseModel]) -> dict:
    """The model's JSON schema with $refs inlined, titles dropped and every object closed:
    the common subset that llama.cpp's grammar converter, vLLM and OpenAI all accept."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(copy.deepcopy(defs[node["$ref"].split("/")[-1]]))
            out = {k: walk(v) for k, v in node.items() if k not in ("title", "description", "default")}
            if out.get("type") == "object":
                out["additionalProperties"] = False
                out["required"] = sorted(out.get("properties", {}))
            return out
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    return walk(schema)


def response_format(mode: str, model: type[BaseModel], strict: bool = False) -> dict | None:
    schema = inline_schema(model)
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": model.__name__, "schema": schema, "strict": strict}}
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    return None


def schema_instruction(model: type[BaseModel]) -> str:
    """For text mode: the schema, spelled out in the prompt."""
    return "Reply with one JSON object only, no other text, matching this JSON schema:\n" + json.dumps(inline_schema(model), sort_keys=True)


def _json_text(content: str) -> str:
    """The JSON object in a reply (text-mode replies may wrap it in prose or a code fence)."""
    text = content.strip()
    if text.startswith("{"):
        return text
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise InvalidReply("the reply holds no JSON object")
    return text[start : end + 1]


def parse_reply(
    content: str | None,
    finish_reason: str | None,
    model: type[BaseModel],
    check: Callable[[BaseModel], None] | None = None,
) -> BaseModel:
    """The validated object, or InvalidReply naming what is wrong (for the repair request)."""
    if finish_reason == "length":
        raise InvalidReply("the reply was cut off at the token limit (finish_reason=length); answer shorter")
    if not content or not content.strip():
        raise InvalidReply("the reply is empty")
    try:
        data = json.loads(_json_text(content))
    except json.JSONDecodeError as err:
        raise InvalidReply(f"the reply is not valid JSON: {err}") from None
    try:
        obj = model.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'reply'}: {e['msg']}" for e in err.errors()[:5])
        raise InvalidReply(f"the JSON does not fit the schema: {problems}") from None
    if check is not None:
        check(obj)  # raises InvalidReply with a reason the teacher can act on
    return obj
