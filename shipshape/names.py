"""Every name the platform gives to something outside Python, built in one place.

Run tags, deployments, pools, blocks, roles, locks, audit tables, automations, concurrency limits and
event resources are looked up by name across processes and releases: a run finds its block, an SLO
counts runs by tag, an automation matches a deployment, the next run finds a killed run's audit tables.
When two places spell a name differently nothing fails loudly — the alert simply never fires — so each
rule is written once, here, and everything else calls it.
"""

from __future__ import annotations

import hashlib
from typing import Literal

RolePurpose = Literal["loader", "publisher", "consumer", "owner", "monitor"]

ENVIRONMENTS = ("dev", "staging", "prod")
"""The environments, in promotion order; deployments/environments.py says what differs between them."""

PIPELINE_FLOW = "run-pipeline"
PLATFORM_TAG = "shipshape-platform"
DEPLOYMENT_TAG = "shipshape"  # every deployment prefect.yaml registers carries it; infra prunes only those
BACKFILL_TAG = "backfill"
INCIDENT_EVENT_PREFIX = "shipshape.incident"
PII_KEY_VARIABLE = "PII_HASH_KEY"  # the default PII key for local runs; deployed runs read PII_KEY_BLOCK
PII_KEY_BLOCK = "pii-hash-key-{env}"
API_ENVIRONMENT_VARIABLE = "shipshape-environment"
"""The Prefect variable marking which environment a Prefect API belongs to: `make apply` sets it on the first apply
and refuses any other environment there; a run refuses an API marked for another environment."""


AUDIT_SCHEMA = "audit"
"""Where each run's raw and transformed data waits for the audit gate."""
PLATFORM_SCHEMA = "platform"
SCHEMA_VERSION_TABLE = "schema_version"
"""In PLATFORM_SCHEMA: one row per migration of the platform tables the warehouse ran (`shipshape.platform_schema`)."""
PLATFORM_SCHEMA_LOCK = "shipshape:platform-schema"
"""Held by whoever migrates the platform tables, for each migration's transaction: one migrates, the others wait."""
"""The platform's records: the ledger, dead letters, incidents."""
HISTORY_SCHEMA = "history"
"""The rows each publish replaced, one table per publish (`history_table`), kept for the pipeline's retention for
`shipshape rollback`; the publisher writes it, no consumer may read it."""
RESERVED_SCHEMA_PREFIXES = ("pg_",)
RESERVED_SCHEMAS = frozenset({AUDIT_SCHEMA, PLATFORM_SCHEMA, HISTORY_SCHEMA, "public", "information_schema"})
"""No declaration may publish into these: `make apply` grants consumers read on every destination schema."""


def reserved_schema(schema: str) -> bool:
    return schema in RESERVED_SCHEMAS or schema.startswith(RESERVED_SCHEMA_PREFIXES)


PUBLISHED_TABLE_FUNCTIONS = (
    "create_published_table",
    "add_published_columns",
    "widen_published_column",
    "create_partitioned_table",
    "exchange_partition",
    "drop_history_table",
)
"""The only DDL on a published table (and on the history tables partition exchange moves there), in
`PLATFORM_SCHEMA`: functions the owner role runs for the publisher."""


def pipeline_tag(pipeline: str) -> str:
    return f"pipeline:{pipeline}"


def env_tag(environment: str) -> str:
    return f"env:{environment}"


def run_tags(pipeline: str, environment: str) -> list[str]:
    """The tags every run of a pipeline carries, deployed or local: SLOs count runs by them."""
    return [pipeline_tag(pipeline), env_tag(environment)]


def deployment_name(pipeline: str, environment: str) -> str:
    """The deployment that runs `pipeline` in `environment`: schedules, backfill children and alerts use it."""
    return f"{pipeline}-{environment}"


def backfill_deployment(environment: str) -> str:
    return f"backfill-{environment}"


def monitor_deployment(environment: str) -> str:
    return f"monitor-{environment}"


