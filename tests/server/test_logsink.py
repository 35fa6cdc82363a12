"""The server's log handler (server.logsink): lines queued, written together, in order."""

from __future__ import annotations

import io
import logging
import os
import re

import pytest

from server.logsink import BatchingHandler, LineFormatter, info
from tests.server.helpers import hello, pair
from tests.support.polling import wait_until
from tests.support.server_proc import start_server


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger("sp2p.test-logsink")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def test_lines_are_written_together_in_order_on_flush() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, delay=60.0)  # only the explicit flush writes
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = _logger(handler)
    for i in range(3):
        logger.info("line %d", i)
    assert stream.getvalue() == ""
    handler.flush()
    assert stream.getvalue() == "INFO line 0\nINFO line 1\nINFO line 2\n"
    handler.close()


def test_a_filtered_record_is_not_queued() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, delay=60.0)
    handler.addFilter(lambda record: "secret" not in record.getMessage())
    logger = _logger(handler)
    logger.info("secret")
    logger.info("plain")
    handler.flush()
    assert stream.getvalue() == "plain\n"
    handler.close()


def test_line_formatter_stamps_like_the_stock_formatter() -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    record = logging.LogRecord("sp2p.server", logging.INFO, __file__, 1, "peer %s", ("left",), None)
    ours, stock = LineFormatter(fmt), logging.Formatter(fmt)
    assert ours.format(record) == stock.format(record)
    record.created += 1.5  # another second: a new stamp, not the cached one
    record.msecs = 500.0
    assert ours.format(record) == stock.format(record)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,500 INFO", ours.format(record))


FMT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def test_info_writes_the_line_logging_would_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The direct path (no LogRecord) and logging's path give the same line, stamp included."""
    stream = io.StringIO()
    handler = BatchingHandler(stream, delay=60.0)
    handler.setFormatter(LineFormatter(FMT))
    logger = _logger(handler)
    records: list[logging.LogRecord] = []
    monkeypatch.setattr(logging.Logger, "makeRecord", _spy(logging.Logger.makeRecord, records))
    monkeypatch.setattr("server.logsink.time.time", lambda: 1754000000.25)
    info(logger, "peer connected session=%s role=%s", "ab…", "sender")
    info(logger, "no arguments: %s stays")
    assert records == []  # neither line built a LogRecord
    record = logging.LogRecord(logger.name, logging.INFO, __file__, 1, "peer connected session=%s role=%s",
                               ("ab…", "sender"), None)  # fmt: skip
    record.created, record.msecs = 1754000000.25, 250.0
    handler.flush()
    lines = stream.getvalue().splitlines()
    assert lines[0] == logging.Formatter(FMT).format(record)
    assert lines[0].endswith(",250 INFO sp2p.test-logsink: peer connected session=ab… role=sender")
    assert lines[1].endswith(": no arguments: %s stays")
    handler.close()


def _spy(make_record: object, seen: list[logging.LogRecord]) -> object:
    def spy(self: logging.Logger, *args: object, **kwargs: object) -> logging.LogRecord:
        record: logging.LogRecord = make_record(self, *args, **kwargs)  # type: ignore[operator]
        seen.append(record)
        return record

    return spy


@pytest.mark.parametrize("change", ["second handler", "logger filter", "handler filter", "format", "level"])
def test_info_takes_loggings_path_when_something_else_would_see_the_line(change: str) -> None:
    stream, other = io.StringIO(), io.StringIO()
    handler = BatchingHandler(stream, delay=60.0)
    handler.setFormatter(LineFormatter(FMT))
    logger = _logger(handler)
    seen: list[str] = []
    if change == "second handler":
        extra = logging.StreamHandler(other)
        logger.addHandler(extra)
    elif change == "logger filter":
        logger.addFilter(lambda record: seen.append(record.getMessage()) or True)
    elif change == "handler filter":
        handler.addFilter(lambda record: seen.append(record.getMessage()) or True)
    elif change == "format":
        handler.setFormatter(LineFormatter("%(process)d " + FMT))
    else:
        logger.setLevel(logging.WARNING)
    info(logger, "peer %s", "left")
    handler.flush()
    if change == "second handler":
        assert other.getvalue() == "peer left\n" and "peer left" in stream.getvalue()
    elif change.endswith("filter"):
        assert seen == ["peer left"] and "peer left" in stream.getvalue()
    elif change == "format":
        assert stream.getvalue().startswith(f"{os.getpid()} ")
    else:
        assert stream.getvalue() == ""
    handler.close()


def test_a_real_server_logs_each_session_opened_paired_and_ended_with_redacted_ids() -> None:
    """What an operator reads per session, from the CLI's own logging set-up (the direct
    path): opened, paired, ended, each stamped, the id cut to a prefix (W-14)."""
    server = start_server()
    try:
        sender, receiver, sid = pair(server.ws_url)
        waiting, alone, _ = hello(server.ws_url, client_type="browser")
        receiver.close()
        sender.expect("peer-left")
        stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO sp2p.server: "
        wanted = [
            stamp + re.escape(f"peer connected session={sid[:3]}… role=sender client=cli"),
            stamp + re.escape(f"peer connected session={sid[:3]}… role=receiver client=cli"),
            stamp + re.escape(f"peer disconnected session={sid[:3]}…"),
            stamp + re.escape(f"peer connected session={alone[:3]}… role=sender client=browser"),
        ]
        assert wait_until(lambda: all(re.search(w, server.stderr_text(), re.MULTILINE) for w in wanted)), (
            server.stderr_text()
        )
        assert sid not in server.stderr_text() and alone not in server.stderr_text()
        waiting.close()
    finally:
        server.stop()
