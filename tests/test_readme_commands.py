"""Every `ur4rec ...` command line in the README and the docs parses: commands, flags, choices.

The research code's README commands failed; here each documented line goes through the real
Click parser of the app (without running the command), so a renamed flag breaks this test.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from ur4rec_cli.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    """(file:line, argv string) for every ur4rec invocation in a code line of the docs."""
    found = []
    for path in DOCS:
        for no, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            text = line.strip().strip("`")
            # `ur4rec ...` at the start of a command, or `-m ur4rec_cli ...` under torchrun.
            for m in re.finditer(r"(?:^|&&\s*|\|\s*|\$\s*)(?:\S*/)?ur4rec\s+([^#`|&]*)|-m ur4rec_cli\s+([^#`|&]*)", text):
                args = (m.group(1) or m.group(2) or "").strip()
                if args and not args.startswith(("is ", "turns ", "train`")) and "<" not in args and "..." not in args:
                    found.append((f"{path.name}:{no}", args))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands() -> None:
    names = {shlex.split(a)[0] for _, a in COMMANDS if not shlex.split(a)[0].startswith("-")}
    assert {"data", "llm", "clip", "train", "evaluate", "recommend", "config"} <= names


@pytest.mark.parametrize(("where", "args"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where: str, args: str) -> None:
    root = typer.main.get_command(app)
    argv = shlex.split(args)
    try:
        ctx = root.make_context("ur4rec", list(argv), resilient_parsing=False)
        # Click < 8.2 keeps the subcommand name in protected_args; newer Click in _protected_args.
        protected = getattr(ctx, "protected_args", None)
        rest = list(protected if protected is not None else getattr(ctx, "_protected_args", [])) + list(ctx.args)
        if rest:
            sub = root.get_command(ctx, rest[0])
            assert sub is not None, f"{where}: unknown command {rest[0]!r} in `ur4rec {args}`"
            sub.make_context(rest[0], rest[1:], parent=ctx, resilient_parsing=False)
    except Exception as exc:  # Typer may vendor its own Click: match the exception by name
        if type(exc).__name__ == "Exit":
            return  # --help / --version style lines
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        pytest.fail(f"{where}: `ur4rec {args}` does not parse: {message}")
