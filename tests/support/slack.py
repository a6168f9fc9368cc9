"""A local Slack: incoming-webhook receivers on 127.0.0.1, one URL path per channel, that tests can wait on.

It is the platform's own stand-in (`infra.local.webhook_sink.make_server`), so it speaks the same wire
format Slack does: a JSON body with `text`, answered with 200 "ok".
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.local.webhook_sink import make_server


@dataclass(frozen=True)
class Message:
    path: str
    payload: dict[str, Any]
    received_at: datetime

    @property
    def text(self) -> str:
        return self.payload["text"]


class SlackReceiver:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = threading.Condition()
        self._server = make_server(0, self._record)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, channel: str) -> str:
        """The incoming-webhook URL of `channel` (a path on this receiver)."""
        return f"{self.base_url}/{channel}"

    def received(self, channel: str, containing: str = "") -> list[Message]:
        with self._changed:
            return self._matching(channel, containing)

    def wait_for(
        self, channel: str, containing: str, count: int = 1, timeout_seconds: float = 180
    ) -> list[Message]:
        """Block until `channel` received `count` messages containing the text (woken by each POST).

        The limit only bounds a failure: a message that comes returns at once. It is wide because the message
        crosses Prefect's event pipeline (events → triggers → actions services, each on its own loop), which
        slows down a lot when the suite's second worker keeps the other core busy."""
        def enough() -> bool:
            return len(self._matching(channel, containing)) >= count

        with self._changed:
            if not self._changed.wait_for(enough, timeout=timeout_seconds):
                texts = [m.text for m in self.messages if m.path == f"/{channel}"]
                raise AssertionError(
                    f"{channel} got {len(self._matching(channel, containing))} of {count} message(s) with "
                    f"{containing!r} in {timeout_seconds:.0f} s; it got: {texts}"
                )
            return self._matching(channel, containing)

    def save(self, path: Path) -> None:
        """Every payload received, as JSON, for reviewers (CI keeps test-artifacts/)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._changed:
            received = [
                {"channel": m.path, "received_at": m.received_at.isoformat(), "payload": m.payload}
                for m in self.messages
            ]
        path.write_text(json.dumps(received, indent=2, ensure_ascii=False))

    def _matching(self, channel: str, containing: str) -> list[Message]:
        return [m for m in self.messages if m.path == f"/{channel}" and containing in m.text]

    def _record(self, path: str, payload: dict[str, Any]) -> None:
        with self._changed:
            self.messages.append(Message(path, payload, datetime.now(UTC)))
            self._changed.notify_all()

    @contextmanager
    def serving(self) -> Iterator[SlackReceiver]:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


def slack_receiver() -> contextlib.AbstractContextManager[SlackReceiver]:
    return SlackReceiver().serving()
