"""The gallery page: one card per chain, filters at the top, everything in one file.

The page opens from disk with no server and no network: keyframes are embedded once each (a
JPEG shown under several chains of one window is stored once, in a script map) and the filters
are a few lines of plain JS. Every string from the data is escaped.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from datetime import datetime, timezone
from pathlib import Path

from pipelines.gallery import details_text
from pipelines.keyframes import FrameRequest

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #f4f4f2; }
header.top { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ccc; padding: 0.6em 1.2em; z-index: 2; }
header.top h1 { font-size: 1.25em; margin: 0 0 0.2em 0; }
.note { color: #666; font-size: 0.88em; }
.filters label { margin-right: 1em; font-size: 0.9em; }
main { padding: 0.8em 1.2em; }
article.card { background: #fff; border: 1px solid #d6d6d0; border-radius: 6px; margin: 0 0 1.2em 0; padding: 0.7em 1em; }
article.card.excluded { border-left: 6px solid #c0392b; }
article.card.exported { border-left: 6px solid #2e8b57; }
.card h2 { font-size: 1em; margin: 0; font-family: ui-monospace, monospace; display: inline; }
.badge { display: inline-block; padding: 0 0.5em; border-radius: 3px; font-size: 0.85em; margin-left: 0.5em; color: #fff; }
.badge.ok { background: #2e8b57; } .badge.bad { background: #c0392b; } .badge.none { background: #888; }
.meta { color: #555; font-size: 0.88em; margin: 0.2em 0 0.5em 0; }
.strip { display: flex; gap: 6px; overflow-x: auto; padding-bottom: 4px; }
.clip { flex: 0 0 210px; margin: 0; border: 1px solid #e0e0da; border-radius: 4px; padding: 4px; background: #fafaf8; }
.clip.evidence { border: 2px solid #d4a017; background: #fffbea; }
.frames { display: flex; gap: 2px; min-height: 40px; }
.frames img { width: 100px; height: auto; border-radius: 2px; background: #ddd; }
.noframes { font-size: 0.8em; color: #999; padding: 0.6em 0.2em; }
.clip figcaption { font-size: 0.82em; margin-top: 3px; }
.clip .span { font-family: ui-monospace, monospace; color: #555; }
.ev { color: #a07800; font-weight: bold; font-size: 0.8em; }
.qa { margin: 0.6em 0; }
.qa .question { font-weight: 600; }
.qa ol { margin: 0.2em 0; padding-left: 1.4em; list-style: none; }
.qa li.answer { font-weight: 600; color: #1d6b40; }
.qa li.answer::after { content: "  \\2713 answer"; font-size: 0.85em; }
table.verdicts { border-collapse: collapse; font-size: 0.85em; margin: 0.4em 0; }
table.verdicts td, table.verdicts th { border: 1px solid #e2e2dc; padding: 2px 6px; text-align: left; vertical-align: top; }
tr.fail td.result { color: #c0392b; font-weight: 600; } tr.pass td.result { color: #2e8b57; } tr.error td.result { color: #b36b00; font-weight: 600; }
details pre { max-width: 70em; white-space: pre-wrap; font-size: 0.9em; margin: 0.2em 0; }
code, .mono { font-family: ui-monospace, monospace; font-size: 0.92em; }
.section-title { font-weight: 600; font-size: 0.9em; margin-top: 0.5em; }
footer.prov { color: #666; font-size: 0.82em; margin-top: 0.5em; }
"""

# Shows the cards matching every filter, and how many that is; runs on every change.
SCRIPT = """
const KF = __KEYFRAMES__;
document.querySelectorAll('img[data-k]').forEach(img => { img.src = 'data:image/jpeg;base64,' + KF[img.dataset.k]; });
function applyFilters() {
  const want = {};
  document.querySelectorAll('.filters select').forEach(s => { want[s.dataset.attr] = s.value; });
  let shown = 0;
  const cards = document.querySelectorAll('article.card');
  cards.forEach(card => {
    let ok = true;
    for (const [attr, value] of Object.entries(want)) {
      if (!value) continue;
      const have = (card.dataset[attr] || '').split(' ');
      if (!have.includes(value)) { ok = false; break; }
    }
    card.hidden = !ok;
    if (ok) shown += 1;
  });
  document.getElementById('shown').textContent = shown + ' of ' + cards.length + ' chains shown';
}
document.querySelectorAll('.filters select').forEach(s => s.addEventListener('change', applyFilters));
applyFilters();
"""

