"""A stand-in Slack incoming webhook for the local platform: appends each posted message to a file.

`make up` points the dev Slack block here when SHIPSHAPE_SLACK_WEBHOOK_URL is not set, so alerts are
visible (`tail -f .platform/logs/slack.log`) without a Slack workspace. It answers like Slack: 200 "ok".
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

OnPost = Callable[[str, dict[str, Any]], None]


def make_server(port: int, on_post: OnPost) -> ThreadingHTTPServer:
    """Calls `on_post(path, payload)` for each message; the path tells webhooks (channels) apart.

    Port 0 picks a free port (tests); the caller runs `serve_forever`.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            on_post(self.path, json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:  # keep stderr quiet
            return

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def append_to(log_path: Path) -> OnPost:
    """One line per message: the channel's path, then the text (its line breaks shown as ` | `)."""

    def write(path: str, payload: dict[str, Any]) -> None:
        with log_path.open("a") as log:
            log.write(f"{path}: {payload.get('text', '').replace(chr(10), ' | ')}\n")

    return write


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    make_server(args.port, append_to(args.log)).serve_forever()
