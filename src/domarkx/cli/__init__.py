"""The ``domarkx`` command line.

Each command group lives in its own module and is imported only when invoked, so
``domarkx --help`` and ``domarkx --version`` load nothing but click. ``main`` takes
``args`` and returns an exit code, which is how the tests drive it in-process.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import click

from domarkx._version import __version__
from domarkx.errors import DomarkxError

# name -> (module:attribute, one-line help shown by `domarkx --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "import": ("domarkx.cli.import_:import_cmd", "Build a snapshot from a Markdown document."),
    "export": ("domarkx.cli.export:export_cmd", "Write a snapshot or an instance out as Markdown."),
    "snapshots": ("domarkx.cli.snapshots:snapshots", "List, inspect, tag and remove snapshots."),
    "prune": ("domarkx.cli.snapshots:prune", "Delete stored data nothing refers to."),
    "new": ("domarkx.cli.new:new", "Start a document from a template."),
    "run": ("domarkx.cli.run:run_cmd", "Create an instance of a snapshot and run it."),
    "send": ("domarkx.cli.talk:send", "Send a message to an instance's model."),
    "chat": ("domarkx.cli.talk:chat", "Talk with an instance interactively."),
    "continue": ("domarkx.cli.talk:continue_", "Let the model answer an instance's last message."),
    "instances": ("domarkx.cli.instances:instances", "List, inspect, stop, start and remove instances."),
    "log": ("domarkx.cli.history:log", "Show an instance's messages and workspace versions."),
    "fork": ("domarkx.cli.history:fork", "Branch an instance at a message, workspace included."),
    "reset": ("domarkx.cli.reset:reset_cmd", "Rewind an instance in place; the tail stays recoverable."),
    "commit": ("domarkx.cli.history:commit", "Make a snapshot of an instance, workspace included."),
    "diff": ("domarkx.cli.diff:diff_cmd", "Show what changed between two workspace versions."),
    "verify": ("domarkx.cli.verify:verify_cmd", "Re-run a recorded session and check it matches."),
    "edit": ("domarkx.cli.edit:edit_cmd", "Edit a message of an instance and go on from there."),
    "mcp": ("domarkx.cli.mcp:mcp_cmd", "Serve an instance's workspace to an MCP client (Claude Code…)."),
    "exec": ("domarkx.cli.exec_:exec_cmd", "Run a command, or code, in an instance's workspace."),
    "cp": ("domarkx.cli.cp:cp", "Copy files between an instance's workspace and this machine."),
    "doctor": ("domarkx.cli.doctor:doctor", "Check the store (hashes, snapshots, instances) and this machine."),
    "plugins": ("domarkx.cli.plugins:plugins", "List installed resource plugins and their tools."),
    "trust": ("domarkx.cli.trust:trust_cmd", "Allow a document the powers it asks for (like direnv allow)."),
    "save": ("domarkx.cli.transfer:save_cmd", "Write sessions, workspaces included, to a bundle (tar)."),
    "load": ("domarkx.cli.transfer:load_cmd", "Add the sessions of a bundle to this home."),
    "push": ("domarkx.cli.transfer:push_cmd", "Push a session, workspace included, to an OCI registry."),
    "pull": ("domarkx.cli.transfer:pull_cmd", "Pull a session from an OCI registry."),
    "login": ("domarkx.cli.transfer:login_cmd", "Keep a registry credential (where docker keeps its own)."),
    "logout": ("domarkx.cli.transfer:logout_cmd", "Forget a registry credential."),
    "ui": ("domarkx.cli.ui:ui", "Browse and steer sessions in a local web app."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            if ctx.resilient_parsing:
                return None
            from domarkx._suggest import did_you_mean

            raise click.UsageError(f"no such command {cmd_name!r}{did_you_mean(cmd_name, COMMANDS)}", ctx)
        module, _, attr = target[0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return _no_color_everywhere(command)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])


def _no_colors(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.color = False


def _no_color_everywhere(command: click.Command) -> click.Command:
    """Let ``--no-color`` come after the command too (``domarkx log try1 --no-color``), on every subcommand."""
    if not any(param.name == "no_color" for param in command.params):
        command.params.append(
            click.Option(["--no-color"], is_flag=True, expose_value=False, callback=_no_colors, help="No colours.")
        )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _no_color_everywhere(sub)
    return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=(
        "Typical flow: `domarkx new chat -o talk.md`, `domarkx run talk.md --model openai:gpt-4o-mini` "
        '(it prints the instance\'s name), then `domarkx send NAME "…"`, `domarkx log NAME`, '
        "`domarkx fork NAME --at N`, `domarkx export NAME -o out.md`. "
        "Data lives in $DOMARKX_HOME (default: your user data directory)."
    ),
)
@click.version_option(__version__, "-V", "--version", prog_name="domarkx")
@click.option("--debug", is_flag=True, help="Show full tracebacks for internal errors.")
@click.option("--no-color", is_flag=True, help="No colours (also: the NO_COLOR environment variable).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, no_color: bool) -> None:
    """domarkx: a Markdown document is the source of truth for an LLM session.

    `import` a document to get an immutable snapshot (like `docker build`),
    `run` it to get an instance: its own conversation and versioned workspace
    (like `docker run`), talk to its model, and `export` either back to
    Markdown.
    """
    if no_color or os.environ.get("NO_COLOR"):
        ctx.color = False  # every command's context inherits it; click strips styles on echo


def _print_error(err: DomarkxError) -> None:
    if err.hint is None and err.exit_code == 1:
        from domarkx.cli._common import low_disk_hint

        err.hint = low_disk_hint()
    click.echo(err.format(), err=True)
    if err.hint:
        for line in err.hint.splitlines():
            click.echo(f"  hint: {line}", err=True)


def _sentence(message: str) -> str:
    """Click's "No such option: --x." as our messages read: lower-case start, no final period."""
    message = message.strip().removesuffix(".")
    return message[:1].lower() + message[1:] if message[1:2].islower() else message


