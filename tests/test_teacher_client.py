"""The teacher client against a real HTTP server on 127.0.0.1 that injects faults."""

from __future__ import annotations

import time

import pytest
from pydantic import BaseModel, ValidationError

from _teacher_fixtures import FakeTeacherServer
from curation.graph import ClipExtraction, ClipFacts, merge_graph, normalize_name, template_questions
from curation.prompts import PromptError, load_prompt
from curation.teacher import ReplyCache, TeacherCall, TeacherClient, TeacherConfig
from curation.teacher.config import EndpointConfig
from curation.teacher.structured import InvalidReply, inline_schema, parse_reply


class Echo(BaseModel):
    answer: str


def config(server: FakeTeacherServer, **overrides) -> TeacherConfig:
    endpoint = {"base_url": server.base_url, "model": "fake-teacher", "structured_output": "json_object_schema"}
    endpoint |= overrides.pop("endpoint", {})
    data = {"text": endpoint, "timeout_s": 0.6, "max_retries": 2, "backoff_initial_s": 0.05, "backoff_max_s": 0.2, "concurrency": 8}
    return TeacherConfig.model_validate(data | overrides)


def call(text: str, item: str | None = None, **kw) -> TeacherCall:
    return TeacherCall("test", item or text, [{"role": "user", "content": text}], Echo, "echo.v1", 50, **kw)


FAULTS = {
    "plain": ("", None, 0),
    "rate_limited": ("[[fault:429:2]]", None, 2),
    "server_error": ("[[fault:500:1]]", None, 1),
    "dropped": ("[[fault:drop:1]]", None, 1),
    "slow_once": ("[[fault:slow:1]]", None, 1),
    "always_slow": ("[[fault:slow:9]]", "teacher_unavailable", 2),
    "bad_request": ("[[fault:400:9]]", "teacher_request_rejected", 0),
    "bad_json_once": ("[[fault:badjson:1]]", None, 0),
    "never_json": ("[[fault:badjson:9]]", "teacher_invalid_output", 0),
    "truncated_once": ("[[fault:length:1]]", None, 0),
    "always_truncated": ("[[fault:length:9]]", "teacher_invalid_output", 0),
}


def test_every_fault_ends_done_or_failed_with_its_reason_and_counts_match_the_server(tmp_path):
    with FakeTeacherServer(slow_s=2.0) as server:
        client = TeacherClient(config(server), tmp_path / "cache")
        names = list(FAULTS)
        results = client.complete_all([call(f"item {n} {FAULTS[n][0]}", item=n) for n in names])
        by_name = dict(zip(names, results))
        for name, (_, reason, retries) in FAULTS.items():
            r = by_name[name]
            assert r.ok == (reason is None), (name, r.reason, r.error)
            assert r.reason == reason, name
            assert r.usage.retries == retries, name
            assert r.usage.status == ("ok" if reason is None else "failed")
        # What the client accounted for is what the server saw, request by request.
        assert sum(r.usage.requests for r in results) == server.requests
        assert by_name["always_slow"].usage.requests == 3  # 1 + max_retries
        assert by_name["bad_request"].usage.requests == 1  # a 400 is not retried
        assert by_name["never_json"].usage.repaired and by_name["never_json"].usage.requests == 2
        assert "not valid JSON" in by_name["never_json"].error or "no JSON object" in by_name["never_json"].error
        assert "{not json" in by_name["never_json"].raw_reply
        assert "finish_reason=length" in by_name["always_truncated"].error
        assert by_name["bad_json_once"].value.answer == "item bad_json_once"
        # The repair request shows the teacher its error.
        repair = [b for b in server.bodies if len(b["messages"]) == 3 and "bad_json_once" in b["messages"][0]["content"]]
        assert repair and "cannot be used" in repair[0]["messages"][2]["content"]


def test_retry_after_is_honoured(tmp_path):
    with FakeTeacherServer(retry_after="1") as server:
        client = TeacherClient(config(server), tmp_path / "cache")
        started = time.monotonic()
        [result] = client.complete_all([call("wait for me [[fault:429:2]]")])
        assert result.ok and result.usage.retries == 2
        assert time.monotonic() - started >= 2.0  # two Retry-After: 1 waits, not the 0.05 s back-off


