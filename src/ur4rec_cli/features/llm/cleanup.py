"""Cleaning a model's answer: code fences, ``Description:`` prefixes, quotes, and cuts at a sentence end
(the OpenAI-compatible backend, the local engines and cached answers all pass through it)."""

from __future__ import annotations

import re

# A language tag only counts as one when a newline follows it: "```Text```" keeps "Text".
_FENCE = re.compile(r"^\s*```(?:[\w+-]*[ \t]*\n)?(.*?)\n?\s*```\s*$", re.S)
_PREFIX = re.compile(
    r"^\s*(?:\*\*)?(?:description|summary|user preferences?|preference summary|preferences|answer|text)"
    r"(?:\*\*)?\s*[:\-–]\s*(?:\*\*)?\s*",
    re.I,
)
_QUOTES = [('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»")]
SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s|$)")

def parse_answer(content: str | None, max_chars: int) -> str:
    """Clean a model answer: code fences, ``Description:`` prefixes, quotes; cut at a sentence end."""
    text = (content or "").strip()
    m = _FENCE.match(text)
    if m:
        text = m.group(1).strip()
    for _ in range(3):  # prefixes and quotes can nest: **Description:** "..."
        before = text
        text = _PREFIX.sub("", text, count=1).strip()
        for left, right in _QUOTES:
            if len(text) >= 2 and text.startswith(left) and text.endswith(right):
                text = text[len(left) : -len(right)].strip()
        if text == before:
            break
    text = " ".join(text.split())
    if len(text) > max_chars:
        head = text[:max_chars]
        ends = [m.end() for m in SENTENCE_END.finditer(head)]
        if ends and ends[-1] >= max_chars // 3:
            text = head[: ends[-1]].strip()
        else:  # no sentence end in reach: cut at a word boundary, the ellipsis within the limit
            head = text[: max_chars - 1]
            cut = head.rsplit(" ", 1)[0] if " " in head else head
            text = cut.rstrip(",;:–- ") + "…"
    return text


def whole_sentences(text: str) -> str:
    """An answer cut by max_tokens, without its unfinished last sentence (when a finished one exists)."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    return text[: ends[-1]] if ends and ends[-1] >= len(text) // 3 else text
