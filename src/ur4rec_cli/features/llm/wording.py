"""The words of every text from the data set: its noun, whether it has ratings, its list labels;
the template item text from every role of an item, cut to the text encoder's window.

The noun is the data set's (``Dataset.noun``: movie for GroupLens data; ``data.noun`` sets it).
For movies each word is the one the texts always used, so ML-100K's texts keep their bytes.

Template item text, in this order (a part is left out when the item has nothing for it)::

    <title> is a[n] <genres> <noun> by <brand> from <year>. Expect <genre phrases (movies only)>.
    Categories: <a>, <b>. Tags: <t>. <column>: <value>. ... <description>

The window: the default encoder (all-MiniLM-L6-v2) reads 256 word pieces and drops the rest.
``TEXT_CHARS`` approximates that in characters, so no tokenizer is loaded to write a text:
measured with MiniLM's tokenizer on Amazon Scientific's template item texts (4.2 characters a
piece), 99.1% of them cut to 800 characters fit in 256 pieces (uncut: 75%; cut to 900: 98.1%).
A longer text (item or user) is cut to it, the longest part first (at a word, ending in "…"),
never the head sentence with the title. ML-100K's texts (at most 385 characters) are never cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ur4rec_cli.data.dataset import Dataset

TEXT_CHARS = 800
# The description in an LLM item prompt: enough to say what the item is, short enough for a small model.
PROMPT_DESCRIPTION_CHARS = 600
_ABBREVIATIONS = {"bros", "jr", "sr", "dr", "mr", "mrs", "ms", "st", "co", "inc", "ltd", "corp", "vol", "no", "etc", "vs", "ave", "mt", "ft", "in", "oz", "lb", "lbs", "pt"}
_PERSON = {"movie": "viewer", "film": "viewer", "book": "reader", "product": "customer", "song": "listener", "track": "listener"}
_VERB = {"movie": "watches", "film": "watches", "book": "reads", "song": "listens to", "track": "listens to"}
# A phrase per genre makes template texts informative beyond the bare genre list (film words: movies only).
GENRE_PHRASE = {
    "Action": "action and set pieces",
    "Adventure": "adventure and journeys",
    "Animation": "animated storytelling",
    "Children's": "family-friendly fun",
    "Comedy": "humour",
    "Crime": "crime and its consequences",
    "Documentary": "real-world subjects",
    "Drama": "character-driven drama",
    "Fantasy": "fantasy worlds",
    "Film-Noir": "noir atmosphere",
    "Horror": "scares and dread",
    "Musical": "songs and musical numbers",
    "Mystery": "mystery and puzzles",
    "Romance": "romance",
    "Sci-Fi": "science-fiction ideas",
    "Thriller": "suspense",
    "War": "war and its cost",
    "Western": "the American frontier",
}


def plural(noun: str) -> str:
    """movie -> movies, category -> categories, box -> boxes (the last word of a noun of several)."""
    if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou"):
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def article(word: str) -> str:
    return "an" if word[:1] in tuple("aeiou") else "a"


def join(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


@dataclass(frozen=True)
class Wording:
    """The words a data set's texts use."""

    noun: str = "movie"
    implicit: bool = False  # no rating column: no rating is said
    scale: float = 5.0  # the highest rating ("4.2/5")
    label: str = "genre"  # what the user's shares are shares of: genre, category or tag
    universal: frozenset[str] = frozenset()  # labels every labelled item has: they say nothing of a user

    @property
    def nouns(self) -> str:
        return plural(self.noun)

    @property
    def person(self) -> str:
        return _PERSON.get(self.noun, "user")

    @property
    def verb(self) -> str:
        return _VERB.get(self.noun, "chooses")

    @property
    def is_movie(self) -> bool:
        return self.noun == "movie"


