"""One exception tree; the CLI maps each to an exit code and a one-line message."""


class ImgtoolError(Exception):
    """A problem the user can fix. `str(err)` is the one-line message, naming the fix."""

    exit_code = 2


class UsageError(ImgtoolError):
    """Bad flags, names or configuration values."""


class EnvironmentProblem(ImgtoolError):
    """The machine lacks something: the Docker engine, buildx, a base image."""


class BuildFailed(ImgtoolError):
    """`docker buildx build` exited non-zero; the message carries its last error line."""

    exit_code = 1


class Interrupted(ImgtoolError):
    """Ctrl-C: raised from the SIGINT handler so cleanup runs and the exit code is 130."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted; cleaned up what this run started")
