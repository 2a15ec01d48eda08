"""Prompts for the LLM and the offline template texts, built from metadata and the TRAIN history.

Leakage rule (DESIGN.md): everything about a user comes from ``dataset.history(u, "train")``;
the validation and test items never reach a user's prompt or text.

Every word about the domain comes from the data set (``wording.py``: its noun, its ratings or
none, its list labels); for GroupLens data (noun ``movie``, ratings out of 5, genres) each text and
prompt is byte for byte what it was before the noun existed, so the cache keys below still name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ur4rec_cli.features.llm.wording import (
    PROMPT_DESCRIPTION_CHARS,
    article,
    cut,
    field_lines,
    fit,
    genres,
    no_full_stop,
    join,
    labels,
    template_item_text_of,
    wording_of,
)

if TYPE_CHECKING:
    from ur4rec_cli.data.dataset import Dataset

# Bump when a prompt or template changes: cached answers and text artifacts are keyed by it.
# (Other nouns and item fields change the prompts' own bytes, which the answer cache keys hash,
# and the data set's digest, which the texts artifact records: no bump needed for them.)
PROMPT_VERSION = "v2"
# The second, stricter prompt asked when an answer to the first fails validation.
STRICT_VERSION = "s1"
TEMPLATE_VERSION = "t1"

Kind = Literal["item", "user"]

# Short enough for a 135M-parameter model to follow (SmolLM2 loses long instructions).
SYSTEM_PROMPT = "You write short, factual texts for a movie recommender. Answer with the text only."
STRICT_SYSTEM = "Answer in one or two plain sentences. Do not repeat the question. No lists, no titles."

_GENDER = {"M": "male", "F": "female"}


def system_prompt(noun: str) -> str:
    """``SYSTEM_PROMPT`` for a catalogue of ``noun`` (the same bytes for movies)."""
    return f"You write short, factual texts for {article(noun)} {noun} recommender. Answer with the text only."


@dataclass(frozen=True)
class Prompt:
    """One request: which entity it describes and the chat messages."""

    kind: Kind
    index: int  # internal id (1-based)
    raw_id: str
    user: str
    system: str = SYSTEM_PROMPT

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]

    def chars(self) -> int:
        return len(self.system) + len(self.user)


def title_of(meta: dict[str, Any], raw_id: str = "?", noun: str = "movie") -> str:
    """``Title (year)``, or a placeholder naming the raw id when the title is unknown."""
    title = (meta.get("title") or "").strip() or f"Unknown {noun} {raw_id}"
    year = meta.get("year")
    return f"{title} ({year})" if year else title


def _title(dataset: "Dataset", item: int) -> str:
    return title_of(dataset.items[item - 1], dataset.item_ids[item - 1], dataset.noun)


# Items -------------------------------------------------------------------------------------
def item_prompt(dataset: "Dataset", item: int) -> Prompt:
    """The request for one item's description."""
    return item_prompt_of(dataset.items[item - 1], dataset.item_ids[item - 1], item, dataset.noun)


def item_prompt_of(meta: dict[str, Any], raw_id: str, index: int, noun: str) -> Prompt:
    """The request for the description of an item's metadata (also what `items add` asks for new items):
    every field it has, the description cut to ``PROMPT_DESCRIPTION_CHARS``."""
    lines = [f"{noun.capitalize()}: {title_of(meta, raw_id, noun)}"]
    if "genres" in meta:
        found = genres(meta)
        lines.append(f"Genres: {', '.join(found) if found else 'unknown'}")
    lines += [f"{name}: {value}" for name, value in field_lines(meta)]
    if meta.get("description"):
        lines.append(f"Description: {cut(str(meta['description']), PROMPT_DESCRIPTION_CHARS)}")
    if noun == "movie":
        lines.append("Describe this movie in two sentences: its story, its tone and who would enjoy it.")
    else:
        lines.append(f"Describe this {noun} in two sentences: what it is, what it is for and who would want it.")
    return Prompt("item", index, raw_id, "\n".join(lines), system_prompt(noun))


def template_item_text(dataset: "Dataset", item: int) -> str:
    """Offline item description from every field of the item (``wording.template_item_text_of``)."""
    return template_item_text_of(dataset.items[item - 1], dataset.item_ids[item - 1], dataset.noun)


