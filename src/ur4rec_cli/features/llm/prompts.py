"""Prompts for the LLM and the offline template texts, built from metadata and the TRAIN history.

Leakage rule (DESIGN.md): everything about a user comes from ``dataset.history(u, "train")``;
the validation and test items never reach a user's prompt or text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from ur4rec_cli.data.dataset import Dataset

# Bump when a prompt or template changes: cached answers and text artifacts are keyed by it.
PROMPT_VERSION = "v2"
# The second, stricter prompt asked when an answer to the first fails validation.
STRICT_VERSION = "s1"
TEMPLATE_VERSION = "t1"

Kind = Literal["item", "user"]

# Short enough for a 135M-parameter model to follow (SmolLM2 loses long instructions).
SYSTEM_PROMPT = "You write short, factual texts for a movie recommender. Answer with the text only."
STRICT_SYSTEM = "Answer in one or two plain sentences. Do not repeat the question. No lists, no titles."

_GENDER = {"M": "male", "F": "female"}
# A phrase per genre makes template texts informative beyond the bare genre list.
_GENRE_PHRASE = {
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


def title_of(meta: dict[str, Any], raw_id: str = "?") -> str:
    """``Title (year)``, or a placeholder naming the raw id when the title is unknown."""
    title = (meta.get("title") or "").strip() or f"Unknown movie {raw_id}"
    year = meta.get("year")
    return f"{title} ({year})" if year else title


def _genres(meta: dict[str, Any]) -> list[str]:
    return [g for g in (meta.get("genres") or []) if g and g.lower() != "unknown"]


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


# Items -------------------------------------------------------------------------------------
def item_prompt(dataset: "Dataset", item: int) -> Prompt:
    """The request for one item's description."""
    return item_prompt_of(dataset.items[item - 1], dataset.item_ids[item - 1], item)


def item_prompt_of(meta: dict[str, Any], raw_id: str, index: int) -> Prompt:
    """The request for the description of an item's metadata (also what `items add` asks for new items)."""
    genres = _genres(meta)
    text = (
        f"Movie: {title_of(meta, raw_id)}\n"
        f"Genres: {', '.join(genres) if genres else 'unknown'}\n"
        "Describe this movie in two sentences: its story, its tone and who would enjoy it."
    )
    return Prompt("item", index, raw_id, text)


def template_item_text(dataset: "Dataset", item: int) -> str:
    """Offline item description from title, year and genres."""
    return template_item_text_of(dataset.items[item - 1], dataset.item_ids[item - 1])


def template_item_text_of(meta: dict[str, Any], raw_id: str) -> str:
    """The template description of one item's metadata (also what `items add` writes for new items)."""
    title = (meta.get("title") or "").strip() or f"Unknown movie {raw_id}"
    genres = _genres(meta)
    year = meta.get("year")
    kind = f"{_join([g.lower() for g in genres])} movie" if genres else "movie"
    when = f" from {year}" if year else ""
    article = "an" if kind[0] in "aeiou" else "a"
    text = f"{title} is {article} {kind}{when}."
    phrases = [_GENRE_PHRASE[g] for g in genres if g in _GENRE_PHRASE]
    if phrases:
        text += f" Expect {_join(phrases)}."
    return text


# Users -------------------------------------------------------------------------------------
@dataclass
class UserProfile:
    """What may be said about a user: demographics and the TRAIN part of the history."""

    demographics: str
    n_train: int
    mean_rating: float | None
    genre_shares: list[tuple[str, float]]  # (genre, share of train movies with it), highest first
    recent: list[tuple[int, float]]  # (item, rating), most recent last
    best_recent: list[tuple[int, float]]  # best-rated among the recent window, best first


def user_profile(dataset: "Dataset", user: int, history_items: int) -> UserProfile:
    """Summarise a user's demographics and train history (never the held-out items)."""
    train = dataset.history(user, "train")
    ratings = dataset.ratings(user)[: len(train)]
    meta = dataset.users[user - 1]
    counts: dict[str, int] = {}
    for it in train.tolist():
        for g in _genres(dataset.items[it - 1]):
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
        demographics=_demographics(meta),
        n_train=n,
        mean_rating=float(np.mean(ratings)) if n else None,
        genre_shares=shares,
        recent=recent,
        best_recent=best,
    )


