"""Every bad input: non-zero exit, one stderr line naming the file, no traceback, nothing in the store."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from conftest import FIXTURES


def _zip(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"ml-100k/{p.name}")
    return dest


def _copy(tmp_path: Path, name: str = "ml-100k") -> Path:
    return shutil.copytree(FIXTURES / name, tmp_path / "src" / name)


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[number - 1] = text.encode("latin-1")
    path.write_bytes(b"\n".join(lines))


def _missing(tmp_path: Path) -> tuple[Path, str]:
    return tmp_path / "nowhere" / "ml-100k.zip", "ml-100k.zip"


def _not_a_zip(tmp_path: Path) -> tuple[Path, str]:
    p = tmp_path / "ml-100k.zip"
    p.write_bytes(b"this is not a zip file at all\n" * 50)
    return p, "ml-100k.zip"


def _truncated_zip(tmp_path: Path) -> tuple[Path, str]:
    full = _zip(FIXTURES / "ml-100k", tmp_path / "full.zip").read_bytes()
    p = tmp_path / "ml-100k.zip"
    p.write_bytes(full[: len(full) // 2])
    return p, "ml-100k.zip"


def _corrupt_member(tmp_path: Path) -> tuple[Path, str]:
    folder = _copy(tmp_path)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t3\t{u * 100 + i}\n" for u in range(1, 40) for i in range(1, 8)))
    (folder / "u.info").unlink()
    p = _zip(folder, tmp_path / "ml-100k.zip")
    raw = bytearray(p.read_bytes())
    start = raw.index(b"ml-100k/u.data") + len("ml-100k/u.data")  # first local header's data
    for k in range(start + 20, start + 40):
        raw[k] ^= 0xFF
    p.write_bytes(bytes(raw))
    return p, "u.data"


def _non_numeric_user(tmp_path: Path) -> tuple[Path, str]:
    folder = _copy(tmp_path)
    _replace_line(folder / "u.data", 3, "x\t3\t4\t200")
    return folder, "u.data line 3: non-numeric user id 'x'"


def _missing_column(tmp_path: Path) -> tuple[Path, str]:
    folder = _copy(tmp_path)
    _replace_line(folder / "u.data", 5, "2\t3\t4")
    return folder, "u.data line 5"


def _non_numeric_rating(tmp_path: Path) -> tuple[Path, str]:
    folder = _copy(tmp_path)
    _replace_line(folder / "u.data", 2, "1\t2\tgood\t200")
    return folder, "u.data line 2: non-numeric rating"


def _item_missing_column(tmp_path: Path) -> tuple[Path, str]:
    folder = _copy(tmp_path)
    _replace_line(folder / "u.item", 4, "4|City of Lost Children, The (1995)|01-Jan-1995")
    return folder, "u.item line 4"


def _item_non_numeric_id(tmp_path: Path) -> tuple[Path, str]:
    folder = _copy(tmp_path)
    text = (folder / "u.item").read_bytes().split(b"\n")
    text[1] = b"two" + text[1][1:]
    (folder / "u.item").write_bytes(b"\n".join(text))
    return folder, "u.item line 2: non-numeric item id 'two'"


def _empty_data(tmp_path: Path) -> tuple[Path, str]:
    folder = _copy(tmp_path)
    (folder / "u.data").write_text("")
    return folder, "u.data: empty file"


def _empty_user(tmp_path: Path) -> tuple[Path, str]:
    folder = _copy(tmp_path)
    (folder / "u.user").write_text("\n")
    return folder, "u.user: empty file"


def _truncated_at_line(tmp_path: Path) -> tuple[Path, str]:
    folder = _copy(tmp_path)
    lines = (folder / "u.data").read_text().splitlines(keepends=True)
    (folder / "u.data").write_text("".join(lines[:10]))
    return folder, "u.data"


def _ml1m_bad_rating(tmp_path: Path) -> tuple[Path, str]:
    folder = _copy(tmp_path, "ml-1m")
    _replace_line(folder / "ratings.dat", 4, "1::3408::four::978300275")
    return folder, "ratings.dat line 4: non-numeric rating 'four'"


def _atomic_no_item_column(tmp_path: Path) -> tuple[Path, str]:
    folder = _copy(tmp_path, "atomic-books")
    text = (folder / "books.inter").read_text().replace("item_id:token", "book:token")
    (folder / "books.inter").write_text(text)
    return folder, "books.inter line 1: no item_id column"


def _atomic_untyped_header(tmp_path: Path) -> tuple[Path, str]:
    folder = _copy(tmp_path, "atomic-books")
    text = (folder / "books.inter").read_text().replace("rating:float", "rating")
    (folder / "books.inter").write_text(text)
    return folder, "books.inter line 1"


def _atomic_empty(tmp_path: Path) -> tuple[Path, str]:
    folder = _copy(tmp_path, "atomic-books")
    (folder / "books.inter").write_text("")
    return folder, "books.inter: empty file"


def _unknown_folder(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    return folder, "photos"


CASES = [
    _missing, _not_a_zip, _truncated_zip, _corrupt_member, _non_numeric_user, _missing_column,
    _non_numeric_rating, _item_missing_column, _item_non_numeric_id, _empty_data, _empty_user,
    _truncated_at_line, _ml1m_bad_rating, _atomic_no_item_column, _atomic_untyped_header, _atomic_empty,
    _unknown_folder,
]  # fmt: skip


@pytest.mark.parametrize("make", CASES, ids=[c.__name__.lstrip("_") for c in CASES])
def test_bad_input_one_line_no_artifact(cli, tmp_path: Path, isolated_home: Path, make) -> None:
    source, expected = make(tmp_path)
    r = cli("data", "--source", str(source))
    assert r.code != 0, r
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r
    assert lines[0].startswith("error: ") and expected in lines[0], r
    assert "Traceback" not in r.stderr
    datasets = isolated_home / "datasets"
    assert not datasets.exists() or not any(datasets.iterdir()), list(datasets.iterdir())


def test_unknown_dataset_value_is_a_config_error(cli) -> None:
    r = cli("data", "--dataset", "ml-20m")
    assert r.code == 2 and "data.dataset" in r.stderr and "Traceback" not in r.stderr
