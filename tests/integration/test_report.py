"""`shipshape report` after real runs on DuckDB: Chromium opens the page from a file and every chart draws data.

Two pipelines run for real against the session's Prefect API: the example shop_orders over ten days in four flow
runs (the last day with a flash sale, a volume anomaly), and order_status_daily (tests/fixtures/report), whose
transform reads analytics.fct_orders, so the lineage has a reader. The runs take seconds, so each shop_orders run's
ledger rows are then dated to the morning after its last day, as its 02:30 schedule would have published them,
skipping two mornings (two freshness breaches). A probe flow fails once under the pipeline's run tags (a spent
success budget). The monitor flow then writes the report and links it; the page is opened with no network.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from playwright.sync_api import sync_playwright
from prefect import flow, tags
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from cli.main import main
from demo.shop_app import add_orders, generate
from flows.monitor import monitor
from flows.run_pipeline import run_pipeline
from runtime.cost_sources import recent_months
from runtime.report_sources import COST_MONTHS, environment_history
from shipshape import report_page
from shipshape.ledger import LEDGER_TABLE
from shipshape.names import report_artifact_key, run_tags
from shipshape.settings import PACKAGE_ROOT
from shipshape.warehouses import PLATFORM_SCHEMA, open_warehouse
from tests.support.project import Project, make_project

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:soda_.*")

ARTIFACTS = PACKAGE_ROOT / "test-artifacts"  # kept by CI (gitignored), like the backfill screenshots
CHROMIUM = "/usr/bin/chromium"
FIXTURE = Path(__file__).parents[1] / "fixtures" / "report"
NOW = datetime.now(UTC)
FIRST = NOW.date() - timedelta(days=10)
# shop_orders' flow runs (first day, last day), each dated as if published the day after its last day, in this
# hour of the day (today's an hour ago). None published 7 or 9 days after FIRST: 48h without a publish, past the
# 26h SLA, twice.
SHOP_RUNS = [(0, 4), (5, 6), (7, 7), (8, 9)]
FLASH_SALE = FIRST + timedelta(days=9)


@flow(name="report-probe")
def failing_probe() -> None:
    raise ValueError("the source refused the connection")


def day(offset: int) -> date:
    return FIRST + timedelta(days=offset)


def published_at(last: int) -> datetime:
    """The instant a scheduled run would have published a range ending on day `last`: the next day, an hour
    before now's time of day (so the latest is an hour ago, whenever the test runs)."""
    return NOW - timedelta(days=9 - last, hours=1)


def run(pipeline: str, first: date, last: date) -> UUID:
    state = run_pipeline(pipeline, start_date=first, end_date=last, return_state=True)
    assert state.is_completed(), state.message
    return state.state_details.flow_run_id


def date_publishes(project: Project, flow_run_id: UUID, published_at: datetime) -> None:
    """The run's ledger rows as if it had run at `published_at` (started a minute before)."""
    with open_warehouse(project.warehouse_url) as warehouse:
        warehouse.execute(
            f"UPDATE {warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} SET started_at = ?, finished_at = ? "
            "WHERE flow_run_id = ?",
            [published_at - timedelta(minutes=1), published_at, str(flow_run_id)],
        )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: str) -> Project:
    project = make_project(tmp_path, f"duckdb:///{tmp_path / 'warehouse.duckdb'}", monkeypatch)
    shutil.copytree(FIXTURE, project.root, dirs_exist_ok=True)
    generate(project.shop_db, FIRST, 10)
    add_orders(project.shop_db, FLASH_SALE, 3000, amount="19.99", status="paid")
    return project


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"report-{uuid.uuid4().hex[:8]}"  # only this test's runs count
    monkeypatch.setenv("SHIPSHAPE_ENV", name)
    return name


