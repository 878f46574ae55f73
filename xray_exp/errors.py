"""Exceptions: XrayExpError, the one type library code raises for bad input (the CLI prints it as one
line), and Terminated, SIGTERM turned into an exception by `python -m xray_exp`."""


class XrayExpError(Exception):
    """A user-facing error: its message is a single line that says what is wrong and what to do."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that a run stops the same way: metrics.json
    says stop_reason=interrupted, and a sweep that catches KeyboardInterrupt catches this too."""
