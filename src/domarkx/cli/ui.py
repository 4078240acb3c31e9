"""``domarkx ui``: browse and steer the store's sessions from a browser."""

from __future__ import annotations

import click


@click.command("ui")
@click.option("--port", type=int, metavar="PORT", help="Port on 127.0.0.1 (default 8707, or any free one if taken).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in your web browser.")
@click.option("--read-only", is_flag=True, help="Only look: no fork, rewind or send.")
def ui(port: int | None, open_browser: bool, read_only: bool) -> None:
    """Serve a local web app over the store: timelines, diffs, files, the fork tree.

    It listens on 127.0.0.1 only. The printed address carries a random token;
    the first visit trades it for a cookie. Ctrl-C stops the server.

    \b
    Example:
      domarkx ui --open
    """
    from domarkx.cli._common import open_store
    from domarkx.ui.server import bind

    with open_store() as store:  # opens (and migrates) the store once, so errors show before serving
        home = store.home
    server = bind(port, home, read_only=read_only)
    click.echo(server.url)
    mode = "read-only; " if read_only else ""
    click.secho(f"· serving {home} ({mode}Ctrl-C stops)", err=True, dim=True)
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.secho("· stopped", err=True, dim=True)
    finally:
        server.server_close()