def test_cache_replays_accepted_replies_and_never_failures(tmp_path):
    with FakeTeacherServer() as server:
        calls = [call("alpha"), call("beta [[fault:badjson:1]]"), call("gamma [[fault:badjson:9]]")]
        first = TeacherClient(config(server), tmp_path / "cache").complete_all(calls)
        assert [r.ok for r in first] == [True, True, False]
        sent = server.requests
        second = TeacherClient(config(server), tmp_path / "cache").complete_all(calls)
        # Only the failed item is asked again (twice: request + repair); the others are cache hits.
        assert server.requests - sent == 2
        assert [r.usage.cached for r in second] == [True, True, False]
        assert [r.value for r in second[:2]] == [r.value for r in first[:2]]
        assert [r.cache_key for r in second] == [r.cache_key for r in first]
        assert len(ReplyCache(tmp_path / "cache")) == 2


def test_cache_key_depends_on_model_prompt_version_and_params_not_on_the_address(tmp_path):
    with FakeTeacherServer() as a, FakeTeacherServer() as b:
        key = lambda server, **kw: TeacherClient(config(server, **kw), tmp_path / "c").complete_all([call("same")])[0].cache_key
        assert key(a) == key(b)  # another port, same reply
        assert key(a) != key(a, temperature=0.7)
        assert key(a) != key(a, endpoint={"model": "other-model"})
        other_version = TeacherClient(config(a), tmp_path / "c").complete_all([TeacherCall("test", "x", [{"role": "user", "content": "same"}], Echo, "echo.v2", 50)])
        assert other_version[0].cache_key != key(a)


def test_identical_calls_in_flight_are_sent_once(tmp_path):
    with FakeTeacherServer(latency_s=0.3) as server:
        results = TeacherClient(config(server), tmp_path / "cache").complete_all([call("twin", item="a"), call("twin", item="b")])
        assert server.requests == 1
        assert all(r.ok for r in results)
        assert sorted(r.usage.cached for r in results) == [False, True]


def test_concurrency_is_bounded_across_threads(tmp_path):
    import concurrent.futures

    with FakeTeacherServer(latency_s=0.2) as server:
        client = TeacherClient(config(server, concurrency=3), tmp_path / "cache")
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # like the runner's I/O threads
            batches = list(pool.map(lambda k: client.complete_all([call(f"t{k}-{i}") for i in range(5)]), range(4)))
        assert all(r.ok for batch in batches for r in batch)
        assert server.max_in_flight == 3


def test_budget_stops_cleanly_and_the_rest_is_done_later_from_the_cache(tmp_path):
    with FakeTeacherServer() as server:
        calls = [call(f"budget item {i}") for i in range(6)]
        limited = TeacherClient(config(server, concurrency=1, budget={"max_requests": 3}), tmp_path / "cache")
        first = limited.complete_all(calls)
        assert sum(r.ok for r in first) == 3
        assert {r.reason for r in first if not r.ok} == {"teacher_budget_exhausted"}
        assert server.requests == 3
        later = TeacherClient(config(server, concurrency=1), tmp_path / "cache").complete_all(calls)
        assert all(r.ok for r in later) and server.requests == 6  # only the 3 missing ones were sent


def test_token_budget(tmp_path):
    with FakeTeacherServer() as server:
        client = TeacherClient(config(server, concurrency=1, budget={"max_tokens": 1}), tmp_path / "cache")
        results = client.complete_all([call("one"), call("two")])
        assert [r.ok for r in results] == [True, False] and results[1].reason == "teacher_budget_exhausted"


def test_structured_output_modes_send_what_each_server_understands(tmp_path):
    with FakeTeacherServer() as server:
        for mode in ("json_schema", "json_object_schema", "text"):
            result = TeacherClient(config(server, endpoint={"structured_output": mode}), tmp_path / mode).complete_all([call(f"mode {mode}")])[0]
            assert result.ok, result.error
        js, jo, text = server.bodies
        assert js["response_format"]["type"] == "json_schema" and js["response_format"]["json_schema"]["schema"] == inline_schema(Echo)
        assert jo["response_format"] == {"type": "json_object", "schema": inline_schema(Echo)}
        assert "response_format" not in text and "JSON schema" in text["messages"][-1]["content"]


def test_api_key_comes_from_the_environment_and_is_never_stored(tmp_path, monkeypatch):
    secret = "sk-test-SECRET123"
    monkeypatch.setenv("VSTW_TEST_KEY", secret)
    with FakeTeacherServer() as server:
        client = TeacherClient(config(server, endpoint={"api_key_env": "VSTW_TEST_KEY"}), tmp_path / "cache")
        assert client.complete_all([call("keyed")])[0].ok
        assert f"Bearer {secret}" in server.authorizations
        for path in (tmp_path / "cache").rglob("*"):
            if path.is_file():
                assert secret not in path.read_text()
        monkeypatch.delenv("VSTW_TEST_KEY")
        missing = TeacherClient(config(server, endpoint={"api_key_env": "VSTW_TEST_KEY"}), tmp_path / "cache2").complete_all([call("x")])[0]
        assert missing.reason == "teacher_config_error" and "VSTW_TEST_KEY" in missing.error and secret not in missing.error


