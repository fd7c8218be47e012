"""The terminal client: ``cli`` checks and connects, ``session`` runs the chat."""

from ..terminal_io import print_error

PROGRAM = "trio-chat-client"  # how the client names itself on stderr


def note_on_stderr(text: str) -> None:
    """A notice for the user, off stdout: the client's default way to say things."""
    print_error(PROGRAM, text)
