"""Domain words come from the data set: the noun in templates and prompts, shares of the user's
items, no rating said without a rating column, and `recommend` shows what the catalogue has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import FIXTURES
from test_item_fields import PATH, SHOP, write_catalogue
from ur4rec_cli.data.prepare import load_dataset, prepare_data
from ur4rec_cli.errors import ArtifactMissingError
from ur4rec_cli.features.llm import prompts as P
from ur4rec_cli.features.llm.wording import plural, wording_of
from ur4rec_cli.settings import load_settings


def _dataset(source: Path, **data):
    settings = load_settings(None, {"data": {"source": str(source), **data}})
    prepare_data(settings)
    return load_dataset(settings)[0]


def _all_user_words(ds) -> list[str]:
    out = []
    for u in range(1, ds.n_users + 1):
        out += [P.template_user_text(ds, u, 20), P.user_prompt(ds, u, 20).user, P.strict_user_prompt(ds, u, 20).user]
    return out


def test_shares_are_shares_of_the_users_items(tmp_path: Path) -> None:
    ds = _dataset(write_catalogue(tmp_path / "shop", SHOP))
    assert wording_of(ds).universal == {"Industrial & Scientific"}  # on every item: says nothing of a user
    for u in range(1, ds.n_users + 1):
        profile = P.user_profile(ds, u, 20)
        assert profile.genre_shares and all(0 < s <= 1 for _, s in profile.genre_shares)
        assert "Industrial & Scientific" not in dict(profile.genre_shares)
    percents = [int(p) for text in _all_user_words(ds) for p in re.findall(r"(\d+)%", text)]
    assert percents and max(percents) <= 100
    text = P.template_user_text(ds, 1, 20)
    assert text.startswith("A customer. Mostly chooses lab & scientific products (") and "lab supplies (" in text


def test_no_rating_is_said_without_a_rating_column(tmp_path: Path) -> None:
    ds = _dataset(write_catalogue(tmp_path / "shop", SHOP))
    assert not ds.has_rating
    for text in _all_user_words(ds):
        assert not re.search(r"rated|rating|/5|average", text, re.IGNORECASE), text
    assert P.template_user_text(ds, 1, 20).endswith("Recently chose: Pipette Tips; Digital Caliper 150 mm. 2 products in their history.")
    assert "Products in their history: 2." in P.user_prompt(ds, 1, 20).user.splitlines()
    rated = _dataset(FIXTURES / "atomic-books")  # a rating column: ratings are said, on the data's own scale
    assert rated.has_rating and P.template_user_text(rated, 1, 20).endswith("Has rated 2 items, 4.5/5 on average.")


@pytest.mark.parametrize(
    "title_column, noun, person, verb",
    [("movie_title", "movie", "viewer", "watches"), ("book_title", "book", "reader", "reads"), ("name", "item", "user", "chooses")],
)
def test_the_noun_comes_from_the_title_column(tmp_path: Path, title_column: str, noun: str, person: str, verb: str) -> None:
    header = f"item_id:token\t{title_column}:token_seq\tgenre:token_seq"
    items = ["a\tFirst\tDrama", "b\tSecond\tComedy", "c\tThird\tDrama Comedy", "d\tFourth\tWar"]
    ds = _dataset(write_catalogue(tmp_path / title_column, items, header))
    assert ds.noun == noun
    expect = " Expect character-driven drama." if noun == "movie" else ""  # the genre phrases are film words
    assert P.template_item_text(ds, 1) == f"First is a drama {noun}.{expect}"
    assert P.item_prompt(ds, 1).user.startswith(f"{noun.capitalize()}: First\nGenres: Drama\n")
    assert P.item_prompt(ds, 1).system == f"You write short, factual texts for {'an' if noun == 'item' else 'a'} {noun} recommender. Answer with the text only."
    assert P.template_user_text(ds, 1, 20).startswith(f"A {person}. Mostly {verb} ")
    assert f"Share of their {plural(noun)} per genre" in P.user_prompt(ds, 1, 20).user


def test_the_noun_is_a_setting_and_remakes_the_data_set(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_catalogue(tmp_path / "shop", SHOP)
    assert _dataset(source).noun == "product"  # a brand column, no noun in the title column's name
    r = cli("data", "--source", str(source), "--noun", "Lab Supply", "--json")
    assert r.code == 0 and '"cached": false' in r.stdout and '"noun": "lab supply"' in r.stdout, r
    ds = load_dataset(load_settings(None, {"data": {"source": str(source), "noun": "lab supply"}}))[0]
    assert P.template_item_text(ds, 4).startswith("Beaker Set is a lab supply by LabCo.")
    assert P.item_prompt(ds, 4).system == "You write short, factual texts for a lab supply recommender. Answer with the text only."
    assert P.template_user_text(ds, 1, 20).endswith("2 lab supplies in their history.")
    with pytest.raises(ArtifactMissingError, match="prepared with the noun 'lab supply', not data.noun 'gadget'"):
        load_dataset(load_settings(None, {"data": {"source": str(source), "noun": "gadget"}}))
    monkeypatch.setenv("UR4REC_DATA__NOUN", "gadget")
    assert load_settings().data.noun == "gadget"
    bad = cli("data", "--source", str(source), "--noun", "gadget 2")
    assert bad.code == 2 and "data.noun" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad


def test_recommend_shows_what_the_catalogue_has(capsys: pytest.CaptureFixture[str]) -> None:
    from ur4rec_cli.cli.recommend import print_result

    rows = [
        {"rank": 1, "item_id": "p1", "title": "Digital Caliper", "year": None, "genres": [], "brand": "Acme Tools",
         "categories": PATH.split(","), "score": 2.0},
        {"rank": 2, "item_id": "p2", "title": "Pipette Tips", "year": None, "genres": [], "brand": "LabCo",
         "categories": ["Industrial & Scientific", "Safety"], "score": 1.0},
    ]  # fmt: skip
    print_result({"user": "u1", "dataset": "shop", "history": 3, "stage": "end_to_end", "items": rows}, explain=False)
    out = capsys.readouterr().out
    header = re.findall(r"\w+", out.splitlines()[1])
    assert header == ["rank", "item", "title", "brand", "category", "score"]  # no year, no genres
    assert "Acme Tools" in out and "Lab Supplies" in out and "Safety" in out  # a path's most specific step
    movie = [{"rank": 1, "item_id": 1, "title": "Toy Story", "year": 1995, "genres": ["Animation"], "score": 1.0}]
    print_result({"user": 1, "dataset": "ml-100k", "history": 3, "stage": "end_to_end", "items": movie}, explain=False)
    assert re.findall(r"\w+", capsys.readouterr().out.splitlines()[1]) == ["rank", "item", "title", "year", "genres", "score"]
