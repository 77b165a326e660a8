"""The one exception a case raises on purpose: this target cannot run it (and why)."""


class Skip(Exception):
    """The case cannot run on this target; the message names what is missing (option, device, ...)."""
