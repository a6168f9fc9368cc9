"""Named locks other processes see: what an adapter implements when it declares `supports_advisory_locks`.

A separate interface, not stubs on `Warehouse`: an engine without such locks (DuckDB, opened by one process at
a time) has nothing to implement, and the conformance suite checks that the flag and this interface agree.

A run's partition locks live on one idle connection for the whole run; if that connection drops, the server
releases them without telling anyone. So a run describes what it holds as a `LockClaim` (the holding session
and the names), and a publish checks, inside its transaction, that the claim still holds before it changes
anything (`Warehouse.still_holds`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LockClaim:
    """Locks one session holds: `session` is the engine's id for it, None where locks are process-local."""

    session: int | None
    names: tuple[str, ...]


class AdvisoryLocks(ABC):
    @abstractmethod
    def _try_cross_process_lock(self, name: str) -> bool:
        """Take a lock that other processes see and that dies with this connection; False if taken."""

    @abstractmethod
    def _release_cross_process_lock(self, name: str) -> None:
        """Give the lock back; a connection that is already gone has nothing to give back (the engine did)."""

    @abstractmethod
    def _wait_for_transaction_lock(self, name: str) -> None:
        """Wait for the lock and hold it until the open transaction ends (commit, rollback or a dead session)."""

    @abstractmethod
    def _lock_session(self) -> int:
        """The engine's id of this connection's session, as other sessions see it holding locks."""

    @abstractmethod
    def _session_holds(self, session: int, names: Sequence[str]) -> bool:
        """Whether the live session `session` holds every lock in `names` now (asked from any connection)."""
