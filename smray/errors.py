"""The one exception type users see: its message is a single line naming the file or field at fault."""


class SmrayError(Exception):
    """A user-facing error. ``str(err)`` is one line that names the offending file, field or value."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
