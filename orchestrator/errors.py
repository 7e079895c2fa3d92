"""Exceptions raised by the engine; only the CLI turns them into messages and exit codes.

    CwsError
    ├── UserError                 bad input: exit code 2, nothing was sent
    │   ├── SpecError             one or more problems in a workload file, each with file:line:column
    │   ├── ConfigError           endpoint, credentials or profile settings
    │   └── WorkloadNotFound      no such workload in the state
    ├── LockError                 another run holds the workload's lock
    ├── ApiError                  the instance API answered with an error status
    │   ├── BadRequest            400
    │   ├── AuthenticationFailed  401
    │   ├── Forbidden             403
    │   ├── NotFound              404
    │   ├── Throttled             429
    │   └── ServerError           5xx
    ├── TransportError            no usable answer: refused, timed out, or the connection dropped
    └── Interrupted               the run stopped on SIGINT or SIGTERM

A run that ends with failed resources is not an exception: apply and destroy
return a summary whose `result` is `failed` and whose `failures` name them.

httpx exceptions are translated into these in `orchestrator.client` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass


class CwsError(Exception):
    """Base class of every error the engine raises on purpose."""

    exit_code = 1


class UserError(CwsError):
    """Input that the user must fix; nothing was sent to the API."""

    exit_code = 2


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a workload file, at a 1-based line and column."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class SpecError(UserError):
    """A workload file that cannot be used; carries every problem found."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column))
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(UserError):
    """Invalid or missing settings: endpoint, credentials, profile."""


class WorkloadNotFound(UserError):
    """The state contains no workload of that name."""


class LockError(CwsError):
    """Another apply or destroy holds the workload's lock."""


class ApiError(CwsError):
    """The instance API returned an error status."""

    def __init__(self, status: int, code: str, message: str, method: str, url: str) -> None:
        self.status = status
        self.code = code
        self.api_message = message
        self.method = method
        self.url = url
        super().__init__(f"{method} {url} failed with {status} {code}: {message}")


class BadRequest(ApiError):
    """400: the API rejected the body, the type, or a value in it."""


class AuthenticationFailed(ApiError):
    """401: the API key or secret is missing or wrong."""


class Forbidden(ApiError):
    """403: the account may not do this, e.g. it has no payment information."""


class NotFound(ApiError):
    """404: no such request or instance (it may have been cleaned up)."""


class Throttled(ApiError):
    """429: too many calls; `retry_after` is the server's hint in seconds."""

    def __init__(self, *args: object, retry_after: float | None = None) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the server failed; a create may or may not have happened."""

    def __init__(self, *args: object, retry_after: float | None = None) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.retry_after = retry_after


class TransportError(CwsError):
    """No usable response from the endpoint.

    `maybe_acted` is False when the call certainly never reached the server
    (connection refused), and True when the server may have acted on it
    (a time-out or a dropped connection after the request was sent).
    """

    def __init__(self, message: str, *, method: str, url: str, maybe_acted: bool) -> None:
        self.method = method
        self.url = url
        self.maybe_acted = maybe_acted
        super().__init__(message)


class Interrupted(CwsError):
    """The run stopped on SIGINT or SIGTERM after committing every id it had."""

    exit_code = 130
