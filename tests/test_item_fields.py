"""Any catalogue: item columns take roles by name, the template text is built from every role
within the encoder's window, and bad item tables are one line with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ur4rec_cli.data.item_fields import detect_columns, infer_noun, list_separator, read_item_row, split_list
from ur4rec_cli.data.prepare import load_dataset, prepare_data
from ur4rec_cli.features.llm import prompts as P
from ur4rec_cli.features.llm.wording import TEXT_CHARS
from ur4rec_cli.settings import load_settings

HEADER = "item_id:token\ttitle:token_seq\tbrand:token_seq\tcategories:token_seq\tprice:float\tcolor:token\tdescription:token_seq"
PATH = "Industrial & Scientific,Lab & Scientific Products,Lab Supplies"


def write_catalogue(folder: Path, items: list[str], header: str = HEADER, inter: str | None = None) -> Path:
    """``shop.inter`` (no rating column: implicit feedback) and ``shop.item`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if inter is None:
        ids = [row.split("\t", 1)[0] for row in items]
        rows = [f"u{u}\t{ids[(u + k) % len(ids)]}\t{1000 + k}" for u in range(4) for k in range(4)]
        inter = "user_id:token\titem_id:token\ttimestamp:float\n" + "\n".join(rows) + "\n"
    (folder / "shop.inter").write_text(inter, "utf-8")
    (folder / "shop.item").write_text(header + "\n" + "\n".join(items) + "\n", "utf-8")
    return folder


SHOP = [
    f"p1\tDigital Caliper 150 mm.\tAcme Tools\t{PATH},Measuring\t24.5\tsilver\tStainless steel caliper that reads to 0.01 mm.",
    f"p2\tPipette Tips\tLabCo\t{PATH}\t9\t\tSterile tips, 1000 per box.",
    f"p3\tNitrile Gloves\tSafeHands\tIndustrial & Scientific,Safety\t12.75\tblue\tPowder-free gloves.",
    f"p4\tBeaker Set\tLabCo\t{PATH},Glassware\t\t\t",
]


def _settings(source: Path, **data):
    return load_settings(None, {"data": {"source": str(source), **data}})


def test_roles_come_from_the_column_names() -> None:
    header = ["item_id", "movie_title", "release_date", "class", "brand_name", "summary", "price", "color", "homepage", "name"]
    rows = [["1", "Heat (1995)", "15-Dec-1995", "Action Crime", "WB", "A heist.", "3", "red", "http://x.org/1", "dup"]]
    cols = detect_columns("x.item", header, [], rows, ("item_id",))
    assert dict(zip(cols.names, cols.roles)) == {
        "item_id": "id", "movie_title": "title", "release_date": "year", "class": "genres", "brand_name": "brand",
        "summary": "description", "price": "number", "color": "field", "homepage": "links", "name": "field",
    }  # fmt: skip
    assert infer_noun(cols) == "movie"  # RecBole's MovieLens title column
    meta = read_item_row("x.item", 2, cols, rows[0])
    assert meta == {"title": "Heat", "year": 1995, "genres": ["Action", "Crime"], "brand": "WB", "description": "A heist.",
                    "fields": {"price": 3.0, "color": "red", "name": "dup"}}  # fmt: skip
    assert cols.described()["class"] == "genres (a list split on white space)"
    typed = detect_columns("y.item", ["item_id", "title", "weight"], ["token", "token_seq", "float"], [["1", "A", "2.5"]], ("item_id",))
    assert typed.roles == ["id", "title", "number"]  # a RecBole float column is a number
    assert infer_noun(typed) == "item"
    assert infer_noun(detect_columns("z.item", ["item_id", "title", "brand"], [], [["1", "A", "B"]], ("item_id",))) == "product"


def test_a_category_path_with_commas_and_spaces_is_a_comma_list() -> None:
    values = [PATH, "Industrial & Scientific,Safety", "Industrial & Scientific"]
    assert list_separator(values) == ","
    assert split_list(values[0], ",") == ["Industrial & Scientific", "Lab & Scientific Products", "Lab Supplies"]
    assert list_separator(["Animation Children's Comedy", "Drama"]) is None  # ML-100K's class: white space
    assert split_list("Animation Children's Comedy", None) == ["Animation", "Children's", "Comedy"]
    assert list_separator(["Sci-Fi|Drama", "Comedy, Romance|War"]) == "|"  # in the most values


def test_the_template_text_has_every_role_in_order(tmp_path: Path) -> None:
    summary = prepare_data(_settings(write_catalogue(tmp_path / "shop", SHOP)))
    assert summary["noun"] == "product" and summary["feedback"] == "implicit"
    assert summary["item_columns"]["categories"] == "categories (a list split on ',')"
    assert summary["item_columns"]["price"] == "number" and summary["item_columns"]["color"].startswith("field")
    ds, _ = load_dataset(_settings(tmp_path / "shop"))
    text = P.template_item_text(ds, ds.item_ids.index("p1") + 1)
    assert text == (
        "Digital Caliper 150 mm. is a product by Acme Tools. "
        f"Categories: {PATH.replace(',', ', ')}, Measuring. price: 24.5. color: silver. "
        "Stainless steel caliper that reads to 0.01 mm."
    )
    assert P.template_item_text(ds, ds.item_ids.index("p4") + 1) == f"Beaker Set is a product by LabCo. Categories: {PATH.replace(',', ', ')}, Glassware."
    prompt = P.item_prompt(ds, 1)
    assert prompt.user.splitlines() == [
        "Product: Digital Caliper 150 mm.", "Brand: Acme Tools", f"Categories: {PATH.replace(',', ', ')}, Measuring",
        "price: 24.5", "color: silver", "Description: Stainless steel caliper that reads to 0.01 mm.",
        "Describe this product in two sentences: what it is, what it is for and who would want it.",
    ]  # fmt: skip
    assert prompt.system == "You write short, factual texts for a product recommender. Answer with the text only."


def test_the_cut_keeps_the_title_and_shortens_the_longest_field_first(tmp_path: Path) -> None:
    long_title = "Ultra Precise Laboratory Balance " * 4
    items = [f"p1\t{long_title.strip()}\tAcme\t{PATH}\t\t\t" + "word " * 400, f"p2\tSmall\tAcme\t{PATH}\t\t\tshort"]
    prepare_data(_settings(write_catalogue(tmp_path / "shop", items)))
    ds, _ = load_dataset(_settings(tmp_path / "shop"))
    text = P.template_item_text(ds, 1)
    assert len(text) <= TEXT_CHARS and text.startswith(long_title.strip() + " is a product by Acme.")
    assert f"Categories: {PATH.replace(',', ', ')}." in text and text.endswith("word…")  # the description took the cut
    huge = [f"p1\t{'T' * (TEXT_CHARS + 50)}\tAcme\t{PATH}\t\t\tdescribed", "p2\tSmall\tAcme\tA\t\t\tshort"]
    prepare_data(_settings(write_catalogue(tmp_path / "huge", huge)))
    ds, _ = load_dataset(_settings(tmp_path / "huge"))
    assert P.template_item_text(ds, 1) == f"{'T' * (TEXT_CHARS + 50)} is a product by Acme."  # the title stays whole


@pytest.mark.parametrize(
    "header, items, says",
    [
        (HEADER.replace("item_id:token", "sku:token"), SHOP, "shop.item line 1: no item_id column in the header"),
        (HEADER.replace("color:token", "Brand:token"), SHOP, "shop.item line 1: column 'Brand' appears twice"),
        (HEADER, [f"{r.split(chr(9), 2)[0]}\t\t{r.split(chr(9), 2)[2]}" for r in SHOP], "the title column 'title' is empty in every row"),
        (HEADER, [SHOP[0], SHOP[1].replace("\t9\t", "\tnine\t")], "shop.item line 3: non-numeric price 'nine'"),
    ],
    ids=["no-id-column", "duplicate-column", "empty-title-column", "non-numeric-price"],
)
def test_bad_item_tables_are_one_line_and_write_nothing(cli, tmp_path: Path, isolated_home: Path, header: str, items: list[str], says: str) -> None:
    source = write_catalogue(tmp_path / "shop", items, header)
    r = cli("data", "--source", str(source))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.code == 3 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], r
    assert not (isolated_home / "datasets").exists() or not any((isolated_home / "datasets").iterdir())


def test_the_data_summary_names_each_columns_role(cli, tmp_path: Path) -> None:
    source = write_catalogue(tmp_path / "shop", SHOP)
    r = cli("data", "--source", str(source))
    assert r.code == 0, r
    for line in ("item column brand", "item column categories", "categories (a list split on ',')", "items are", "implicit (no rating column"):
        assert line in r.stdout, r.stdout
    obj = json.loads(cli("data", "--source", str(source), "--json").stdout)
    assert obj["item_columns"]["description"] == "description" and obj["noun"] == "product"
