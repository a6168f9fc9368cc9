"""The words of the generated runbook part: what to do for each alert, and the procedures the steps link to.

Templates filled by `deployments.runbooks` (`{name}`, `{destination}`, ...), kept apart from the rendering so
they read as prose. The commands are the project's real ones (Prefect 3.8.8 CLI, the platform tables).
"""

from __future__ import annotations

ALERT_STEPS: dict[str, list[str]] = {
    "run-failed": [
        "Open the flow run from the alert (or Flow Runs in the UI, tag `pipeline:{name}`) and read the first "
        "error in its logs. The ledger keeps it too: `SELECT partition_key, message, finished_at FROM "
        "platform.publish_ledger WHERE pipeline = '{name}' AND status = 'failed' ORDER BY finished_at DESC LIMIT 5;`",
        "Transient (network, 5xx, locks, a busy database) and retries ran out: once the source or warehouse is "
        "healthy again, [re-run the partition](#re-run-a-partition).",
        "Schema drift (a source column renamed, removed or retyped): change `source.columns` in "
        "`pipelines/{name}.yaml`, check it with `shipshape validate --live`, merge, deploy, re-run.",
        "Too many rejected rows (values that fail type conversion): read the [dead letters](#dead-letters), get "
        "the source fixed or correct the declared type, re-run.",
        '"another run is processing … this run changed nothing": a run of the same partition was still going; '
        "let it finish.",
        "Crashed (worker, container, memory): check that work pool `shipshape-<env>` has a healthy worker "
        "(Work Pools in the UI), then re-run. Several partitions failed: [backfill](#backfill) with mode `failed`.",
    ],
    "audit-blocked": [
        "See which checks failed and their measured values: the run's Artifacts tab in the UI, or the ledger "
        "([inspect the quarantine](#inspect-the-quarantine)).",
        "Query the quarantined output table to find the offending rows.",
        "Bad data at the source: get it fixed upstream, then [re-run the partition](#re-run-a-partition).",
        "A wrong check or transform: fix it in a pull request; once deployed, re-run with `-p reuse_raw=true` "
        "(re-transforms and re-audits the kept raw data without extracting again; locally `--reuse-raw`).",
        "Never publish around the gate: a check that is wrong changes in the contract, reviewed like code.",
    ],
    "freshness-breach": [
        "Did runs fail or get blocked? Flow Runs in the UI with tags `pipeline:{name}` and `env:<env>`; such a "
        "run has its own alert — follow it.",
        "Is the schedule active? `prefect deployment schedule ls \"run-pipeline/{name}-$ENV\"` "
        "([pause and resume](#pause-and-resume-the-schedule)).",
        "Are runs Late? Then no worker polls work pool `shipshape-<env>` (Work Pools in the UI).",
        "The last publishes: `SELECT partition_key, row_count, finished_at FROM platform.publish_ledger "
        "WHERE pipeline = '{name}' AND status = 'published' ORDER BY finished_at DESC LIMIT 5;`",
        "Catch up the partitions that never published: [backfill](#backfill) with mode `missing`.",
    ],
    "volume-anomaly": [
        "Compare with recent partitions: `SELECT partition_key, row_count, rejected_rows, finished_at FROM "
        "platform.publish_ledger WHERE pipeline = '{name}' AND status = 'published' "
        "ORDER BY partition_key DESC LIMIT 30;`",
        "Explained by the business (a sale, a holiday, an outage upstream): nothing to fix; write it under the "
        "owners' notes below.",
        "Source data missing or duplicated: once the source is complete, [re-run the partition](#re-run-a-partition) "
        "— a re-run {replaces}.",
        "Volume really changed: adjust `volume` in `pipelines/{name}.yaml` (`min_rows`/`max_rows` block, "
        "`anomaly` warns).",
    ],
    "fast-burn": [
        "See which SLO burns: [Status and SLOs](#status-and-slos).",
        "Success rate burning: runs keep failing or being blocked — [Run failed](#run-failed), "
        "[Audit blocked](#audit-blocked).",
        "Freshness burning: [Freshness breach](#freshness-breach).",
        "If failing runs only add noise while the cause is fixed, "
        "[pause the schedule](#pause-and-resume-the-schedule); resume it afterwards and [backfill](#backfill) what "
        "was missed.",
    ],
    "recovered": [
        "Check that nothing was left behind: [backfill](#backfill) with mode `missing` and `dry_run` on.",
        "Resume the schedule if you paused it ([pause and resume](#pause-and-resume-the-schedule)).",
        "Write the cause and the fix under the owners' notes below, for the next person.",
    ],
}

