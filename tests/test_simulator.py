"""The simulated teacher: faithful replies to the workbench's own prompts (built by the real stage
functions), each mistake kind injected alone and logged, determinism, the real client over HTTP,
and `vstw teacher simulate` as a background process on 127.0.0.1."""

from __future__ import annotations

import json
import re
import urllib.request
from types import SimpleNamespace

import psutil
import pytest
from typer.testing import CliRunner

from curation.graph import normalize_name, template_questions
from curation.synthetic import ground_truth, make_script
from curation.teacher import TeacherClient, TeacherConfig
from curation.teacher.simulator import KINDS, QA_KINDS, TeacherSimulator, graph_reply, named_objects, solve
from curation.teacher.structured import InvalidReply, parse_reply, response_format
from curation.verify import map_back, normalize_answer
from pipelines.stages.graph import GraphParams, extraction_call, graph_window
from pipelines.stages.perceive import annotation_caption
from pipelines.stages.qa import QAParams, qa_call
from pipelines.stages.think import ThinkParams, thought_call
from pipelines.stages.verify import VerifyParams, answer_calls
from pipelines.teacher_sim import SimulatedTeacherServer

# ---- building the stages' own requests ---------------------------------------------------------------
HAND = [  # one scene of a synthetic world, cut into 4 clips (annotation overlap, as perceive does)
    "Scene 1: a plain navy background. A red circle appears and moves left.",
    "A red circle appears and moves left. A blue square appears and moves up.",
    "A red circle appears and moves left. The red circle disappears. A blue square appears and moves up.",
    "Scene 2: a plain olive background. A green triangle appears and moves right.",
]


def window_of(video_id: str, captions: list[str], clip_s: float = 3.0) -> dict:
    clips = [{"clip_id": f"{video_id}-c{i:04d}", "start_s": i * clip_s, "end_s": (i + 1) * clip_s, "caption": c, "caption_status": "ok"}
             for i, c in enumerate(captions)]  # fmt: skip
    return {"window_id": f"{video_id}-w000", "video_id": video_id, "start_s": 0.0, "end_s": len(captions) * clip_s, "clips": clips}


def synthetic_window(seed: int) -> dict:
    """A real synthetic world's clips, captioned from its ground truth by the perceive stage's rule."""
    truth = ground_truth(make_script(f"world-{seed}", seed=seed, n_scenes=3, scene_s=(5.0, 9.0)))
    video_id, captions, t = f"synthetic-{seed}", [], 0.0
    while t < truth["duration_s"] - 0.5:
        end = min(t + 2.5, truth["duration_s"])
        row = annotation_caption({"clip_id": "x", "video_id": video_id, "window_id": "w", "start_s": t, "end_s": end, "annotations": truth["events"]})
        captions.append(row["caption"])
        t = end
    return window_of(video_id, captions, 2.5)


def body(call, mode: str = "json_schema") -> dict:
    """The request the client sends for a call (messages + response_format)."""
    fmt = response_format(mode, call.output)
    return {"model": "simulated-teacher", "messages": call.messages, "max_tokens": call.max_tokens, **({"response_format": fmt} if fmt else {})}


def ask(sim: TeacherSimulator, call, mode: str = "json_schema"):
    return sim.reply(body(call, mode), f"{call.stage}/{call.item_id}")


def accept(reply, call):
    """The stage's own validation of a reply (schema + the call's check); raises InvalidReply."""
    return parse_reply(reply.content, reply.finish_reason, call.output, call.check)


def build_graph(sim: TeacherSimulator, window: dict) -> dict:
    calls = [extraction_call(c, GraphParams()) for c in window["clips"]]
    results = []
    for call in calls:
        reply = ask(sim, call)
        value = accept(reply, call) if reply.injection is None else parse_reply(json.dumps(graph_reply(call.messages[-1]["content"])), "stop", call.output)
        results.append(SimpleNamespace(ok=True, value=value, model="simulated-teacher", cache_key=call.item_id))
    row = graph_window(window, results, GraphParams())
    assert row["status"] == "ok", row
    window["graph"] = row  # what think's thought_call reads
    return row