# (the card's data attribute as JS names it, the menu's label)
FILTERS = [("qaType", "QA type"), ("failedChecks", "failed check"), ("reasons", "reason"), ("exported", "exported")]


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def seconds(value) -> str:
    return "?" if value is None else f"{value:.1f}"


def image_key(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


# ---- what a card is filtered by -----------------------------------------------------------------
def export_state(decision: dict | None) -> str:
    if decision is None:
        return "unknown"
    return "yes" if decision["exported"] else "no"


def failed_checks(card: dict) -> list[str]:
    return sorted({v["check"] for v in card["verdicts"] if v["status"] != "ok" or v["passed"] is False})


def reason_codes(card: dict) -> list[str]:
    """Every reason code on the card: the chain's own, failed verdicts', the export's, reviews'."""
    codes = set()
    chain, decision = card["chain"], card["decision"]
    if chain.get("status") != "ok" and chain.get("reason"):
        codes.add(chain["reason"])
    for v in card["verdicts"]:
        if v["status"] != "ok":
            codes.add(f"checker_error:{v['reason'] or 'unknown'}")
        elif v["passed"] is False:
            codes.add(v["reason"] or f"{v['check']}_failed")
    for entry in (decision or {}).get("excluded_by") or []:
        codes.add(entry.split(":", 1)[-1])
    for review in card["reviews"]:
        if review["decision"] == "reject":
            codes.add(review["decision_reason"] or "rejected")
    return sorted(c for c in codes if c)


def filter_values(card: dict) -> dict[str, list[str]]:
    """What each filter menu matches on this card (FILTERS' attributes)."""
    return {
        "qaType": [(card["chain"].get("qa") or {}).get("type") or "none"],
        "failedChecks": failed_checks(card),
        "reasons": reason_codes(card),
        "exported": [export_state(card["decision"])],
    }


def word(value: str) -> str:
    # filters match whole words, so a value must not contain spaces
    return re.sub(r"\s+", "_", value)


def attr_words(values: list[str]) -> str:
    return " ".join(word(v) for v in values)


# ---- the card -----------------------------------------------------------------------------------
def frames_html(requests: list[FrameRequest], jpegs: dict[FrameRequest, bytes], keys: dict[bytes, str], problem: str | None) -> str:
    if not requests:
        if problem:
            return f'<div class="noframes">keyframes unavailable: {esc(problem)}</div>'
        return '<div class="noframes">no frames (VST gives a clip under 0.5 s none)</div>'
    imgs = []
    for request in requests:
        data = jpegs.get(request)
        if data is None:
            continue
        key = keys.setdefault(data, image_key(data))
        imgs.append(f'<img data-k="{key}" alt="frame {request.frame}" title="source frame {request.frame}">')
    if not imgs:
        return f'<div class="noframes">keyframes unavailable: {esc(problem or "not decoded")}</div>'
    return "".join(imgs)


def strip_html(card: dict, jpegs, keys, problems) -> str:
    chain = card["chain"]
    evidence = set((chain.get("qa") or {}).get("evidence_clip_ids") or [])
    problem = problems.get(chain["video_id"])
    figures = []
    for t in chain["thoughts"] or []:
        is_ev = t["clip_id"] in evidence
        frames = frames_html(card["keyframes"].get(t["clip_id"], []), jpegs, keys, problem)
        figures.append(
            f'<figure class="clip{" evidence" if is_ev else ""}"><div class="frames">{frames}</div>'
            f'<figcaption><span class="span">{seconds(t["start_s"])}&ndash;{seconds(t["end_s"])} s</span>'
            f'{" <span class=ev>evidence</span>" if is_ev else ""}<br>{esc(t["text"])}</figcaption></figure>'
        )
    return f'<div class="strip">{"".join(figures)}</div>'


def qa_html(card: dict) -> str:
    chain, decision = card["chain"], card["decision"]
    qa = chain.get("qa") or {}
    answer = (qa.get("answer") or "").strip()
    options = qa.get("options") or []
    items = []
    for option in options:
        letter = option.split(".", 1)[0].strip() if "." in option[:3] else None
        is_answer = letter is not None and letter == answer or option.strip() == answer
        items.append(f'<li{" class=answer" if is_answer else ""}>{esc(option)}</li>')
    relettered = ""
    if decision and decision.get("answer_letter") and options and decision["answer_letter"] != answer:
        relettered = f' &middot; exported re-lettered: answer <b>{esc(decision["answer_letter"])}</b> of {esc(" / ".join(decision.get("exported_options") or []))}'
    return (
        f'<div class="qa"><div class="question">Q ({esc(qa.get("type"))}): {esc(qa.get("question"))}</div>'
        + (f"<ol>{''.join(items)}</ol>" if items else "")
        + f'<div>answer: <b>{esc(answer)}</b> &middot; final_answer: <code>{esc(chain.get("final_answer"))}</code>{relettered}</div></div>'
    )


def verdicts_html(card: dict) -> str:
    if not card["verdicts"]:
        return '<div class="section-title">Verdicts</div><div class="note">no verdicts yet</div>'
    rows = []
    for v in card["verdicts"]:
        if v["status"] != "ok":
            cls, result = "error", "checker error"
        else:
            cls, result = ("pass", "pass") if v["passed"] else ("fail", "fail")
        details = details_text(v["details"] or v.get("error"))
        detail_cell = f"<details><summary>details</summary><pre>{esc(details)}</pre></details>" if details else ""
        score = "" if v["score"] is None else f"{v['score']:.3g}"
        rows.append(
            f'<tr class="{cls}" data-check="{esc(v["check"])}"><td>{esc(v["kind"])}</td><td class="mono">{esc(v["check"])}</td>'
            f'<td class="result">{result}</td><td>{score}</td><td class="mono">{esc(v["reason"])}</td><td>{detail_cell}</td></tr>'
        )
    head = "<tr><th>kind</th><th>check</th><th>result</th><th>score</th><th>reason</th><th>details</th></tr>"
    return f'<div class="section-title">Verdicts</div><table class="verdicts">{head}{"".join(rows)}</table>'


def export_html(card: dict) -> str:
    d = card["decision"]
    if d is None:
        return '<div class="section-title">Export</div><div class="note">no export decision (the run has not reached export)</div>'
    parts = [f"<b>{'exported' if d['exported'] else 'not exported'}</b>"]
    if d.get("subset"):
        parts.append(f"subset <code>{esc(d['subset'])}</code>")
    if d.get("excluded_by"):
        parts.append("excluded by " + ", ".join(f"<code>{esc(x)}</code>" for x in d["excluded_by"]))
    if d.get("judge_flags"):
        parts.append("judge flags " + ", ".join(f"<code>{esc(x)}</code>" for x in d["judge_flags"]))
    if d.get("rl_excluded_by"):
        parts.append("no RL row: " + ", ".join(f"<code>{esc(x)}</code>" for x in d["rl_excluded_by"]))
    return f'<div class="section-title">Export</div><div class="export">{" &middot; ".join(parts)}</div>'


def reviews_html(card: dict) -> str:
    if not card["reviews"]:
        return ""
    items = []
    for r in card["reviews"]:
        bits = [f"<b>{esc(r['decision'])}</b> by {esc(r['reviewer'])}", esc(r["reviewed_at"])]
        if r.get("decision_reason"):
            bits.append(f"reason <code>{esc(r['decision_reason'])}</code>")
        if r.get("labels"):
            bits.append("labels " + ", ".join(esc(x) for x in r["labels"]))
        if r.get("comment"):
            bits.append(f"&ldquo;{esc(r['comment'])}&rdquo;")
        corrections = details_text(r.get("corrections"))
        fix = f"<details><summary>corrections</summary><pre>{esc(corrections)}</pre></details>" if corrections and corrections not in ("{}", "null") else ""
        items.append(f"<li>{' &middot; '.join(bits)}{fix}</li>")
    return f'<div class="section-title">Reviews</div><ul class="reviews">{"".join(items)}</ul>'


def card_html(card: dict, jpegs, keys, problems) -> str:
    chain, decision = card["chain"], card["decision"]
    state = export_state(decision)
    badge = {"yes": ("ok", "exported"), "no": ("bad", "excluded"), "unknown": ("none", "no export yet")}[state]
    if chain.get("status") != "ok":
        badge = ("bad", f"failed: {chain.get('reason')}")
    video = card["video"] or {}
    name = Path(video.get("path") or chain.get("video_path") or "?").name
    qa = chain.get("qa") or {}
    versions = chain.get("prompt_versions") or []
    versions = dict(versions) if isinstance(versions, list) else versions
    data = " ".join(f'data-{re.sub("([A-Z])", lambda m: "-" + m.group(1).lower(), k)}="{esc(attr_words(v))}"' for k, v in filter_values(card).items())
    cls = {"yes": " exported", "no": " excluded"}.get(state, "")
    meta = f"{esc(qa.get('type'))} &middot; template {esc(chain.get('qa_template'))} &middot; evidence span {esc(chain.get('evidence_span'))} &middot; {esc(name)} {seconds(chain['start_s'])}&ndash;{seconds(chain['end_s'])} s &middot; {len(chain['thoughts'] or [])} thoughts"
    provenance = (
        f"run <code>{esc(card['run'])}</code> &middot; teacher <code>{esc(chain.get('teacher'))}</code> &middot; prompts "
        + ", ".join(f"{esc(k)}=<code>{esc(v)}</code>" for k, v in sorted(versions.items()))
        + f" &middot; question <code>{esc(chain.get('question_id'))}</code> &middot; window <code>{esc(chain.get('window_id'))}</code>"
    )
    return (
        f'<article class="card{cls}" id="{esc(chain["chain_id"])}" {data}>'
        f'<h2>{esc(chain["chain_id"])}</h2><span class="badge {badge[0]}">{esc(badge[1])}</span>'
        f'<div class="meta">{meta}</div>'
        + strip_html(card, jpegs, keys, problems)
        + qa_html(card)
        + verdicts_html(card)
        + export_html(card)
        + reviews_html(card)
        + f'<footer class="prov">{provenance}</footer></article>'
    )


def filters_html(cards: list[dict]) -> str:
    values: dict[str, set[str]] = {attr: set() for attr, _ in FILTERS}
    for card in cards:
        for attr, found in filter_values(card).items():
            values[attr].update(found)
    controls = []
    for attr, label in FILTERS:
        options = "".join(f'<option value="{esc(word(v))}">{esc(v)}</option>' for v in sorted(values[attr]))
        controls.append(f'<label>{label} <select id="filter-{attr}" data-attr="{attr}"><option value="">any</option>{options}</select></label>')
    return f'<div class="filters">{"".join(controls)} <span id="shown" class="note"></span></div>'


def gallery_html(cards: list[dict], jpegs: dict[FrameRequest, bytes], problems: dict[str, str], title: str, subtitle: str) -> str:
    keys: dict[bytes, str] = {}
    body = "".join(card_html(card, jpegs, keys, problems) for card in cards)
    images = json.dumps({key: base64.b64encode(data).decode("ascii") for data, key in keys.items()})
    generated = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}"
    problem_note = ""
    if problems:
        problem_note = '<p class="note">keyframes missing for: ' + "; ".join(esc(p) for p in sorted(set(problems.values()))) + "</p>"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f'<header class="top"><h1>{esc(title)}</h1><div class="note">{esc(subtitle)} &middot; generated {generated} by <code>vstw show</code>'
        " &middot; yellow clips are the question's evidence</div>"
        f"{filters_html(cards)}{problem_note}</header>"
        f"<main>{body}</main>"
        f"<script>{SCRIPT.replace('__KEYFRAMES__', images)}</script></body></html>"
    )
