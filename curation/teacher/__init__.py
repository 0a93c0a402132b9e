"""The teacher LLM: configuration, client (retries, budget, structured output, repair), reply
cache and usage accounting. Knows nothing about runs or stages (those live in pipelines/)."""

from curation.teacher.cache import ReplyCache, cache_key
from curation.teacher.client import TeacherCall, TeacherClient, TeacherResult, shared_client
from curation.teacher.config import EndpointConfig, TeacherConfig, TeacherConfigError, teacher_config
from curation.teacher.structured import InvalidReply, parse_reply

__all__ = [
    "EndpointConfig", "InvalidReply", "ReplyCache", "TeacherCall", "TeacherClient", "TeacherConfig",
    "TeacherConfigError", "TeacherResult", "cache_key", "parse_reply", "shared_client", "teacher_config",
]  # fmt: skip
