"""Placeholder: verbs of this module arrive with their issue."""


def register(subparsers) -> None:
    """Add this module's verbs to the parser (none yet)."""