def wording_of(dataset: "Dataset") -> Wording:
    """The data set's wording, from what `ur4rec data` recorded of it (noun, ratings, item columns,
    common labels): no item or interaction is read, so a user's text looks at their own items only."""
    roles = {role.split(" ", 1)[0] for role in dataset.item_columns.values()} & {"genres", "categories", "tags"}
    label = "genre" if roles <= {"genres"} else "tag" if roles == {"tags"} else "category"
    return Wording(dataset.noun, not dataset.has_rating, dataset.rating_scale, label, frozenset(dataset.common_labels))


def genres(meta: dict[str, Any]) -> list[str]:
    return [g for g in (meta.get("genres") or []) if g and g.lower() != "unknown"]


def labels(meta: dict[str, Any]) -> list[str]:
    """An item's genres, categories and tags, each once (what a user's shares count)."""
    from ur4rec_cli.data.item_fields import item_labels

    return item_labels(meta)


def field_lines(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) of the roles after title, year and genres: brand, categories, tags, fields."""
    from ur4rec_cli.data.item_fields import format_number

    out = []
    if meta.get("brand"):
        out.append(("Brand", str(meta["brand"])))
    for role, name in (("categories", "Categories"), ("tags", "Tags")):
        if meta.get(role):
            out.append((name, ", ".join(meta[role])))
    for name, value in (meta.get("fields") or {}).items():
        out.append((name, format_number(value) if isinstance(value, (int, float)) else str(value)))
    return out


def template_item_text_of(meta: dict[str, Any], raw_id: str, noun: str) -> str:
    """The template description of one item's metadata (module doc), within ``TEXT_CHARS``."""
    title = (meta.get("title") or "").strip() or f"Unknown {noun} {raw_id}"
    found = genres(meta)
    kind = f"{join([g.lower() for g in found])} {noun}" if found else noun
    by = f" by {meta['brand']}" if meta.get("brand") else ""
    when = f" from {meta['year']}" if meta.get("year") else ""
    head = f"{no_full_stop(title)} is {article(kind)} {kind}{by}{when}"
    head += "" if head.endswith(".") else "."  # "by Acme Co., Inc." ends the sentence already
    parts = []
    phrases = [GENRE_PHRASE[g] for g in found if g in GENRE_PHRASE] if noun == "movie" else []  # film words
    if phrases:
        parts.append(f"Expect {join(phrases)}.")
    parts += [f"{name}: {value}." for name, value in field_lines(meta) if name != "Brand"]
    if meta.get("description"):
        parts.append(str(meta["description"]))
    return fit(head, parts)


def no_full_stop(title: str) -> str:
    """A title that ends a sentence ("... Starting Torque.", "... (1000 Count).") without its full
    stop; an abbreviation keeps it ("Super Mario Bros.", "Escape from L.A.", "Better Off Dead...")."""
    if not title.endswith(".") or title.endswith(".."):
        return title
    last = title[:-1].rsplit(" ", 1)[-1]
    abbreviation = "." in last or last.lower() in _ABBREVIATIONS or not re.search(r"[aeiouyAEIOUY0-9)]", last)
    return title if abbreviation else title[:-1]


def fit(head: str, parts: list[str], budget: int = TEXT_CHARS) -> str:
    """``head`` and ``parts`` joined by spaces in at most ``budget`` characters: the longest part is
    cut first, then the next, and so on; ``head`` is never cut (a head alone over budget stays whole)."""
    parts = [p for p in parts if p]

    def total() -> int:
        return len(head) + sum(len(p) + 1 for p in parts)

    while parts and total() > budget:
        k = max(range(len(parts)), key=lambda j: len(parts[j]))
        longest = len(parts[k])
        second = max((len(p) for j, p in enumerate(parts) if j != k), default=0)
        parts[k] = cut(parts[k], max(longest - (total() - budget), min(second, longest - 1)))
        parts = [p for p in parts if p]
    return " ".join([head, *parts])


def cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: cut at a word and ended with "…"; "" when under 12."""
    if len(text) <= limit:
        return text
    if limit < 12:
        return ""
    room = text[: limit - 1]
    at = room.rfind(" ")
    room = room[:at] if at > limit // 2 else room
    return room.rstrip(" ,;:.-") + "…"
