"""The `teacher:` section of a recipe: endpoints, limits, retries, budget, prices, cache.

    teacher:
      text:   {base_url: https://api.openai.com/v1, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY,
               structured_output: json_schema}
      vision: {...}            # optional; the endpoint perceive uses for keyframes
      concurrency: 8
      budget: {max_requests: 5000, max_tokens: 5000000}
      prices: {gpt-4o-mini: {prompt_usd_per_mtok: 0.15, completion_usd_per_mtok: 0.6}}

The API key itself never appears here: only the NAME of the environment variable that holds it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from curation.credentials import refuse_url_credentials

# `embedded` means: the llama.cpp server started by `vstw teacher serve` (its URL is looked up
# at run time, so the recipe stays the same whatever port it got).
EMBEDDED = "embedded"

StructuredOutput = Literal["json_schema", "json_object_schema", "text"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EndpointConfig(_Strict):
    """One OpenAI-compatible endpoint."""

    base_url: str = Field(..., min_length=1, description="e.g. https://api.openai.com/v1, http://host:8000/v1, or 'embedded'")
    model: str = Field(..., min_length=1)
    api_key_env: str | None = Field(None, description="NAME of the environment variable holding the key; none for a local server")
    # json_schema: OpenAI / vLLM / SGLang structured outputs; json_object_schema: llama.cpp's
    # {"type": "json_object", "schema": ...}; text: the schema is only described in the prompt.
    structured_output: StructuredOutput = "json_schema"
    strict: bool = Field(False, description="OpenAI strict structured outputs (json_schema only)")

    @field_validator("base_url")
    @classmethod
    def _no_credentials_in_url(cls, value: str) -> str:
        return refuse_url_credentials(value, "give the key through the environment: set api_key_env to the NAME of the "
                                             "variable that holds it (e.g. api_key_env: OPENAI_API_KEY)")

    @model_validator(mode="before")
    @classmethod
    def _key_name_not_key(cls, data):
        # A pasted key would end up in the run folder's recipe.yaml. Checked on the whole mapping
        # so that the error message does not echo the value back to the terminal.
        value = data.get("api_key_env") if isinstance(data, dict) else None
        if isinstance(value, str) and (value.startswith("sk-") or not value.replace("_", "").isalnum() or not value[:1].isalpha()):
            raise ValueError("api_key_env must be the NAME of an environment variable (e.g. OPENAI_API_KEY), never the key itself")
        return data


class Price(_Strict):
    prompt_usd_per_mtok: float = Field(0.0, ge=0)
    completion_usd_per_mtok: float = Field(0.0, ge=0)


class Budget(_Strict):
    """Per run (per `vstw run` invocation): calls beyond it fail with teacher_budget_exhausted."""

    max_requests: int | None = Field(None, ge=0, description="HTTP requests sent (cache hits are free)")
    max_tokens: int | None = Field(None, ge=0, description="prompt + completion tokens")


class TeacherConfig(_Strict):
    # pydantic's own error text (a traceback, a log) never prints a value: it may be a secret URL
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    text: EndpointConfig
    vision: EndpointConfig | None = None
    concurrency: int = Field(4, ge=1, le=1024, description="requests in flight at once, over the whole process")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0, le=20, description="retries of one request on 429, 5xx, timeouts, dropped connections")
    backoff_initial_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    max_retry_after_s: float = Field(60.0, ge=0, description="a longer Retry-After is capped to this")
    temperature: float = Field(0.0, ge=0, le=2)
    seed: int | None = 0
    budget: Budget = Field(default_factory=Budget)
    prices: dict[str, Price] = Field(default_factory=dict, description="model -> price per million tokens")
    cache_dir: str | None = Field(None, description="default: the run's teacher-cache/; share one to reuse replies across runs")

    def endpoint(self, role: Literal["text", "vision"]) -> EndpointConfig | None:
        return self.text if role == "text" else self.vision

    def fingerprint(self) -> str:
        """Identifies a configuration (clients are shared per fingerprint within a process)."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


class TeacherConfigError(ValueError):
    """A teacher configuration that cannot be used; the message is meant for the user."""


def teacher_config(recipe: dict) -> TeacherConfig:
    """The validated teacher section of a (resolved) recipe."""
    from pydantic import ValidationError

    data = recipe.get("teacher")
    if data is None:
        raise TeacherConfigError("this stage needs a 'teacher:' section in the recipe (see docs/teacher.md)")
    if isinstance(data, TeacherConfig):
        return data
    try:
        return TeacherConfig.model_validate(data)
    except ValidationError as err:
        lines = [f"teacher.{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors()]
        raise TeacherConfigError("the recipe's teacher section is not valid:\n  " + "\n  ".join(lines)) from None