# Users -------------------------------------------------------------------------------------
@dataclass
class UserProfile:
    """What may be said about a user: demographics and the TRAIN part of the history."""

    demographics: str
    n_train: int
    mean_rating: float | None  # None without a rating column (implicit feedback) or history
    genre_shares: list[tuple[str, float]]  # (label, share of the user's train items with it), highest first
    recent: list[tuple[int, float]]  # (item, rating), most recent last
    best_recent: list[tuple[int, float]]  # best-rated among the recent window, best first (implicit: newest first)


def user_profile(dataset: "Dataset", user: int, history_items: int) -> UserProfile:
    """Summarise a user's demographics and train history (never the held-out items)."""
    words = wording_of(dataset)
    train = dataset.history(user, "train")
    ratings = dataset.ratings(user)[: len(train)]
    meta = dataset.users[user - 1]
    counts: dict[str, int] = {}
    for it in train.tolist():
        for g in labels(dataset.items[it - 1]):  # each label once per item: a share is at most 100%
            if g not in words.universal:
                counts[g] = counts.get(g, 0) + 1
    n = len(train)
    shares = sorted(((g, c / n) for g, c in counts.items()), key=lambda gc: (-gc[1], gc[0])) if n else []
    recent = [(int(i), float(r)) for i, r in zip(train[-history_items:].tolist(), ratings[-history_items:].tolist())]
    window = max(2 * history_items, 20)
    w_items, w_ratings = train[-window:], ratings[-window:]
    # Best rating first; among equals the most recent first.
    order = sorted(range(len(w_items)), key=lambda k: (-float(w_ratings[k]), -k))
    best = [(int(w_items[k]), float(w_ratings[k])) for k in order[: min(5, history_items)]]
    return UserProfile(
        demographics=_demographics(meta, words.person),
        n_train=n,
        mean_rating=float(np.mean(ratings)) if n and not words.implicit else None,
        genre_shares=shares,
        recent=recent,
        best_recent=best,
    )


def _demographics(meta: dict[str, Any], person: str = "viewer") -> str:
    parts = []
    if meta.get("age") is not None:
        parts.append(f"{meta['age']}-year-old")
    gender = meta.get("gender")
    if gender:
        parts.append(_GENDER.get(str(gender).upper(), str(gender)))
    occupation = meta.get("occupation")
    if occupation and str(occupation).lower() not in {"none", "other"}:
        parts.append(str(occupation))
    else:
        parts.append(person)
    return " ".join(parts)


def user_prompt(dataset: "Dataset", user: int, history_items: int) -> Prompt:
    """The request for one user's preference summary, from the train history only."""
    w = wording_of(dataset)
    p = user_profile(dataset, user, history_items)
    shares = ", ".join(f"{g} {s:.0%}" for g, s in p.genre_shares[:6]) or "unknown"
    if w.implicit:
        counted = [f"{w.nouns.capitalize()} in their history: {p.n_train}."]
        recent_head = f"Their most recent {w.nouns}, oldest first:"
        recent = [f"- {_title(dataset, i)}" for i, _ in p.recent]
    else:
        mean = f", average rating {p.mean_rating:.1f}/{w.scale:g}." if p.mean_rating is not None else "."
        counted = [f"{w.nouns.capitalize()} rated: {p.n_train}" + mean]
        recent_head = f"Their most recent ratings, oldest first (rating out of {w.scale:g}):"
        recent = [f"- {_title(dataset, i)}: {r:g}" for i, r in p.recent]
    if w.is_movie:
        ask = "Describe this viewer's taste in two sentences: the genres, tone and eras they like. Do not name movies."
    else:
        ask = f"Describe this {w.person}'s taste in two sentences: the kinds of {w.nouns} they like and what for. Do not name {w.nouns}."
    lines = [
        f"User: a {p.demographics}.",
        *counted,
        f"Share of their {w.nouns} per {w.label}: {shares}.",
        recent_head,
        *recent,
        ask,
    ]
    return Prompt("user", user, dataset.user_ids[user - 1], "\n".join(lines), system_prompt(w.noun))