def rollback_deployment(environment: str) -> str:
    return f"rollback-{environment}"


def history_table(entry_id: str) -> str:
    """`history.h_<ledger entry id>`: the rows the publish (or rollback) recorded by that ledger entry replaced."""
    return f"h_{entry_id}"


PARTITION_BOUND = "shipshape_partition_bound"
"""The CHECK constraint proving an audited table's rows lie in its partition's bounds, so attaching it as that
partition scans nothing (`shipshape.warehouses.exchange`); kept on the partition, so a rollback re-attaching it
from history scans nothing either."""


def partition_table(table: str, partition_key: str) -> str:
    """The partition of a partitioned published table holding one partition key: `fct_orders__p20261101` (the
    key's letters and digits, so `2026-11-01T05` is `…__p20261101T05`); hashed past PostgreSQL's 63-byte names."""
    name = f"{table}__p{''.join(c for c in partition_key if c.isalnum())}"
    if len(name.encode()) <= _MAX_IDENTIFIER_BYTES:
        return name
    return f"p_{hashlib.sha256(name.encode()).hexdigest()[:32]}"


_MAX_IDENTIFIER_BYTES = 63


def created_record(environment: str, kind: str) -> str:
    """The Prefect variable listing the objects of one kind `make apply` created (`shipshape-dev-created-block`).

    Block documents and work queues carry no tags, so this record is how apply tells the platform's own
    from anyone else's before it deletes one that is no longer declared.
    """
    return f"shipshape-{environment}-created-" + kind.replace(" ", "-")


def pool_name(environment: str) -> str:
    return f"shipshape-{environment}"


def warehouse_block(environment: str) -> str:
    return f"warehouse-{environment}"


def slack_block(environment: str) -> str:
    """The environment's own channel: failures of platform flows (backfill, monitor)."""
    return f"slack-{environment}"


def channel_block(environment: str, channel_slug: str) -> str:
    """An owner's channel (`Owner.channel_slug`): alerts about that owner's pipelines."""
    return f"slack-{environment}-{channel_slug}"


def block_environment(block_name: str) -> str | None:
    """The environment whose platform block `block_name` is (`warehouse-prod`, `slack-prod`,
    `slack-prod-commerce-data`, `pii-hash-key-prod` → prod); None for any other name (a team's own block, a typo)."""
    for prefix in (warehouse_block(""), slack_block(""), PII_KEY_BLOCK.format(env="")):
        if block_name.startswith(prefix):
            named = block_name.removeprefix(prefix).split("-", 1)[0]
            return named if named in ENVIRONMENTS else None
    return None


def channel_webhook_variable(channel_slug: str) -> str:
    """`commerce-data` → SHIPSHAPE_SLACK_WEBHOOK_COMMERCE_DATA: an incoming webhook posts to one channel."""
    return "SHIPSHAPE_SLACK_WEBHOOK_" + channel_slug.upper().replace("-", "_").replace(".", "_")


def secret_block_variable(block_template: str) -> str:
    """Where `make apply` reads a Secret block's value: `pii-hash-key-{env}` → SHIPSHAPE_SECRET_PII_HASH_KEY."""
    stem = block_template.replace("{env}", "").strip("-")
    return "SHIPSHAPE_SECRET_" + stem.upper().replace("-", "_")


SECRET_VARIABLE_PREFIX = "SHIPSHAPE_SECRET_"
"""A declaration's `{env: …}` secret names a variable with this prefix, so it can never name the worker's own
credentials (PREFECT_API_KEY, PREFECT_API_AUTH_STRING, SHIPSHAPE_WAREHOUSE_URL, …) and send them to a declared host."""
PLATFORM_SECRET_VARIABLES = frozenset({PII_KEY_VARIABLE})
"""Variables outside the prefix a declaration may still name: the PII hash key's default (`pii.key`)."""