def _harmless(message: str) -> str:
    """Click's message as one line a terminal only shows: it may quote what was typed (escapes, line breaks)."""
    from domarkx.cli._common import shown

    return shown(message, 500)


def _usage_error(exc: click.UsageError) -> int:
    """A usage error as one ``error:`` line and a pointer to the command's help, exit 2."""
    command = exc.ctx.command_path if exc.ctx is not None else "domarkx"
    message = _sentence(exc.format_message())
    if isinstance(exc, click.NoSuchOption):  # click words its suggestions its own way, and not always one
        from domarkx._suggest import did_you_mean

        message = f"no such option {exc.option_name!r}{did_you_mean(exc.option_name, exc.possibilities or ())}"
    click.echo(f"error: {_harmless(message)}", err=True)
    click.echo(f"  hint: see `{command} --help`", err=True)
    return 2


def main(args: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (0 ok, 1 runtime failure, 2 bad usage or input)."""
    argv = list(sys.argv[1:] if args is None else args)
    try:
        code = cli.main(args=argv, prog_name="domarkx", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:  # `domarkx` or `domarkx instances` alone: the help
        if exc.ctx is not None:
            click.echo(exc.ctx.get_help(), color=exc.ctx.color)
        return 0
    except click.UsageError as exc:
        return _usage_error(exc)
    except click.ClickException as exc:
        click.echo(f"error: {_harmless(_sentence(exc.format_message()))}", err=True)
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    except DomarkxError as exc:
        _print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if "--debug" in argv:
            raise
        click.echo(
            f"error: internal error: {type(exc).__name__}: {exc} (a bug; rerun with --debug for the traceback)",
            err=True,
        )
        return 1
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script entry point: keys leave the environment first (:mod:`domarkx._keys`)."""
    from domarkx import _keys

    _keys.hand_over(sys.argv[1:])
    sys.exit(main())
