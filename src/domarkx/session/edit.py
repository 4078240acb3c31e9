"""``domarkx edit``: change message N of an instance and go on from there, in a new instance.

The original stays as it is (``reset`` is the way to rewind in place). The new
instance is a fork holding messages 0..N-1 and the edited message N, its
workspace at the version message N started from. Offline, the rest of the
conversation follows and every assistant message from N on runs again, like
re-running a notebook from an edited cell; the build cache makes an edit that
does not touch code free. With a model, the tail is dropped and the model
answers the edited user message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from domarkx.errors import DocumentError, UsageError
from domarkx.session import convert
from domarkx.session.execute import Report, Runner, RunOptions

if TYPE_CHECKING:
    from domarkx.data.models import ConversationMessage, SessionInstance
    from domarkx.session.instance import InstanceManager

SOURCE = "<edited message>"


def current_text(instance: SessionInstance, at: int) -> str:
    """Message ``at`` as Markdown, as ``export`` writes it: what the editor opens."""
    from domarkx.parsing.render import edit_raw, render_message

    check_index(instance, at)
    message = instance.messages[at]
    return edit_raw(message) if message.raw is not None else render_message(message)


def parse_message(text: str, role: str) -> ConversationMessage:
    """The edited Markdown as one message; without a ``## role`` heading it is the body of a ``role`` message.

    A workspace version it names is a claim and is dropped: the run links its own.
    """
    from domarkx.parsing.markdown import MarkdownParser, line_offsets

    body = text.replace("\r\n", "\n")
    if not body.lstrip().startswith("## "):
        body = f"## {role}\n\n{body}"
    body = body if body.endswith("\n") else body + "\n"
    parsed = MarkdownParser().parse(body, path=SOURCE)
    if len(parsed.messages) != 1 or parsed.preamble_end:
        found = len(parsed.messages)
        raise DocumentError(
            f"the edited text must be exactly one message, found {found}",
            path=SOURCE,
            hint="keep one `## role` heading at the top; split a message with `domarkx send` instead",
        )
    offsets = line_offsets(body)
    message = parsed.messages[0]
    converted = convert.from_document(message, body[offsets[message.start] : offsets[message.end]])
    return converted.model_copy(update={"workspace_version": None})


def branch(
    instances: InstanceManager, ref: str, at: int, message: ConversationMessage, *, name: str | None, tail: bool
) -> SessionInstance:
    """A fork of ``ref`` with messages 0..``at``-1, ``message`` at ``at`` and, with ``tail``, the rest unlinked."""
    source = instances.get(ref)
    check_index(source, at)
    fork = instances.fork(source.id, at, name=name)
    rest = [m.model_copy(update={"workspace_version": None}) for m in source.messages[at + 1 :]] if tail else []
    fork.messages[at:] = [message, *rest]
    instances.save_messages(fork, at)
    return fork


def run_from(instances: InstanceManager, fork: SessionInstance, at: int, options: RunOptions) -> Report:
    """Run the fork's assistant messages from ``at`` on, starting from the version message ``at`` started from."""
    with instances.using(fork) as held:
        workspace = instances.workspaces.open(held.workspace_id)
        held.head_version = instances.version_before(held.id, at)
        return Runner(instances, held, workspace, options).run_from(at)


def check_index(instance: SessionInstance, at: int) -> None:
    if not 0 <= at < len(instance.messages):
        last = len(instance.messages) - 1
        span = f"the messages are 0..{last}" if last >= 0 else "the instance has no messages"
        raise UsageError(f"--at {at} is out of range: {span}", hint="see `domarkx log` for message indices")