PROCEDURES = """\
## Procedures

Commands use two shell variables: `ENV` (one of {environments}) and, for partitions, `DAY` (YYYY-MM-DD), e.g.
`ENV=prod DAY=2026-11-05`. Prefect commands need the environment's API in `PREFECT_API_URL`; SQL runs in the
environment's warehouse.

### Re-run a partition

Re-running is always safe: a re-run {replaces}, whatever happened before.

- UI: Deployments → `{name}-$ENV` → Run → Custom run → `start_date`, `end_date`.
- CLI: `prefect deployment run "run-pipeline/{name}-$ENV"{run_params}`
  (add `-p reuse_raw=true` to re-transform and re-audit the raw data already loaded).
- Locally (your `SHIPSHAPE_WAREHOUSE_URL`): `shipshape run {name}{run_args}` (`--reuse-raw` likewise).

{partition_scope}

### Backfill

Deployments → `backfill-$ENV` → Run → Custom run: pipeline `{name}`, the start and end dates, mode `missing`
(partitions never published), `failed` (latest attempt failed or blocked) or `all`, `dry_run` to see the plan
first, `max_concurrent` for how many partition runs at once. Re-running an overlapping backfill creates only the
runs still missing.

### Inspect the quarantine

A blocked partition keeps its audit tables in schema `audit` until the partition is next published:
`{name}__<partition>__<run_tag>__raw` (loaded data), `__s1`, `__s2`, … (intermediate transform steps) and
`__out` (what was audited), where `<partition>` is {suffix} and `<run_tag>` is the ledger row's `run_tag`.

```sql
SELECT partition_key, flow_run_id, run_tag, message, check_results, finished_at
FROM platform.publish_ledger
WHERE pipeline = '{name}' AND status = 'blocked'
ORDER BY finished_at DESC LIMIT 10;

SELECT table_name FROM information_schema.tables
WHERE table_schema = 'audit' AND table_name LIKE '{name}__%'
ORDER BY table_name;
```

Then query `audit."{name}__<partition>__<run_tag>__out"` like any table. `check_results` lists every check with
its measured value and whether it blocked.

### Dead letters

Values that failed type conversion, with the reason and the raw record; a publish replaces the partition's
earlier ones.

```sql
SELECT partition_key, run_tag, row_number, reason, raw_record, created_at
FROM platform.dead_letters
WHERE pipeline = '{name}'
ORDER BY created_at DESC LIMIT 50;
```

### Pause and resume the schedule

- UI: Deployments → `{name}-$ENV` → the schedule's toggle.
- CLI (pausing needs the schedule's ID, which `ls` shows):

```bash
prefect deployment schedule ls "run-pipeline/{name}-$ENV"
prefect deployment schedule pause "run-pipeline/{name}-$ENV" <schedule-id>
prefect deployment schedule resume "run-pipeline/{name}-$ENV" <schedule-id>
```

Never add `--all`: it pauses or resumes every deployment on the Prefect server. `make deploy` applies the
schedules of prefect.yaml again, so check `schedule ls` after a deploy.

### Status and SLOs

`SHIPSHAPE_ENV=$ENV SHIPSHAPE_WAREHOUSE_BLOCK=warehouse-$ENV shipshape status` prints, for every pipeline,
the last publish, staleness against the SLA, success rate and freshness against their targets, the error budget
left and the burn rates. The `monitor-$ENV` deployment's runs show the same numbers as an artifact.
"""
