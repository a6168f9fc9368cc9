"""The procedures of the generated runbook part, which the alert kinds' steps (`shipshape.alerts`) link to.

A template filled by `deployments.runbooks` (`{name}`, `{destination}`, ...), kept apart from the rendering so
it reads as prose. The commands are the project's real ones (Prefect 3.8.8 CLI, the platform tables).
"""

from __future__ import annotations

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