def _demographics(meta: dict[str, Any]) -> str:
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
        parts.append("viewer")
    return " ".join(parts)


def user_prompt(dataset: "Dataset", user: int, history_items: int) -> Prompt:
    """The request for one user's preference summary, from the train history only."""
    p = user_profile(dataset, user, history_items)
    shares = ", ".join(f"{g} {s:.0%}" for g, s in p.genre_shares[:6]) or "unknown"
    lines = [
        f"User: a {p.demographics}.",
        f"Movies rated: {p.n_train}" + (f", average rating {p.mean_rating:.1f}/5." if p.mean_rating is not None else "."),
        f"Share of their movies per genre: {shares}.",
        "Their most recent ratings, oldest first (rating out of 5):",
        *(f"- {title_of(dataset.items[i - 1], dataset.item_ids[i - 1])}: {r:g}" for i, r in p.recent),
        "Describe this viewer's taste in two sentences: the genres, tone and eras they like. Do not name movies.",
    ]
    return Prompt("user", user, dataset.user_ids[user - 1], "\n".join(lines))


def template_user_text(dataset: "Dataset", user: int, history_items: int) -> str:
    """Offline preference text: demographics, genre shares, best-rated recent titles (train only)."""
    p = user_profile(dataset, user, history_items)
    text = f"A {p.demographics}."
    if p.n_train == 0:
        return text + " No rated movies yet."
    top = [f"{g.lower()} ({s:.0%})" for g, s in p.genre_shares[:4]]
    if top:
        text += f" Mostly watches {_join(top)}."
    if p.best_recent:
        titles = "; ".join(title_of(dataset.items[i - 1], dataset.item_ids[i - 1]) for i, _ in p.best_recent)
        text += f" Recently enjoyed: {titles}."
    text += f" Has rated {p.n_train} movies, {p.mean_rating:.1f}/5 on average."
    return text


def strict_item_prompt(dataset: "Dataset", item: int) -> Prompt:
    """The second try for an item whose first answer was rejected: one line, one task."""
    return strict_item_prompt_of(dataset.items[item - 1], dataset.item_ids[item - 1], item)


def strict_item_prompt_of(meta: dict[str, Any], raw_id: str, index: int) -> Prompt:
    genres = _join([g.lower() for g in _genres(meta)]) or "unknown genre"
    return Prompt("item", index, raw_id, f"In two sentences, describe the {genres} movie {title_of(meta, raw_id)}.", STRICT_SYSTEM)


def strict_user_prompt(dataset: "Dataset", user: int, history_items: int) -> Prompt:
    """The second try for a user: genres and demographics of the train part only, no titles at all."""
    p = user_profile(dataset, user, history_items)
    top = _join([g.lower() for g, _ in p.genre_shares[:3]]) or "all kinds of"
    text = f"In two sentences, describe the movie taste of a {p.demographics} who mostly watches {top} movies."
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
    train = {title_of(dataset.items[i - 1], dataset.item_ids[i - 1]) for i in dataset.history(user, "train").tolist()}
    bare_train = {(dataset.items[i - 1].get("title") or "").strip() for i in dataset.history(user, "train").tolist()}
    if len(dataset.sequence(user)) < 3:  # kept for training only: nothing is held out
        return []
    out = []
    for split in ("valid", "test"):
        item = dataset.target(user, split)
        meta = dataset.items[item - 1]
        if title_of(meta, dataset.item_ids[item - 1]) in train or (meta.get("title") or "").strip() in bare_train:
            continue
        out.append((meta.get("title") or "").strip())
    return [t for t in out if t]


def template_texts(dataset: "Dataset", kind: Kind, history_items: int) -> list[str]:
    """Every template text of one kind, in internal-id order."""
    if kind == "item":
        return [template_item_text(dataset, i) for i in range(1, dataset.n_items + 1)]
    return [template_user_text(dataset, u, history_items) for u in range(1, dataset.n_users + 1)]