def template_user_text(dataset: "Dataset", user: int, history_items: int) -> str:
    """Offline preference text: demographics, label shares, best-rated (implicit: newest) recent titles
    (train only), within the encoder's window (``wording.fit``)."""
    w = wording_of(dataset)
    p = user_profile(dataset, user, history_items)
    text = f"A {p.demographics}."
    if p.n_train == 0:
        return text + (f" No {w.nouns} yet." if w.implicit else f" No rated {w.nouns} yet.")
    parts = []
    top = [f"{g.lower()} ({s:.0%})" for g, s in p.genre_shares[:4]]
    if top:
        parts.append(f"Mostly {w.verb} {join(top)}.")
    if p.best_recent:
        titles = "; ".join(no_full_stop(_title(dataset, i)) for i, _ in p.best_recent)
        parts.append(f"Recently {'chose' if w.implicit else 'enjoyed'}: {titles}" + ("" if titles.endswith(".") else "."))
    if w.implicit:
        parts.append(f"{p.n_train} {w.nouns if p.n_train != 1 else w.noun} in their history.")
    else:
        parts.append(f"Has rated {p.n_train} {w.nouns}, {p.mean_rating:.1f}/{w.scale:g} on average.")
    return fit(text, parts)


def strict_item_prompt(dataset: "Dataset", item: int) -> Prompt:
    """The second try for an item whose first answer was rejected: one line, one task."""
    return strict_item_prompt_of(dataset.items[item - 1], dataset.item_ids[item - 1], item, dataset.noun)


def strict_item_prompt_of(meta: dict[str, Any], raw_id: str, index: int, noun: str) -> Prompt:
    if "genres" in meta:
        kind = f"{join([g.lower() for g in genres(meta)]) or 'unknown genre'} {noun}"
        text = f"In two sentences, describe the {kind} {title_of(meta, raw_id, noun)}."
    else:
        kind = f"{meta['categories'][-1].lower()} {noun}" if meta.get("categories") else noun  # a path's most specific step
        text = f"In two sentences, describe the {kind} {no_full_stop(title_of(meta, raw_id, noun))}."
    return Prompt("item", index, raw_id, text, STRICT_SYSTEM)


def strict_user_prompt(dataset: "Dataset", user: int, history_items: int) -> Prompt:
    """The second try for a user: labels and demographics of the train part only, no titles at all."""
    w = wording_of(dataset)
    p = user_profile(dataset, user, history_items)
    top = join([g.lower() for g, _ in p.genre_shares[:3]]) or ("all kinds of" if w.is_movie else "all categories")
    if w.is_movie:
        text = f"In two sentences, describe the movie taste of a {p.demographics} who mostly {w.verb} {top} movies."
    else:
        text = f"In two sentences, describe the taste of a {p.demographics} who mostly {w.verb} {w.nouns} in {top}."
    return Prompt("user", user, dataset.user_ids[user - 1], text, STRICT_SYSTEM)


def build_prompts(dataset: "Dataset", kind: Kind, history_items: int, *, strict: bool = False) -> list[Prompt]:
    """Every prompt of one kind (first or ``strict`` second try), in internal-id order."""
    if kind == "item":
        make = strict_item_prompt if strict else item_prompt
        return [make(dataset, i) for i in range(1, dataset.n_items + 1)]
    make_u = strict_user_prompt if strict else user_prompt
    return [make_u(dataset, u, history_items) for u in range(1, dataset.n_users + 1)]


def held_out_titles(dataset: "Dataset", user: int) -> list[str]:
    """Titles of the user's validation and test items that no train item shares: never in their text."""
    train = {_title(dataset, i) for i in dataset.history(user, "train").tolist()}
    bare_train = {(dataset.items[i - 1].get("title") or "").strip() for i in dataset.history(user, "train").tolist()}
    if len(dataset.sequence(user)) < 3:  # kept for training only: nothing is held out
        return []
    out = []
    for split in ("valid", "test"):
        item = dataset.target(user, split)
        meta = dataset.items[item - 1]
        if _title(dataset, item) in train or (meta.get("title") or "").strip() in bare_train:
            continue
        out.append((meta.get("title") or "").strip())
    return [t for t in out if t]


def template_texts(dataset: "Dataset", kind: Kind, history_items: int) -> list[str]:
    """Every template text of one kind, in internal-id order."""
    if kind == "item":
        return [template_item_text(dataset, i) for i in range(1, dataset.n_items + 1)]
    return [template_user_text(dataset, u, history_items) for u in range(1, dataset.n_users + 1)]
