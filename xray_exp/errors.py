"""The one exception type library code raises for bad input; the CLI prints it as one line."""


class XrayExpError(Exception):
    """A user-facing error: its message is a single line that says what is wrong and what to do."""