def think_chain(sim: TeacherSimulator, window: dict, upto: int | None = None) -> tuple[list[str], list]:
    """Faithful thoughts clip by clip (the memory as the think stage builds it), up to clip `upto`."""
    thoughts, memory = [], []
    for k, clip in enumerate(window["clips"][: upto if upto is not None else len(window["clips"])]):
        call, _ = thought_call(window, k, memory, ThinkParams())
        value = accept(ask(sim, call), call)
        thoughts.append(value.thought)
        memory.append(f"Time={clip['start_s']:.1f}-{clip['end_s']:.1f}s {value.thought}")
    return thoughts, memory


def reanswer(sim: TeacherSimulator, window: dict, qa: dict, chain_id: str = "ch-x") -> list[str | None]:
    """The verify stage's k calls for a question, answered; letters mapped back to the stored order."""
    record = {"chain_id": chain_id, "chain": {"chain_id": chain_id, "window_id": window["window_id"], "end_s": window["end_s"], "qa": qa},
              "clips": [{k: c[k] for k in ("clip_id", "start_s", "end_s", "caption")} for c in window["clips"]]}  # fmt: skip
    calls, orders, shown = answer_calls(record, VerifyParams(samples=3))
    out = []
    for call, order, options in zip(calls, orders, shown):
        got = normalize_answer(accept(ask(sim, call), call).answer, qa["type"], options)
        out.append(map_back(got, order) if qa["type"] == "multiple_choice" else got)
    return out


# ---- faithful ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["json_schema", "text"])
def test_faithful_replies_pass_every_stage_check_and_their_answers_are_right(mode):
    sim = TeacherSimulator(rate=0.0)
    windows = [window_of("hand", HAND)] + [synthetic_window(s) for s in range(4)]
    asked = 0
    for window in windows:
        captions = [c["caption"] for c in window["clips"]]
        graph = build_graph(sim, window)
        assert {e["name"] for e in graph["entities"]} == set(named_objects(" ".join(captions)))
        assert not graph["dropped_entities"]
        # qa (teacher mode): every type passes check_qa, and the oracle over the captions agrees
        for qa_type in ("multiple_choice", "numerical", "yes_no"):
            call = qa_call(graph, qa_type, QAParams(mode="teacher"))
            reply = ask(sim, call, mode)
            value = accept(reply, call)
            assert solve(value.question, value.options, captions) == value.answer, (window["window_id"], value)
            qa = {"type": qa_type, "question": value.question, "options": value.options, "answer": value.answer}
            assert reanswer(sim, window, qa) == [value.answer] * 3
            asked += 1
        # the template questions: the oracle and the verify re-answers agree with the graph
        for q in template_questions(graph["entities"], seed=window["window_id"]):
            assert solve(q.question, q.options, captions) == q.answer, q
            assert reanswer(sim, window, {"type": q.type, "question": q.question, "options": q.options, "answer": q.answer}) == [q.answer] * 3
        # think: every thought passes the stage's check (names what is new, nothing later, short)
        thoughts, _ = think_chain(sim, window)
        for k, (clip, thought) in enumerate(zip(window["clips"], thoughts)):
            assert re.fullmatch(r"[A-Z][A-Za-z0-9 ,;:'()-]+[.!]", thought)
            named = set(named_objects(thought))
            assert named <= set(named_objects(" ".join(captions[: k + 1]))), (thought, captions[: k + 1])
        assert all(a != b for a, b in zip(thoughts, thoughts[1:])), "consecutive thoughts differ"
    assert asked == 3 * len(windows)
    assert sim.injected == {} and sim.requests["graph"] > 0 and sim.requests["verify"] > 0