def test_a_pasted_key_is_refused_in_the_recipe_without_echoing_it():
    from pipelines.recipe import RecipeError, parse_recipe

    with pytest.raises(ValidationError, match="NAME of an environment variable"):
        EndpointConfig(base_url="https://api.openai.com/v1", model="gpt-4o", api_key_env="sk-proj-abc123")
    data = {"name": "r", "inputs": [{"glob": "x/*.mp4"}], "stages": [{"stage": "ingest"}],
            "teacher": {"text": {"base_url": "https://api.openai.com/v1", "model": "gpt-4o", "api_key_env": "sk-proj-abc123"}}}  # fmt: skip
    with pytest.raises(RecipeError, match="teacher.text: api_key_env must be the NAME") as err:
        parse_recipe(data)
    assert "abc123" not in str(err.value)


def test_parse_reply_rules():
    assert parse_reply('```json\n{"answer": "x"}\n```', "stop", Echo).answer == "x"
    with pytest.raises(InvalidReply, match="finish_reason=length"):
        parse_reply('{"answer": "x"}', "length", Echo)
    with pytest.raises(InvalidReply, match="does not fit"):
        parse_reply('{"other": 1}', "stop", Echo)


def test_prompts_are_versioned_files():
    prompt = load_prompt("think.v1")
    assert prompt.version == "think.v1" and "$memory" in prompt.user
    with pytest.raises(PromptError, match="known prompts: .*graph.v1"):
        load_prompt("think.v99")
    with pytest.raises(PromptError, match=r"think.v1: no value for \$"):
        prompt.messages(caption="x")


def _facts(clip_id, start, *names, relations=()):
    return ClipFacts(clip_id, start, ClipExtraction.model_validate({
        "entities": [{"name": n, "type": "object", "attributes": [n.split()[0]]} for n in names],
        "relations": [{"subject": s, "predicate": p, "object": o} for s, p, o in relations],
    }))  # fmt: skip


def test_graph_merge_is_deterministic_and_dedups_names():
    assert normalize_name("The Red  Triangles.") == "red triangle"
    clips = [
        _facts("c0", 0.0, "red circle", "Blue square", relations=[("red circle", "left of", "blue square")]),
        _facts("c1", 5.0, "the red circle", "green triangle", relations=[("ghost", "eats", "red circle")]),
        _facts("c2", 9.0, "Green Triangles"),
    ]
    entities, relations = merge_graph(clips)
    assert merge_graph(list(reversed(clips))) == (entities, relations)  # order of replies does not matter
    by_name = {e["name"]: e for e in entities}
    assert list(by_name) == ["blue square", "red circle", "green triangle"]
    assert by_name["red circle"]["clip_ids"] == ["c0", "c1"] and by_name["red circle"]["first_seen_s"] == 0.0
    assert by_name["green triangle"]["clip_ids"] == ["c1", "c2"] and by_name["green triangle"]["first_clip_id"] == "c1"
    assert len(relations) == 1 and relations[0]["predicate"] == "left_of"  # the 'ghost' relation is ungrounded
    assert relations[0]["object"] == by_name["blue square"]["entity_id"]


def test_template_questions_need_two_clips_and_answer_from_the_graph():
    entities, _ = merge_graph([_facts("c0", 0.0, "red circle"), _facts("c1", 4.0, "blue square"), _facts("c2", 8.0, "green triangle")])
    questions = {q.template: q for q in template_questions(entities, seed="w1")}
    assert set(questions) == {"count_entities", "first_appearance", "appeared_before"}
    assert questions["count_entities"].answer == "3"
    mc = questions["first_appearance"]
    assert 2 <= len(mc.options) <= 4 and mc.options[0].startswith("A. ")
    assert mc.options["ABCDE".index(mc.answer)].endswith(mc.details["answer_entity"])
    assert mc.details["answer_entity"] == "red circle"
    yn = questions["appeared_before"]
    order = {"red circle": 0, "blue square": 1, "green triangle": 2}
    assert yn.answer == ("Yes" if order[yn.details["first"]] < order[yn.details["second"]] else "No")
    assert all(len(set(q.evidence_clip_ids)) >= 2 for q in questions.values())
    # A single clip supports no question.
    one, _ = merge_graph([_facts("c0", 0.0, "red circle", "blue square")])
    assert template_questions(one, seed="w") == []
