"""Readable names for instances nobody named (``brisk_otter``), like Docker's container names.

A name is an adjective and a noun joined by ``_``: it follows the name rule of
:mod:`domarkx.data.names` (letters, ``_``, a non-hex character) and is easier
to type and to tell apart than an id prefix. Among the names already taken, a
free pair is drawn at random; when every pair is taken, a number is appended.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from domarkx.data.store import Store

ADJECTIVES = (
    "amber", "bold", "brave", "breezy", "bright", "brisk", "calm", "clever", "cosy", "crisp",
    "curious", "daring", "deft", "eager", "early", "fancy", "fast", "fond", "gentle", "giddy",
    "glad", "golden", "grand", "happy", "hardy", "hasty", "honest", "humble", "jolly", "keen",
    "kind", "lively", "lucky", "mellow", "merry", "misty", "modest", "nimble", "noble", "patient",
    "plucky", "polite", "proud", "quick", "quiet", "rapid", "rosy", "rustic", "sharp", "shiny",
    "silent", "sleepy", "smooth", "snowy", "solid", "spry", "steady", "sturdy", "sunny", "swift",
    "tidy", "vivid", "warm", "wild", "wise", "witty", "young", "zesty",
)  # fmt: skip
NOUNS = (
    "badger", "beaver", "bison", "crane", "cricket", "dolphin", "falcon", "ferret", "finch", "fox",
    "gecko", "heron", "hedgehog", "ibis", "jackal", "koala", "lark", "lemur", "llama", "lynx",
    "magpie", "marmot", "marten", "mole", "moose", "newt", "ocelot", "otter", "owl", "panda",
    "parrot", "pelican", "penguin", "pika", "plover", "puffin", "quail", "rabbit", "raven", "robin",
    "salmon", "seal", "shrew", "sloth", "sparrow", "squid", "stork", "swan", "tapir", "tern",
    "thrush", "toad", "trout", "turtle", "vole", "walrus", "weasel", "wombat", "wren", "yak",
)  # fmt: skip


def unused_name(store: Store) -> str:
    """A name no instance of ``store`` has (checked again, atomically, when the row is inserted)."""
    taken = {row[0] for row in store.query("SELECT name FROM instances WHERE name IS NOT NULL")}
    for _ in range(16):
        name = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(NOUNS)}"
        if name not in taken:
            return name
    base = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(NOUNS)}"
    number = 2
    while f"{base}_{number}" in taken:
        number += 1
    return f"{base}_{number}"