def test_faithful_thoughts_tell_the_new_event_and_the_graph_reply_follows_the_brief():
    sim = TeacherSimulator(rate=0.0)
    window = window_of("hand", HAND)
    build_graph(sim, window)
    thoughts, _ = think_chain(sim, window)
    assert thoughts[0] == "A red circle appears and moves left."
    assert thoughts[1] == "A blue square appears and moves up."
    assert "red circle disappears" in thoughts[2]
    assert thoughts[3] == "A green triangle appears and moves right."
    assert graph_reply(HAND[2]) == {
        "entities": [{"name": "red circle", "type": "object", "attributes": ["red"]}, {"name": "blue square", "type": "object", "attributes": ["blue"]}],
        "relations": [{"subject": "red circle", "predicate": "moves left", "object": "screen"},
                      {"subject": "red circle", "predicate": "disappears", "object": "scene"},
                      {"subject": "blue square", "predicate": "moves up", "object": "screen"}],
    }  # fmt: skip


def test_solve_reads_the_template_forms_and_refuses_what_it_cannot_know():
    caps = HAND
    assert solve("How many different objects have appeared in the video so far?", [], caps) == "3"
    assert solve("Which of these appeared first in the video?", ["A. blue square", "B. red circle"], caps) == "B"
    assert solve("Did the green triangle appear before the blue square?", [], caps) == "No"
    assert solve("Was the blue square seen after the red circle?", [], caps) == "Yes"
    assert solve("Which of these moved up?", ["red circle", "The blue square.", "green triangle"], caps) == "B"
    assert solve("How many of the shapes have disappeared so far?", [], caps) == "1"
    assert solve("Has a magenta triangle been seen so far?", [], caps) == "No"
    assert solve("How many different people have appeared in the video so far?", [], caps) is None
    assert solve("What colour is the sky?", [], caps) is None
    # first named in the same clip: their order is unknown
    assert solve("Which of these was the first to appear?", ["red circle", "blue square"], ["A red circle appears and moves up. A blue square appears and moves up."]) is None


