"""Checks on one LLM answer before it becomes a text: small models echo, ramble or go silent.

An answer that fails is asked once more with a stricter prompt; a second failure falls back to
the template text for that entry (see ``features/llm/answers.py``).
"""

from __future__ import annotations

import re

MIN_WORDS = 3
MIN_CHARS = 15
# Share of the answer's word trigrams found in the prompt above which it is an echo, not a text.
ECHO_SHARE = 0.5
_WORD = re.compile(r"[\w'’-]+")
_ARTICLE_LAST = re.compile(r"^(.*), (The|A|An|Les|La|Le|Il|Das|Der|Die|El)$")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _trigrams(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def title_forms(title: str) -> list[str]:
    """How a title may be written: ML-100K's ``Shawshank Redemption, The`` is also ``The Shawshank Redemption``."""
    forms = [title]
    m = _ARTICLE_LAST.match(title)
    if m:
        forms += [f"{m.group(2)} {m.group(1)}", m.group(1)]
    return forms


def rejection(text: str, prompt: str, *, max_chars: int, forbidden_titles: list[str] = ()) -> str | None:
    """Why ``text`` is not usable as the answer to ``prompt`` (``None`` when it is)."""
    words = _words(text)
    if not text.strip() or not words:
        return "empty"
    if len(words) < MIN_WORDS or len(text) < MIN_CHARS:
        return "too short"
    if len(text) > max_chars + 1:  # parse_answer cuts at max_chars (+ an ellipsis)
        return "too long"
    grams = _trigrams(words)
    if grams:
        seen = _trigrams(_words(prompt))
        if len(grams & seen) / len(grams) > ECHO_SHARE:
            return "echo of the prompt"
    elif " ".join(words) in " ".join(_words(prompt)):
        return "echo of the prompt"
    for title in forbidden_titles:
        for form in title_forms(title):
            if len(form) >= 4 and re.search(rf"(?<!\w){re.escape(form)}(?!\w)", text, re.I):
                return "names a held-out title"
    return None