def test_the_report_renders_every_chart_with_data_in_chromium(project: Project, environment: str) -> None:
    with tags(*run_tags("shop_orders", environment)):
        for first, last in SHOP_RUNS:
            date_publishes(project, run("shop_orders", day(first), day(last)), published_at(last))
        failing_probe(return_state=True)
    with tags(*run_tags("order_status_daily", environment)):
        flow_run = run("order_status_daily", day(0), day(9))
    date_publishes(project, flow_run, NOW - timedelta(minutes=30))

    monitor()  # writes the report where it always does and links it

    path = report_page.default_path(environment)
    assert path == project.data_dir / "reports" / f"report-{environment}.html" and path.exists()
    with get_client(sync_client=True) as client:
        links = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[report_artifact_key(environment)]))
        )
    assert len(links) == 1 and f"({path.as_uri()})" in str(links[0].data), links  # a markdown link in Prefect 3.8

    now = datetime.now(UTC)
    history = environment_history(now, environment, recent_months(environment, now, COST_MONTHS))
    this_month = {row.pipeline: row for row in history.costs if row.month == history.costs[-1].month}
    assert this_month["shop_orders"].runs == len(SHOP_RUNS) + 1 and this_month["shop_orders"].total_cost > 0
    assert this_month["order_status_daily"].runs == 1 and this_month["order_status_daily"].reads is None  # DuckDB
    assert len(history.costs) == 2 * COST_MONTHS
    [shop, daily] = sorted(history.pipelines, key=lambda pipeline: pipeline.spec.name, reverse=True)
    anomalies = [point.partition for point in shop.volume if point.verdict and point.verdict.anomalous]
    assert anomalies == [FLASH_SALE.isoformat()] and len(shop.volume) == 10 and len(shop.publishes) == 4
    assert len(daily.volume) == 10 and len(daily.publishes) == 1
    page_file = report_page.write(history, ARTIFACTS / "report.html")

    charts = charts_in_chromium(page_file)

    assert set(charts) == {"chart-lineage"} | {f"chart-{name}-{chart}" for name in ("shop_orders", "order_status_daily")
                                         for chart in ("freshness", "budget", "volume", "cost")}  # fmt: skip
    for chart_id, traces in charts.items():
        assert traces and any(points >= 2 for _, points in traces), (chart_id, traces)
    shop_freshness = dict(charts["chart-shop_orders-freshness"])
    assert shop_freshness["SLA breached (2)"] >= 4  # two breaches drawn, two points each
    assert dict(charts["chart-shop_orders-volume"])["anomaly (1)"] == 1
    assert dict(charts["chart-shop_orders-volume"])["expected band"] == 3  # days 8-10 have 7 days of history
    lineage_nodes = dict(charts["chart-lineage"])["sankey"]
    assert lineage_nodes == len(history.lineage.nodes) and history.lineage.readers("analytics.fct_orders") == [
        "order_status_daily"
    ]

    # The command writes the same page for the environment.
    out = project.data_dir / "cli-report.html"
    assert main(["report", "--out", str(out)]) == 0
    text = out.read_text()
    assert "no cost data" not in text and text.count('class="plotly-graph-div"') == 1 + 2 * 4


def charts_in_chromium(page_file: Path) -> dict[str, list[tuple[str, int]]]:
    """Open the file with the network cut; per chart div, each drawn trace's name and point count. No page error,
    no console error, no request leaving the file."""
    errors: list[str] = []
    requests: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_file.as_uri())
            page.wait_for_function(
                "[...document.querySelectorAll('.plotly-graph-div')].every(div => div.classList.contains("
                "'js-plotly-plot') && div.querySelector('.main-svg'))"
            )
            charts: dict[str, list[tuple[str, int]]] = page.evaluate(
                """() => Object.fromEntries([...document.querySelectorAll('.js-plotly-plot')].map(div => [div.id,
                    div._fullData.filter(t => t.visible === true).map(t => t.type === 'sankey'
                        ? ['sankey', div.querySelectorAll('.sankey-node').length]
                        : [t.name, (t.x || []).filter(v => v !== null && v !== undefined).length])]))"""
            )
            page.screenshot(path=ARTIFACTS / "report.png", full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert {url.split(":", 1)[0] for url in requests} <= {"file", "data", "blob"}, requests
    return charts
