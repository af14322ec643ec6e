"""User-facing errors.

Everything that a user can get wrong (a bad token id, a missing file, a checkpoint
that does not match its config) raises :class:`AiaynError` with a message that says
what is wrong and what to do. The command line prints that message without a
traceback and exits with status 2.
"""


class AiaynError(Exception):
    """A user-facing error: the message says what is wrong and what to do."""
