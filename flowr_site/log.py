"""Logging filters used by the LOGGING setting."""
import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """Keep a 4xx response's record to one line: a refused request is not a crash."""

    def filter(self, record):
        if 400 <= getattr(record, "status_code", 0) < 500:
            record.exc_info = record.exc_text = None
        return True
