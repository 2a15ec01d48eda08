"""Root of the ``ur4rec`` command: global options, command registration, error mapping (SIGTERM
included: it takes Ctrl-C's path and exits 143, ``termination.py``).

Heavy libraries (torch, openai, open_clip, sentence-transformers) are imported inside the
command functions only, so ``ur4rec --help`` starts fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ur4rec_cli import __version__
from ur4rec_cli.cli import clip as clip_cmd
from ur4rec_cli.cli import config as config_cmd
from ur4rec_cli.cli import data as data_cmd
from ur4rec_cli.cli import evaluate as evaluate_cmd
from ur4rec_cli.cli import items as items_cmd
from ur4rec_cli.cli import llm as llm_cmd
from ur4rec_cli.cli import recommend as recommend_cmd
from ur4rec_cli.cli import train as train_cmd
from ur4rec_cli.cli._common import AppContext

app = typer.Typer(
    name="ur4rec",
    help="UR4Rec V2: multimodal sequential recommendation (SASRec + hierarchical MoE) on MovieLens.",
    no_args_is_help=True,
    # Pretty tracebacks with locals can print API keys: off.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ur4rec {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Artifact root [env UR4REC_HOME; default: the user data directory].", show_default=False),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config file [env UR4REC_CONFIG; default: see `ur4rec config`].", show_default=False),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks [env UR4REC_DEBUG=1].")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    from ur4rec_cli.console import set_quiet

    set_quiet(quiet)
    ctx.obj = AppContext(home=home, config_file=config, quiet=quiet, debug=debug or _env_debug())


def _env_debug() -> bool:
    return os.environ.get("UR4REC_DEBUG", "").lower() in {"1", "true", "yes", "on"}


# (name, short help for `ur4rec --help`: whole at 80 columns, long help for `ur4rec NAME --help`)
_COMMANDS = (
    ("data", data_cmd, "Fetch, verify, split a data set; make it current.",
     "Fetch, verify and split the data set (MovieLens-100K by default) and make it the one later commands use."),
    ("llm", llm_cmd, "Item and user texts (LLM or template), embedded.",
     "LLM item descriptions and user-preference texts, then their text embeddings."),
    ("clip", clip_cmd, "CLIP image features of the item posters.",
     "CLIP image features of the item posters (text fallback for items without one)."),
    ("train", train_cmd, "Train UR4Rec V2: one stage or all four.",
     "Train UR4Rec V2: pretrain_sasrec -> pretrain_retriever -> joint_finetune -> end_to_end."),
    ("evaluate", evaluate_cmd, "HR@k, NDCG@k, MRR of a trained stage (full ranking).",
     "HR@k, NDCG@k and MRR under full ranking (or sampled negatives)."),
    ("recommend", recommend_cmd, "Top-N recommendations for one user or all users.",
     "Top-N recommendations for one user, or for all users."),
    ("config", config_cmd, "The resolved settings and the config file's place.",
     "Print the resolved settings as TOML (secrets masked) and where the config file is looked for."),
)
for _name, _module, _short, _help in _COMMANDS:
    # evaluate: `--k 5 10 20` leaves 10 and 20 as extra arguments, which the command reads itself.
    _extra = {"context_settings": {"allow_extra_args": True}} if _name == "evaluate" else {}
    app.command(_name, help=_help, short_help=_short, **_extra)(_module.command)
    if _name == "recommend":
        app.add_typer(items_cmd.app, name="items", short_help="Add items that arrived after training (scored from their content).")


# Typer ships its own copy of click; its exception classes are reached through the public
# typer.BadParameter (a UsageError, itself a ClickException) rather than a private module.
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_ABORTS = (typer.Abort, getattr(sys.modules[_CLICK_EXCEPTION.__module__], "Abort", typer.Abort))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the app and maps library errors to one line + exit code."""
    from ur4rec_cli.termination import handle_sigterm

    debug = _env_debug() or "--debug" in (argv if argv is not None else sys.argv[1:])
    with handle_sigterm():  # SIGTERM takes Ctrl-C's path (termination.py)
        _run(argv, debug)


def _run(argv: list[str] | None, debug: bool) -> None:
    from ur4rec_cli.errors import Ur4recError
    from ur4rec_cli.termination import received

    try:
        # Not standalone: usage errors reach us, to be printed as one `error:` line like the rest.
        rv = app(args=argv, prog_name="ur4rec", standalone_mode=False)
        if isinstance(rv, int) and rv:
            raise SystemExit(rv)
    except _CLICK_EXCEPTION as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # plain `ur4rec`: the help, as before
            exc.show()
            raise SystemExit(exc.exit_code) from None
        message = _one_line(exc.format_message())
        if isinstance(exc, _USAGE_ERROR):
            ctx = getattr(exc, "ctx", None)
            message += f" (see `{ctx.command_path if ctx is not None else 'ur4rec'} --help`)"
        _fail(message, exc.exit_code)
    except _ABORTS:
        _interrupted(received())
    except SystemExit as exc:
        # Typer turns Ctrl-C into a silent exit 130; say what happened, in the same one-line form.
        if exc.code == 130:
            _interrupted(received())
        raise
    except Ur4recError as exc:
        if debug:
            raise
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (termination.Terminated)
        if debug:
            raise
        _interrupted(received())
    except Exception as exc:  # the last line of defence: one line, no traceback, unless --debug
        if debug:
            raise
        from ur4rec_cli.diskspace import disk_full, is_disk_full
        from ur4rec_cli.errors import out_of_memory

        if received():  # a SIGTERM that broke a blocking call (a collective of torchrun's ranks) on its way
            _interrupted(True)
        if is_disk_full(exc):  # a writer that does not name its path: named here by the home
            full = disk_full(exc, getattr(exc, "filename", None) or _home(argv if argv is not None else sys.argv[1:]))
            _fail(str(full), full.exit_code)
        oom = out_of_memory(exc, _command(argv if argv is not None else sys.argv[1:]))
        if oom is not None:
            _fail(str(oom), oom.exit_code)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _fail(f"internal error: {type(exc).__name__}: {first} (rerun with --debug for a traceback)", 70)


def _interrupted(terminated: bool) -> None:
    """Ctrl-C: exit 130; SIGTERM: exit 143, said once (rank 0 speaks for a torchrun job)."""
    from ur4rec_cli.termination import EXIT_CODE

    if not terminated:
        _fail("interrupted", 130)
    if os.environ.get("RANK", "0") not in ("", "0"):
        raise SystemExit(EXIT_CODE)
    _fail("stopped by SIGTERM", EXIT_CODE)


def _home(argv: list[str]) -> str:
    """The artifact home this command writes: --home, UR4REC_HOME, else the user data directory."""
    if "--home" in argv[:-1]:
        return argv[argv.index("--home") + 1]
    if os.environ.get("UR4REC_HOME"):
        return os.environ["UR4REC_HOME"]
    import platformdirs

    return str(platformdirs.user_data_path("ur4rec"))


def _command(argv: list[str]) -> str | None:
    """The subcommand named on the command line (global options and their values skipped)."""
    names = {name for name, *_ in _COMMANDS}
    return next((a for a in argv if a in names), None)


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.strip().splitlines() if part.strip())


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {message.splitlines()[0] if message else 'failed'}\n")
    sys.stderr.flush()
    raise SystemExit(code)
