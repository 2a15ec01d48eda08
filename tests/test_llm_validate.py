"""Answers are validated before they become texts: a rejected answer gets one stricter second try,
then the template text; each entry records where its text came from (scripted server, tiny data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openai_server import ChatServer, Fault
from test_llm_cli import _jsonl, _llm, home, server, tiny_dataset  # noqa: F401  (fixtures)

from ur4rec_cli.features.llm.validate import rejection, title_forms


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("Great.", "too short"),
        ("x" * 40 + " y z", None),
        ("Describe this movie in two sentences: its story, its tone and who would enjoy it.", "echo of the prompt"),
        ("A warm animated comedy about toys that come alive, for families and anyone young at heart.", None),
    ],
)
def test_rejection_reasons(text: str, why: str | None) -> None:
    prompt = "Movie: Toy Story (1995)\nGenres: Animation, Comedy\nDescribe this movie in two sentences: its story, its tone and who would enjoy it."
    assert rejection(text, prompt, max_chars=200) == why


def test_held_out_title_in_any_spelling_is_rejected() -> None:
    assert title_forms("Shawshank Redemption, The") == ["Shawshank Redemption, The", "The Shawshank Redemption", "Shawshank Redemption"]
    text = "They love prison dramas like The Shawshank Redemption and quiet character studies."
    assert rejection(text, "User: a viewer.", max_chars=500, forbidden_titles=["Shawshank Redemption, The"]) == "names a held-out title"
    assert rejection(text, "User: a viewer.", max_chars=500, forbidden_titles=["Heat"]) is None
    assert rejection("x " * 400, "p", max_chars=100) == "too long"


GOOD = "A warm comedy about rivalry and friendship, for families and anyone young at heart."
ECHO = "Describe this movie in two sentences: its story, its tone and who would enjoy it."


def _rows(home: Path, group: str) -> list[dict]:
    return _jsonl(home / "features" / "ml-100k" / "texts" / f"{group}.jsonl")


def test_rejected_answers_get_a_second_try_then_the_template(cli, home: Path, server: ChatServer) -> None:
    from ur4rec_cli.features.llm import prompts as P
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.settings import load_settings

    ds, _ = load_dataset(load_settings())
    first_item = P.item_prompt(ds, 1).user.splitlines()[0]  # "Movie: <title of item 1>"
    second_item = P.item_prompt(ds, 2).user.splitlines()[0]
    # Item 1 echoes its prompt, then answers the stricter one; item 2 echoes both times.
    server.fail_next(Fault.reply(ECHO, match=first_item + "\n"))
    server.fail_next(Fault.reply(ECHO, match=second_item + "\n"))
    server.fail_next(Fault.reply("ok", match=P.strict_item_prompt(ds, 2).user))
    server.fail_next(Fault.reply(GOOD, match=P.strict_item_prompt(ds, 1).user))
    r = _llm(cli, server, "--json")
    assert r.code == 0, r
    s = json.loads(r.stdout)
    assert s["requests"]["sent"] == 11 + 2  # two second tries
    assert s["sources"]["items"] == {"llm": 5, "llm-retry": 1, "template": 1, "pending": 0, "rejected": 2}
    assert s["sources"]["users"]["llm"] == 4
    items = _rows(home, "items")
    assert items[0]["source"] == "llm-retry" and items[0]["rejected"] == "echo of the prompt"
    assert items[0]["text"] == GOOD
    assert items[1]["source"] == "template" and items[1]["text"] == P.template_item_text(ds, 2)
    assert items[1]["rejected"] == "echo of the prompt; second try: too short"
    assert all(row["source"] == "llm" for row in items[2:])
    manifest = json.loads((home / "features" / "ml-100k" / "texts" / "manifest.json").read_text())
    assert manifest["extra"]["sources"]["items"]["template"] == 1

    # The verdicts are recomputed from the cache: a --force rebuild sends nothing and agrees.
    before = sum(server.requests.values())
    again = _llm(cli, server, "--force", "--json")
    assert again.code == 0 and sum(server.requests.values()) == before
    assert [r["text"] for r in _rows(home, "items")] == [r["text"] for r in items]


def test_limit_counts_second_tries_and_a_rerun_finishes(cli, home: Path, server: ChatServer) -> None:
    from ur4rec_cli.features.llm import prompts as P
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.settings import load_settings

    ds, _ = load_dataset(load_settings())
    server.fail_next(Fault.reply(ECHO, match=P.item_prompt(ds, 1).user.splitlines()[0] + "\n"))
    server.fail_next(Fault.reply(GOOD, match=P.strict_item_prompt(ds, 1).user))
    r = _llm(cli, server, "--limit", "11", "--json")
    s = json.loads(r.stdout)
    assert r.code == 0 and s["complete"] is False and s["remaining"] == 1  # item 1 still needs its second try
    assert not (home / "features" / "ml-100k" / "texts").exists()
    dry = json.loads(_llm(cli, server, "--dry-run", "--json").stdout)
    assert dry["requests_to_send"] == 1
    assert dry["second_tries_to_send"] == 1  # the one rejected first answer, counted before it is re-asked
    r = _llm(cli, server, "--json")
    s = json.loads(r.stdout)
    assert s["complete"] is True and s["requests"]["sent"] == 1 and s["sources"]["items"]["llm-retry"] == 1


def test_an_answer_that_starts_by_copying_its_prompt_lines_keeps_only_its_own(cli, home: Path, server: ChatServer) -> None:
    from ur4rec_cli.features.llm import prompts as P
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.settings import load_settings

    ds, _ = load_dataset(load_settings())
    head = "\n".join(P.item_prompt(ds, 1).user.splitlines()[:2])  # "Movie: ...\nGenres: ..."
    server.fail_next(Fault.reply(f"{head}\n{GOOD}", match=P.item_prompt(ds, 1).user.splitlines()[0] + "\n"))
    r = _llm(cli, server, "--json")
    assert r.code == 0, r
    first = _rows(home, "items")[0]
    assert first["text"] == GOOD and first["source"] == "llm"
