"""The one exception type users see: its message is a single line naming the file or field at fault."""


class SmrayError(Exception):
    """A user-facing error. ``str(err)`` is one line that names the offending file, field or value."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of ``err``'s message, at most ``limit`` characters (its type name when empty):
    a library's multi-line error told in one line."""
    lines = str(err).strip().splitlines()
    return (lines[0][:limit] if lines else "") or type(err).__name__
