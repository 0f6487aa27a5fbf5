"""What the tests' brokers (mosquitto, RabbitMQ, NATS) share: a console log read from the last
start, its tail for error messages, and `with` that closes the broker."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self


class BrokerProcess(ABC):
    """Base of one broker process. Subclasses set `log_path` and, at each start, `_log_offset`
    (where this start's output begins in the log), and define `close()`."""

    log_path: Path
    _log_offset: int = 0
    log_tail_lines = 30

    @abstractmethod
    def close(self) -> None:
        """Stop the broker and whatever it started beside it."""

    def console_log(self) -> str:
        """Everything the process has printed since it was last started."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def read_log(self) -> str:
        return self.console_log()

    def log_tail(self, lines: int | None = None) -> str:
        """The last lines of the log since the last start, for error messages."""
        return "\n".join(self.read_log().splitlines()[-(lines or self.log_tail_lines) :])

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
