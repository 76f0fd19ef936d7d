"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class BenchError(Exception):
    """A problem with the user's input or environment, stated in one line.

    ``exit_code`` lets callers distinguish usage errors (2) from other failures.
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