# ---- each mistake, alone ----------------------------------------------------------------------------
def post(server: SimulatedTeacherServer, call, mode: str = "json_schema") -> dict:
    request = urllib.request.Request(f"{server.base_url}/chat/completions", data=json.dumps(body(call, mode)).encode(),
                                     headers={"Content-Type": "application/json", "X-Vstw-Item": f"{call.stage}/{call.item_id}"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def think_target(kind: str):
    """The think call a kind is injected into: clip 1 of the hand world (clip 2 for a repeat)."""
    return 2 if kind == "reworded_repeat" else 1


QA_TYPE = {"wrong_answer": "multiple_choice", "wrong_count": "numerical", "answer_leaked": "numerical", "duplicate_options": "multiple_choice"}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_alone_at_rate_one_makes_its_mistake_and_logs_it(kind, tmp_path):
    window = window_of("hand", HAND)
    captions = HAND
    log = tmp_path / "injections.jsonl"
    with SimulatedTeacherServer(rate=1.0, kinds=[kind], seed=3, log_path=log) as server:
        graph = build_graph(server.simulator, window)  # teaches the server the whole video (in process)
        server.simulator.injected.clear()
        if kind in QA_KINDS:
            call = qa_call(graph, QA_TYPE[kind], QAParams(mode="teacher"))
        else:
            k = think_target(kind)
            _, memory = think_chain(TeacherSimulator(rate=0.0), window, upto=k)  # a faithful memory so far
            call, _ = thought_call(window, k, memory, ThinkParams())
        reply = post(server, call)
        content, finish = reply["choices"][0]["message"]["content"], reply["choices"][0]["finish_reason"]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 1 and server.injections == records
    record = records[0]
    assert record["kind"] == kind and record["item"] == f"{call.stage}/{call.item_id}" and record["stage"] == call.stage
    assert set(record) == {"kind", "stage", "item", "text", "answer", "detail"}

    if kind == "truncation":
        assert finish == "length" and record["text"] == content
        with pytest.raises(InvalidReply):
            parse_reply(content, finish, call.output)
        return
    if kind == "broken_json":
        with pytest.raises(InvalidReply, match="JSON"):
            parse_reply(content, finish, call.output)
        return
    data = json.loads(content)
    if kind in QA_KINDS:
        truth = solve(data["question"], data["options"], captions)
        assert record["text"] == data["question"] and record["answer"] == data["answer"]
        if kind == "wrong_answer":
            assert solve(data["question"], data["options"], captions) != data["answer"] and data["answer"] in "ABCDE"
        elif kind == "wrong_count":
            assert abs(int(data["answer"]) - int(truth)) in (1, 2) and int(data["answer"]) >= 0
        elif kind == "answer_leaked":
            assert data["answer"] == truth and re.search(rf"\b{truth}\b", data["question"])
        elif kind == "duplicate_options":
            keys = [normalize_name(o) for o in data["options"]]
            assert len(set(keys)) < len(keys)
            accept(SimpleNamespace(content=content, finish_reason=finish), call)  # the qa stage lets it through
        return
    thought = data["thought"]
    assert record["text"] == " ".join(thought.split()) and record["answer"] is None
    names = set(named_objects(thought))
    if kind == "hallucinated_entity":
        assert names - set(named_objects(" ".join(captions))), thought
    elif kind == "wrong_attribute":
        assert re.search(r"\b(?!blue)\w+ square\b", thought) or re.search(r"blue square .*moves (left|right|down)", thought), thought
    elif kind == "future_entity":
        assert "green triangle" in names
        with pytest.raises(InvalidReply, match="green triangle"):
            call.check(call.output.model_validate(data))  # the think stage refuses it (causality)
    elif kind == "future_event":
        assert "red circle disappears" in thought
    elif kind == "early_answer":
        assert re.search(r"answer|\\boxed|so far", thought, re.IGNORECASE)
    elif kind == "prompt_echo":
        assert re.match(r"(New in this clip|Current clip|What is new in the current clip): ", thought)
    elif kind == "reworded_repeat":
        previous = record["detail"]["previous"]
        assert previous == "A blue square appears and moves up." and thought != previous and names == {"blue square"}
    elif kind == "missing_thought":
        assert thought.strip(" .") in ("", "Nothing", "None")
    elif kind == "language_drift":
        assert not re.search(r"\b(appears|moves|circle|square|keeps)\b", thought) and thought
    else:  # pragma: no cover
        raise AssertionError(kind)


def test_future_entity_without_the_future_falls_back_to_a_logged_hallucination():
    sim = TeacherSimulator(rate=1.0, kinds=["future_entity"])
    window = window_of("unseen", HAND)  # no graph prompt reached this simulator: the future is unknown
    build_graph(TeacherSimulator(), window)
    call, _ = thought_call(window, 0, [], ThinkParams())
    reply = ask(sim, call)
    assert reply.injection.kind == "hallucinated_entity" and reply.injection.detail["fallback_from"] == "future_entity"
    assert set(named_objects(reply.injection.text)) - set(named_objects(" ".join(HAND)))


def test_a_long_video_showing_every_colour_and_shape():
    """18 clips, each with one more of the 18 colour-shapes: a count needs more evidence clips than
    the reply schema allows (the question is not asked), and a hallucination must leave the worlds'
    own names."""
    combos = [f"{c} {s}" for c in ("red", "green", "blue", "yellow", "white", "magenta") for s in ("circle", "square", "triangle")]
    window = window_of("long", [f"Scene {i + 1}: a plain grey background. A {n} appears and moves up." for i, n in enumerate(combos)])
    sim = TeacherSimulator(rate=0.0)
    graph = build_graph(sim, window)
    for qa_type in ("multiple_choice", "numerical", "yes_no"):
        call = qa_call(graph, qa_type, QAParams(mode="teacher"))
        value = accept(ask(sim, call), call)
        assert len(value.evidence_clip_ids) <= 10
        assert solve(value.question, value.options, [c["caption"] for c in window["clips"]]) == value.answer
    sim.rate, sim.kinds = 1.0, ("hallucinated_entity",)
    call, _ = thought_call(window, 3, [], ThinkParams())
    reply = ask(sim, call)
    assert reply.injection.kind == "hallucinated_entity" and reply.injection.detail["entity"] not in combos


def test_kinds_that_do_not_apply_are_never_forced():
    sim = TeacherSimulator(rate=1.0, kinds=["reworded_repeat", "wrong_count"])
    window = window_of("hand", HAND)
    window["graph"] = build_graph(sim, window)
    call, _ = thought_call(window, 0, [], ThinkParams())  # no memory: nothing to repeat
    assert ask(sim, call).injection is None
    mc = qa_call(window["graph"], "multiple_choice", QAParams(mode="teacher"))  # no count to get wrong
    assert ask(sim, mc).injection is None
    with pytest.raises(ValueError, match="unknown mistake kinds"):
        TeacherSimulator(kinds=["typo"])


# ---- determinism, repairs ------------------------------------------------------------------------------
def _injections(seed: int, rate: float) -> list[tuple]:
    sim = TeacherSimulator(rate=rate, seed=seed)
    out = []
    for v in range(8):
        window = window_of(f"vid{v}", HAND)
        window["graph"] = build_graph(sim, window)
        for t in ("multiple_choice", "numerical", "yes_no"):
            r = ask(sim, qa_call(window["graph"], t, QAParams(mode="teacher")))
            out.append((f"qa/{v}/{t}", r.injection.kind if r.injection else None, r.content))
        memory = []
        for k, clip in enumerate(window["clips"]):
            call, _ = thought_call(window, k, memory, ThinkParams())
            r = ask(sim, call)
            out.append((call.item_id, r.injection.kind if r.injection else None, r.content))
            memory.append(f"Time={clip['start_s']:.1f}-{clip['end_s']:.1f}s {json.loads(TeacherSimulator().reply(body(call), None).content)['thought']}")
    return out


def test_same_seed_same_injections_and_the_rate_is_kept():
    a, b, c = _injections(7, 0.4), _injections(7, 0.4), _injections(8, 0.4)
    assert a == b
    assert a != c
    hit = sum(1 for _, kind, _ in a if kind)
    assert 0.2 * len(a) <= hit <= 0.6 * len(a), hit
    assert len({kind for _, kind, _ in a if kind}) >= 5
    assert all(kind is None for _, kind, _ in _injections(7, 0.0))


def test_a_repair_request_gets_a_faithful_reply():
    sim = TeacherSimulator(rate=1.0, kinds=["missing_thought"])
    window = window_of("hand", HAND)
    window["graph"] = build_graph(sim, window)
    call, _ = thought_call(window, 0, [], ThinkParams())
    first = ask(sim, call)
    assert first.injection is not None
    repair = body(call)
    repair["messages"] = [*repair["messages"], {"role": "assistant", "content": first.content}, {"role": "user", "content": "Your reply above cannot be used."}]
    second = sim.reply(repair, f"think/{call.item_id}")
    assert second.injection is None
    assert json.loads(second.content)["thought"] == "A red circle appears and moves left."
    assert sim.requests["think"] == 2


# ---- over HTTP with the real client -------------------------------------------------------------------
def client_config(server: SimulatedTeacherServer) -> TeacherConfig:
    endpoint = {"base_url": server.base_url, "model": "simulated-teacher", "structured_output": "json_schema"}
    return TeacherConfig.model_validate({"text": endpoint, "timeout_s": 5, "max_retries": 1, "backoff_initial_s": 0.05, "concurrency": 4})


def test_the_real_client_gets_faithful_replies_and_a_repaired_mistake(tmp_path):
    window = window_of("hand", HAND)
    log = tmp_path / "log.jsonl"
    with SimulatedTeacherServer(rate=1.0, kinds=["broken_json"], seed=1, log_path=log) as server:
        client = TeacherClient(client_config(server), tmp_path / "cache")
        graph_calls = [extraction_call(c, GraphParams()) for c in window["clips"]]
        results = client.complete_all(graph_calls)
        assert all(r.ok for r in results), [r.error for r in results]
        assert all(r.usage.repaired for r in results)  # broken JSON first, the repair is faithful
        assert [r.value.model_dump() for r in results] == [graph_reply(c) for c in HAND]
        window["graph"] = graph_window(window, results, GraphParams())
        call, _ = thought_call(window, 0, [], ThinkParams())
        thought = client.complete_all([call])[0]
        assert thought.ok and thought.value.thought == "A red circle appears and moves left." and thought.usage.repaired
        stats = json.loads(urllib.request.urlopen(f"{server.base_url}/simulator/stats", timeout=5).read())
    assert stats["requests_by_stage"] == {"graph": 8, "think": 2}
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    # the graph calls run concurrently: their log lines come in any order
    assert sorted(x["item"] for x in lines) == sorted([f"graph/{c['clip_id']}" for c in window["clips"]] + [f"think/{call.item_id}"])
    assert {x["kind"] for x in lines} == {"broken_json"}


# ---- vstw teacher simulate ----------------------------------------------------------------------------
def test_cli_starts_a_background_simulator_and_stops_it(tmp_path, monkeypatch):
    from pipelines.cli import app
    from pipelines.teacher_sim import read_simulator_state

    monkeypatch.setenv("VSTW_HOME", str(tmp_path))
    runner = CliRunner()
    bad = runner.invoke(app, ["teacher", "simulate", "--kinds", "typo"])
    assert bad.exit_code == 2 and "unknown mistake kinds" in bad.output
    started = runner.invoke(app, ["teacher", "simulate", "--port", "0", "--rate", "1", "--kinds", "prompt_echo", "--seed", "2", "--log", str(tmp_path / "m.jsonl")])
    assert started.exit_code == 0, started.output
    info = read_simulator_state(tmp_path)
    try:
        assert info is not None and info.base_url in started.output
        window = window_of("cli", HAND)
        window["graph"] = build_graph(TeacherSimulator(), window)
        call, _ = thought_call(window, 0, [], ThinkParams())
        reply = post(SimpleNamespace(base_url=info.base_url), call)
        assert reply["choices"][0]["message"]["content"].startswith('{"thought": "') and "clip" in reply["choices"][0]["message"]["content"]
        again = runner.invoke(app, ["teacher", "simulate"])
        assert again.exit_code == 2 and "already runs" in again.output
    finally:
        stopped = runner.invoke(app, ["teacher", "simulate", "--stop"])
    assert stopped.exit_code == 0 and f"pid {info.pid}" in stopped.output
    assert not psutil.pid_exists(info.pid) or psutil.Process(info.pid).status() == psutil.STATUS_ZOMBIE
    assert read_simulator_state(tmp_path) is None
    assert json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])["kind"] == "prompt_echo"


