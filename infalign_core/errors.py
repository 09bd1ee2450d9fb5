"""The one exception type the project raises for problems a user can fix."""


class InfAlignError(ValueError):
    """A user-facing error: its message says what went wrong and what to do instead."""
