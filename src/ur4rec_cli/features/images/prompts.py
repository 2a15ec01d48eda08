"""The CLIP text prompt of an item without an image, in the data set's words.

Movies (the noun ``movie``: GroupLens data) keep the poster prompt the features were built with
before catalogues had nouns, byte for byte, and so the same cache key:

    A movie poster for "Toy Story" (1995), an animation, children's, comedy film.

Any other catalogue gets a photo prompt from its title, brand and most specific label (the last
category, genre or tag: `data/item_fields.py`), so that a CLIP text vector describes a product as
a product and not as a film:

    A photo of "Scotch Foil Tape, 2-Inch by 50-Yard" by 3M, a product in adhesive tapes.
"""

from __future__ import annotations

from typing import Any

from ur4rec_cli.features.images.posters import natural_title
from ur4rec_cli.features.llm.wording import article, labels


def poster_prompt(meta: dict[str, Any], noun: str = "movie") -> str:
    """The text a CLIP text tower reads for an item with no image (``meta``: its item row)."""
    if noun != "movie":
        return _photo_prompt(meta, noun)
    title = natural_title(meta.get("title"))
    if not title or title.lower() in {"unknown", "unkonwn"}:
        head = "A movie poster"
    else:
        head = f'A movie poster for "{title}"'
    year = meta.get("year")
    if isinstance(year, int):
        head += f" ({year})"
    genres = [str(g).lower() for g in (meta.get("genres") or []) if g and str(g).lower() != "unknown"]
    if not genres:
        return head + "."
    return f"{head}, {article(genres[0])} {', '.join(genres)} film."


def _photo_prompt(meta: dict[str, Any], noun: str) -> str:
    title = str(meta.get("title") or "").strip()
    head = f'A photo of "{title}"' if title else f"A photo of {article(noun)} {noun}"
    brand = str(meta.get("brand") or "").strip()
    if brand:
        head += f" by {brand}"
    found = labels(meta)
    if found:
        head += f", {article(noun)} {noun} in {found[-1].lower()}"
    return head + "."


def prompt_key(noun: str) -> dict[str, str]:
    """What the prompts add to the CLIP features' cache key: nothing for movies (their prompt is unchanged)."""
    return {} if noun == "movie" else {"prompt": f"photo:{noun}"}
