"""Errors that the CLI reports as one line, without a traceback."""


class CoaugError(Exception):
    """A problem the user can fix (bad input, missing file, bad param)."""


class DataError(CoaugError):
    """Invalid dataset content; the message names file, line and field."""

    def __init__(self, path: str, problem: str, line: int | None = None, field: str | None = None):
        where = f"{path}:{line}" if line is not None else str(path)
        what = f"field '{field}': {problem}" if field else problem
        super().__init__(f"{where}: {what}")
        self.path, self.line, self.field = path, line, field
