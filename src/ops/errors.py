"""Errors of the operations commands, each with the exit status the CLI gives it."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INFLUX = 1  # InfluxDB unreachable or failing; retrying may help
EXIT_USAGE = 2  # usage, configuration, a refused token, a target that is not as required
EXIT_CORRUPT = 3  # a backup that is damaged, incomplete or not a backup


class OpsError(Exception):
    """An error the CLI reports in one line and turns into its exit status."""

    exit_code = EXIT_INFLUX


class InfluxError(OpsError):
    """InfluxDB did not answer, or answered with a server error."""

    exit_code = EXIT_INFLUX


class UsageError(OpsError):
    """Arguments, token or target that cannot work; retrying does not help."""

    exit_code = EXIT_USAGE


class CorruptBackup(OpsError):
    """A backup whose files do not match its manifest or cannot be read back."""

    exit_code = EXIT_CORRUPT

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"backup is damaged: {shown}{more}")
