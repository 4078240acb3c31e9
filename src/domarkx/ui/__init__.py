"""``domarkx ui``: a local web app over the store (docs/ui.md).

``server`` (HTTP, the gate, routes), ``api`` (what each page asks for),
``turns`` (turns started from the page, as events), ``markdown`` (safe HTML of
untrusted Markdown), ``security`` (token, origins, paths); the page itself is
plain ES modules, HTML and CSS under ``static/``, with no build step.
"""
