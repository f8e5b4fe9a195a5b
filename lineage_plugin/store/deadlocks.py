"""Index writes tried again when the database chose them as a deadlock's victim.

InnoDB (MySQL, MariaDB) locks the gap a ``DELETE ... WHERE run_id = ?`` finds empty; two
servers' workers indexing two new runs at once then each wait for the other's gap before their
``INSERT``, and the database rolls one back ("Deadlock found when trying to get lock; try
restarting transaction"). PostgreSQL reports ``deadlock detected`` the same way. The victim's
transaction wrote nothing, so running it again is safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

_R = TypeVar("_R")

#: How often a transaction is run when the database keeps choosing it as a deadlock's victim.
ATTEMPTS = 4


def is_deadlock(exc: BaseException) -> bool:
    """Whether ``exc`` is a database saying "deadlock, run the transaction again"."""
    text = str(exc).lower()
    return "deadlock" in text or "(1213" in text


def retry_deadlocks(transaction: Callable[[], _R]) -> _R:
    """Run ``transaction`` (a whole transaction), again while it is a deadlock's victim.

    Args:
        transaction: Opens, does and commits one transaction.

    Returns:
        What ``transaction`` returns.
    """
    for attempt in range(ATTEMPTS - 1):
        try:
            return transaction()
        except Exception as exc:
            if not is_deadlock(exc):
                raise
            time.sleep(0.05 * (attempt + 1))
    return transaction()
