"""Named locks other processes see: what an adapter implements when it declares `supports_advisory_locks`.

A separate interface, not stubs on `Warehouse`: an engine without such locks (DuckDB, opened by one process at
a time) has nothing to implement, and the conformance suite checks that the flag and this interface agree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class AdvisoryLocks(ABC):
    @abstractmethod
    def _try_cross_process_lock(self, name: str) -> bool:
        """Take a lock that other processes see and that dies with this connection; False if taken."""

    @abstractmethod
    def _release_cross_process_lock(self, name: str) -> None: ...

    @abstractmethod
    def _wait_for_transaction_lock(self, name: str) -> None:
        """Wait for the lock and hold it until the open transaction ends (commit, rollback or a dead session)."""
