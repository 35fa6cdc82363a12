"""The server's log handler (server.logsink): lines queued, written together, in order."""

from __future__ import annotations

import io
import logging
import re

from server.logsink import BatchingHandler, LineFormatter


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
