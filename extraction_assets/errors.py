"""Every error this project raises on purpose, under one root: `ExtractionError`.

    ExtractionError
    ├── CorpusError (ValueError)            a corpus on disk cannot be read as it is
    ├── StoreError (RuntimeError)           the DuckDB store
    │   ├── StoreLockedError                another process kept the file locked
    │   ├── StoreWriteError                 a write failed and was rolled back
    │   └── LakeUnavailableError            a DuckLake catalog or its extensions cannot be reached
    ├── LLMError                            talking to the LLM server
    │   ├── TransportError                  unreachable or kept failing (timeouts, 429, 5xx)
    │   ├── ContextLengthError              the request does not fit the model's context
    │   ├── RequestRejectedError            refused for a reason retrying cannot fix (4xx)
    │   └── ServerUnavailableError (RuntimeError)  a run gave up on an unreachable server
    ├── ServerError (RuntimeError)          the local vLLM server could not be started
    │   └── ModelUnavailable                the embedded model cannot be prepared
    ├── GoldError                           evaluation gold data
    │   ├── GoldFileMissingError (FileNotFoundError)
    │   └── GoldFileError (ValueError)      a gold file that cannot be read
    ├── TaskSpecError (ValueError)          a task spec that cannot become a task
    └── ClusterError (RuntimeError)         a cluster worker without its broker

The built-in bases in parentheses are kept so callers catching them still do. This module is the
one import path of each name. Ground floor: imports nothing from the project.
"""

from __future__ import annotations

__all__ = [
    "ClusterError",
    "ContextLengthError",
    "CorpusError",
    "ExtractionError",
    "GoldError",
    "GoldFileError",
    "GoldFileMissingError",
    "LLMError",
    "LakeUnavailableError",
    "ModelUnavailable",
    "RequestRejectedError",
    "ServerError",
    "ServerUnavailableError",
    "StoreError",
    "StoreLockedError",
    "StoreWriteError",
    "TaskSpecError",
    "TransportError",
]


class ExtractionError(Exception):
    """Base class of every error raised on purpose by extraction_assets and resources."""


# --- corpora ----------------------------------------------------------------------------------


class CorpusError(ExtractionError, ValueError):
    """A corpus cannot be read as it is; the message says where and why."""

    def __init__(self, message: str, corpus: str, document: str | None = None) -> None:
        super().__init__(message)
        self.corpus = corpus
        self.document = document


# --- the store --------------------------------------------------------------------------------


class StoreError(ExtractionError, RuntimeError):
    """The DuckDB store could not do what was asked."""


class StoreLockedError(StoreError):
    """Another process kept the DuckDB file locked for longer than ``lock_timeout_s``."""


class StoreWriteError(StoreError):
    """A write failed (disk full, I/O error); the transaction was rolled back."""


class LakeUnavailableError(StoreError):
    """A DuckLake store cannot be attached: its extensions, catalog database or data path."""


# --- the LLM: transport and context -----------------------------------------------------------


class LLMError(ExtractionError):
    """A call to the LLM server failed."""


class TransportError(LLMError):
    """The server could not be reached or kept failing (timeouts, 429, 5xx, refused)."""

    def __init__(self, base_url: str, message: str) -> None:
        super().__init__(f"{base_url}: {message}")
        self.base_url = base_url
        self.message = message


class ContextLengthError(LLMError):
    """The request does not fit the model's context."""

    def __init__(self, base_url: str, message: str) -> None:
        super().__init__(f"{base_url}: {message}")
        self.base_url = base_url


class RequestRejectedError(LLMError):
    """The server refused the request for a reason retrying cannot fix (400, 401, 404...)."""

    def __init__(self, base_url: str, status: int | None, message: str) -> None:
        super().__init__(f"{base_url}: HTTP {status}: {message}")
        self.base_url = base_url
        self.status = status


class ServerUnavailableError(LLMError, RuntimeError):
    """The LLM server stayed unreachable; unfinished documents got no result (still pending)."""


# --- the local server -------------------------------------------------------------------------


class ServerError(ExtractionError, RuntimeError):
    """The server could not be started (the message says why and what to do)."""


class ModelUnavailable(ServerError):
    """The embedded model cannot be prepared (package missing, conversion failed)."""


# --- gold data --------------------------------------------------------------------------------


class GoldError(ExtractionError):
    """Evaluation gold data is missing or unreadable."""


class GoldFileMissingError(GoldError, FileNotFoundError):
    """A gold file is not where the evaluation expects it."""


class GoldFileError(GoldError, ValueError):
    """A gold file that cannot be read: names the file, the line and the problem."""


# --- task specs -------------------------------------------------------------------------------


class TaskSpecError(ExtractionError, ValueError):
    """A task spec that cannot become a task: names the file, the field and the problem."""

    def __init__(self, source: str, where: str, problem: str) -> None:
        self.source, self.where, self.problem = source, where, problem
        super().__init__(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")


# --- the cluster ------------------------------------------------------------------------------


class ClusterError(ExtractionError, RuntimeError):
    """A cluster process cannot start as configured (e.g. a worker without a broker)."""