def test_item_ids_go_only_to_teacher_servers_on_this_machine():
    """The X-Vstw-Item header names videos: a remote API never receives it."""
    from curation.teacher.client import is_loopback

    assert is_loopback("http://127.0.0.1:8000/v1") and is_loopback("http://localhost:1234/v1") and is_loopback("http://[::1]:80/v1")
    assert not is_loopback("https://api.openai.com/v1") and not is_loopback("http://10.0.0.5:8000/v1") and not is_loopback("http://gpu-host:8000/v1")


@pytest.mark.parametrize("kind", ["hallucinated_entity", "early_answer", "prompt_echo", "reworded_repeat", "missing_thought", "language_drift"])
def test_heldout_wordings_make_the_same_mistake_in_other_words(kind):
    """`wordings="heldout"`: the mistake is made and logged, in words the seen set never uses."""
    window = window_of("hand", HAND)
    texts = {}
    for wordings in ("seen", "heldout"):
        sim = TeacherSimulator(rate=1.0, kinds=[kind], seed=3, wordings=wordings)
        build_graph(sim, window)  # teaches the simulator the whole video
        k = think_target(kind)
        _, memory = think_chain(TeacherSimulator(rate=0.0), window, upto=k)
        call, _ = thought_call(window, k, memory, ThinkParams())
        reply = ask(sim, call)
        assert reply.injection is not None and reply.injection.kind == kind
        texts[wordings] = json.loads(reply.content)["thought"]
    assert texts["seen"] != texts["heldout"]
    with pytest.raises(ValueError):
        TeacherSimulator(wordings="other")
