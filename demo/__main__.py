"""`make demo`: a week of the example pipeline on the embedded default, then the gate blocking bad data.

Runs on DuckDB and a temporary Prefect API (or `make up`'s API when it runs): nothing to install or start.
Safe to re-run: the shop database is regenerated identically and every partition is replaced, never appended.
"""

from __future__ import annotations

import os
import secrets
from datetime import date, timedelta
from typing import TYPE_CHECKING

from runtime.local_api import local_api
from shipshape.names import PII_KEY_VARIABLE
from shipshape.settings import Settings, load_settings

if TYPE_CHECKING:
    from shipshape.ledger import LedgerEntry

FIRST_DAY = date(2026, 11, 1)
DAYS = 7
BAD_DAY = date(2026, 11, 5)
PUBLISHED = "analytics.fct_orders"


def main() -> None:
    api = local_api()  # `make up`'s API when it runs, else a temporary one, starting while the rest is imported
    settings = load_settings()
    ensure_demo_pii_key(settings)
    from demo.shop_app import generate, inject_bad_orders
    from flows.run_pipeline import import_run_libraries, run_pipeline
    from runtime.console_logging import hide_user_error_tracebacks
    from shipshape.errors import AuditFailedError

    hide_user_error_tracebacks()  # step 4 blocks bad data on purpose: its one-line reason, not a traceback
    orders = generate(settings.data_dir / "shop.db", FIRST_DAY, DAYS)
    print(f"\n1. Generated the shop database: {orders} orders over {DAYS} days")
    import_run_libraries()
    api.wait_ready()
    print(f"   (flows run on {api.description})")
    last_day = FIRST_DAY + timedelta(days=DAYS - 1)
    run_pipeline("shop_orders", start_date=FIRST_DAY, end_date=last_day)
    before = _fingerprint(BAD_DAY)
    print(f"2. Published {FIRST_DAY}..{last_day}; {BAD_DAY} holds {before[0]} rows (checksum {before[1]})")

    inject_bad_orders(settings.data_dir / "shop.db", BAD_DAY)
    print(f"3. Injected 25 bad orders (negative amount, unknown status) into the source for {BAD_DAY}")
    try:
        run_pipeline("shop_orders", start_date=BAD_DAY, end_date=BAD_DAY)
        raise SystemExit("the gate did not block bad data")
    except AuditFailedError as error:
        print(f"4. The gate blocked it: {error}")
    after = _fingerprint(BAD_DAY)
    verdict = "unchanged" if after == before else "CHANGED"
    print(f"5. Published {BAD_DAY}: {after[0]} rows (checksum {after[1]}) — {verdict}\n")
    _print_summary()
    if after != before:
        raise SystemExit("the published table changed after a blocked run")


def ensure_demo_pii_key(settings: Settings) -> None:
    """The demo's PII key: random, made once, kept in the (ignored) data folder, never in the repo.

    A later `shipshape run` without PII_HASH_KEY is told how to export this same key.
    """
    if os.environ.get(PII_KEY_VARIABLE):
        return
    key_file = settings.local_secret_file(PII_KEY_VARIABLE)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    os.environ[PII_KEY_VARIABLE] = key_file.read_text().strip()


def _fingerprint(day: date) -> tuple[int, str]:
    from runtime.connections import connect

    with connect() as warehouse:
        count, total = warehouse.fetch_all(
            f"SELECT count(*), sum(order_id * 7 + CAST(amount * 100 AS BIGINT)) FROM {PUBLISHED} WHERE order_date = ?",
            [day],
        )[0]
    return int(count), str(total)


def _print_summary() -> None:
    from runtime.connections import connect
    from shipshape.ledger import entries

    with connect() as warehouse:
        ledger = entries(warehouse, "shop_orders")
    latest: dict[str, LedgerEntry] = {}
    for entry in reversed(ledger):  # oldest first, so the newest attempt per partition wins
        latest[entry.partition_key] = entry
    header = f"{'partition':<12} {'rows':>6} {'checks':>8}  status"
    print(header)
    print("-" * len(header))
    for key in sorted(latest):
        entry = latest[key]
        checks = entry.check_results
        passed = sum(not check.blocking for check in checks)
        print(f"{key:<12} {entry.row_count:>6} {f'{passed}/{len(checks)}':>8}  {entry.status}")


if __name__ == "__main__":
    main()
