"""Read a Maildir back: every message, or how many carry each value of a header.

The local SMTP sink (devtools/smtp_sink.py) keeps mail in a Maildir; the audit counts campaign
mails there (one per address) and the tests read what was sent. Pure functions over files:
nothing is started, and nothing here depends on the sink.
"""

from __future__ import annotations

import os
from collections import Counter
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import cast


def read_messages(maildir: str | os.PathLike[str]) -> list[EmailMessage]:
    """All messages in the Maildir, oldest first, parsed with `email.policy.default`."""
    return [_parse(path, headers_only=False) for path in _message_paths(maildir)]


def count_by_header(maildir: str | os.PathLike[str], header: str) -> Counter[str]:
    """How many messages carry each value of `header` (a count > 1 means a duplicate mail).

    Only headers are parsed, so counting a big Maildir stays cheap.
    """
    counts: Counter[str] = Counter()
    for path in _message_paths(maildir):
        for value in _parse(path, headers_only=True).get_all(header) or ():
            counts[str(value)] += 1
    return counts


def _message_paths(maildir: str | os.PathLike[str]) -> list[Path]:
    """Files in new/ and cur/, by delivery time; a missing Maildir holds no mail."""
    entries: list[os.DirEntry[str]] = []
    for sub in ("new", "cur"):
        folder = Path(maildir, sub)
        if folder.is_dir():
            entries.extend(e for e in os.scandir(folder) if not e.name.startswith("."))
    entries.sort(key=lambda e: (e.stat().st_mtime_ns, e.name))
    return [Path(e.path) for e in entries]


def _parse(path: Path, *, headers_only: bool) -> EmailMessage:
    with path.open("rb") as file:
        message = BytesParser(policy=default_policy).parse(file, headersonly=headers_only)
    return cast(EmailMessage, message)