def declarable_secret_variable(variable: str) -> bool:
    """Whether a declaration may read this environment variable as a secret."""
    return (variable.startswith(SECRET_VARIABLE_PREFIX) and variable != SECRET_VARIABLE_PREFIX) or (
        variable in PLATFORM_SECRET_VARIABLES
    )


def role_name(environment: str, purpose: RolePurpose) -> str:
    """PostgreSQL role names are cluster-wide, so each environment's roles carry its name.

    `owner` cannot log in: it owns the published tables, and only `PUBLISHED_TABLE_FUNCTIONS` act as it."""
    return f"shipshape_{environment}_{purpose}"


def partition_lock(pipeline: str, partition_key: str) -> str:
    """The lock a run holds on a partition while it writes, audits and publishes it."""
    return f"shipshape:{pipeline}:{partition_key}"


def destination_lock(schema: str, table: str) -> str:
    """The lock every publish to one published table holds for its whole transaction."""
    return f"shipshape:publish:{schema}.{table}"


def audit_partition_prefix(pipeline: str, table_suffix: str) -> str:
    """The start of every audit table of one partition: `<pipeline>__<partition>__`."""
    return f"{pipeline}__{table_suffix}__"


def audit_table(pipeline: str, table_suffix: str, run_tag: str, step: str) -> str:
    """`<pipeline>__<partition>__<run>__<step>`: the next run of the partition finds a killed run's leftovers."""
    return f"{audit_partition_prefix(pipeline, table_suffix)}{run_tag}__{step}"


def automation_prefix(environment: str) -> str:
    """Every automation the platform manages in an environment starts with it; apply prunes only those."""
    return f"shipshape-{environment}-"


def automation_name(environment: str, subject: str, alert: str) -> str:
    """`shipshape-dev-shop_orders-run-failed`; `subject` is a pipeline or `platform`."""
    return f"{automation_prefix(environment)}{subject}-{alert}"


def backfill_limit(deployment: str) -> str:
    """The global concurrency limit every backfill child of `deployment` holds a slot of."""
    return f"shipshape-backfill-{deployment}"


def pipeline_resource_id(environment: str, pipeline: str) -> str:
    """The event resource of a pipeline in an environment; incident automations match on it."""
    return f"shipshape.pipeline.{environment}.{pipeline}"


def versioned_table(table: str, version: int) -> str:
    """The table a destination's `version` publishes: version 1 is the declared name (`fct_orders`), a later
    one `fct_orders_v2`, so a breaking change gets a new table and readers of the old one move on their own time."""
    return table if version == 1 else f"{table}_v{version}"


REPORTS_FOLDER = "reports"
"""Under the data folder: where the monitor (and `shipshape report` by default) writes each environment's report."""


def report_file(environment: str) -> str:
    """`report-dev.html`: one self-contained page per environment, rewritten by every monitor run."""
    return f"report-{environment}.html"


def report_artifact_key(environment: str) -> str:
    """The monitor's link artifact to the report; Prefect keeps its versions under this key."""
    return f"report-{environment}"


WORKER_VCPUS = 1.0
"""The vCPUs each pipeline run is declared to use: the cost model (`shipshape.cost`) charges a run's duration times it.
Declared, not enforced: Prefect's docker worker has no CPU limit (its job template has none)."""
WORKER_MEMORY_GB = 2
"""The memory each pipeline run may use (GB): the docker pools' `mem_limit` (`infra.work_pools`) and the cost model's
GB-hours read it here, so the bill and the limit agree."""


def cost_model_variable(environment: str) -> str:
    """The Prefect variable holding the environment's cost model (rates), set by `make apply`, read by the monitor and
    `shipshape cost`; a run never needs it, so it is data on the environment's API rather than a block."""
    return f"shipshape-{environment}-cost-model"


def cost_artifact_key(environment: str) -> str:
    """The monitor's monthly cost table artifact; one key per environment, so the UI shows its versions over time."""
    return f"cost-{environment}"
