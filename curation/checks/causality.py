"""causality: a streaming thought knows only the clips seen so far.

A thought must not
- name a thing the window (graph or captions) first shows in a later clip (`thought_leaks_future`),
  whether it names it in its text ("two red circles", "the kids") or in its `entities` field;
  a thing first seen in an EARLIER clip is memory, not a leak;
- tell an event about a thing (its multi-word predicate: `moves_left` = "moves left", "is moving
  left", "moved to the left"; `disappears` = "vanishes", "leaves the screen") that the window
  first places in a later clip (`thought_leaks_future_event`);
- give the future away by time words: "in 5 seconds", "later the ...", "soon", "will appear",
  "is about to", "next clip" (`thought_leaks_future_time`; videollm-online filters these);
- give the answer before the question is asked (`answer_before_question`): "the answer is B",
  "\\boxed{Yes}", "final answer: 2", "which answers the question", "I can already tell the answer".
"""

from __future__ import annotations

from pydantic import Field

from curation.checks.base import CheckConfig, Issue, verdict
from curation.checks.graph_index import GraphIndex
from curation.checks.text import Prefilter, compile_patterns

ANSWER_PATTERNS = [
    r"\\boxed",
    r"\b(?:the|my|our|final|correct|right) (?:correct |final |right )?answer\b",  # "the answer is", "I can tell the answer"
    r"\banswer\s*(?:is|:|=|must be|would be|should be|will be)",
    r"\banswers? (?:to )?(?:the|this|that|our) question\b",  # "which answers the question"
    r"\b(?:the|this) question\b",  # thoughts are written without the question: naming it is answer talk
    r"\b(?:option|choice) \(?[A-E]\)?(?:\W|$)",
]
FUTURE_TIME_PATTERNS = [
    r"\bin (?:about |another |the next )?(?:\d+(?:\.\d+)?|a few|few|several|a couple of|two|three|four|five|six|seven|eight|nine|ten) ?(?:more )?(?:s|sec|secs|seconds?|minutes?|mins?|moments?)\b",
    r"\bin (?:\d+|a few|several|two|three|four|five) more (?:clips?|frames?|scenes?)\b",
    r"\blater\b(?! than)",
    r"\bsoon\b",
    r"\b(?:will|'ll|is going to|are going to|is about to|are about to|about to)\s+(?:\w+\s+)?(?:appear|move|disappear|vanish|enter|leave|come|show|turn|return|reappear|be|get|go|change|stop|join|arrive|exit|fade|happen)",
    r"\b(?:next|following|upcoming|coming|subsequent) (?:clip|scene|segment|frames?|seconds?|moments?|part)\b",
    r"\bin the (?:next|coming|following) \w+",
    r"\beventually\b",
    r"\bshortly\b",
    r"\bin a (?:moment|bit|while|second|minute)\b",
    r"\bbefore long\b",
    r"\bafterwards?\b",
]


# What every match of the default lists contains (a cheap prefilter; see text.Prefilter).
ANSWER_PREFILTER = Prefilter(frozenset("boxed answer answers question option choice".split()))
FUTURE_TIME_PREFILTER = Prefilter(
    frozenset(
        "later soon will ll going about next following upcoming coming subsequent eventually shortly long afterward "
        "afterwards s sec secs second seconds minute minutes min mins moment moments more bit".split()
    ),
    unit_numbers=True,  # "in 5s"
    phrases=("in a while",),  # "while" alone is too common to prefilter on
)


class CausalityConfig(CheckConfig):
    answer_patterns: list[str] = Field(
        default_factory=lambda: list(ANSWER_PATTERNS),
        description="regular expressions (case-insensitive) that reveal an answer inside a thought",
    )
    future_time_patterns: list[str] = Field(
        default_factory=lambda: list(FUTURE_TIME_PATTERNS),
        description="regular expressions (case-insensitive) of time words that give the future away",
    )


def thought_position(thought: dict, i: int, index: GraphIndex | None) -> int:
    if index is not None and thought.get("clip_id") in index.clip_order:
        return index.clip_order[thought["clip_id"]]
    return i


def check_causality(chain: dict, index: GraphIndex | None, cfg: CausalityConfig = CausalityConfig()) -> dict:
    chain_id = chain["chain_id"]
    answer_re = compile_patterns(tuple(cfg.answer_patterns), tuple(ANSWER_PATTERNS), ANSWER_PREFILTER)
    time_re = compile_patterns(tuple(cfg.future_time_patterns), tuple(FUTURE_TIME_PATTERNS), FUTURE_TIME_PREFILTER)
    issues: list[Issue] = []
    for i, t in enumerate(chain.get("thoughts") or []):
        text = t.get("text") if isinstance(t.get("text"), str) else ""
        where = {"thought": i}
        hit = answer_re.search(text)
        if hit:
            issues.append(Issue("answer_before_question", f"thought {i} gives an answer ({hit.group(0)!r}) before the question is asked", where))
        hit = time_re.search(text)
        if hit:
            issues.append(Issue("thought_leaks_future_time", f"thought {i} says what comes later ({hit.group(0)!r}): a streaming thought knows only the clips seen so far", where))
        if index is None:
            continue
        pos = thought_position(t, i, index)
        facts = index.analyse(text, pos)
        leaked = {phrase.lower() for phrase, _ in facts.future}
        for phrase, clip in facts.future:
            issues.append(Issue("thought_leaks_future", f"thought {i} names {phrase!r}, which the window first shows in a later clip ({clip})", where))
        for name in t.get("entities") or []:
            first = index.first_seen(name) if name and name.lower() not in leaked else None
            if first is not None and first > pos:
                issues.append(Issue("thought_leaks_future", f"thought {i} declares {name!r}, which the window first shows in a later clip ({index.clip_at(first)})", where))
        for phrase, event, clip in facts.future_events:
            issues.append(Issue("thought_leaks_future_event", f"thought {i} says {phrase!r} {event!r}, an event the window first places in a later clip ({clip})", where))
    return verdict(chain_id, "causality", issues, graph=index is not None)
