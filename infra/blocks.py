"""Block documents as code: the environment's warehouse connection, Slack webhook and Secret blocks.

Values come from environment variables (a CI environment's secrets), never from the repo. A block is
saved only when a value differs from what the Prefect API holds, so a second apply changes nothing.
"""

from __future__ import annotations

import os

from prefect.blocks.core import Block
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect_slack import SlackWebhook

from deployments.environments import Environment
from infra.changes import Action, Change
from infra.ownership import created, prune, record_created
from infra.variables import required
from runtime.blocks import WarehouseConnection, load_block
from shipshape.catalog import load_all
from shipshape.declaration_base import SecretRef
from shipshape.names import channel_webhook_variable, secret_block_variable
from shipshape.secrets import secret_refs

BLOCK_KIND = "block"


def desired_blocks(env: Environment) -> dict[str, Block]:
    """Block name → the block document this environment needs."""
    blocks: dict[str, Block] = {
        env.warehouse_block: WarehouseConnection(
            host=required("SHIPSHAPE_WAREHOUSE_HOST", f"block {env.warehouse_block} (host)"),
            port=int(os.environ.get("SHIPSHAPE_WAREHOUSE_PORT", "5432")),
            database=required("SHIPSHAPE_WAREHOUSE_DATABASE", f"block {env.warehouse_block} (database)"),
            loader_user=env.role("loader"),
            loader_password=required("SHIPSHAPE_LOADER_PASSWORD", f"block {env.warehouse_block} (loader password)"),
            publisher_user=env.role("publisher"),
            publisher_password=required(
                "SHIPSHAPE_PUBLISHER_PASSWORD", f"block {env.warehouse_block} (publisher password)"
            ),
            monitor_user=env.role("monitor"),
            monitor_password=required("SHIPSHAPE_MONITOR_PASSWORD", f"block {env.warehouse_block} (monitor password)"),
        ),
        env.slack_block: SlackWebhook(url=required("SHIPSHAPE_SLACK_WEBHOOK_URL", f"block {env.slack_block}")),
    }
    for slug in sorted({declared.spec.owner.channel_slug for declared in load_all()}):
        blocks[env.channel_block(slug)] = SlackWebhook(url=_channel_webhook(env, slug))
    for ref in _secret_refs():
        name = ref.block_name(env.name) or ""
        blocks[name] = Secret(value=required(secret_block_variable(ref.block or ""), f"Secret block {name}"))
    return blocks


def reconcile(env: Environment, *, dry_run: bool) -> list[Change]:
    changes: list[Change] = []
    desired = desired_blocks(env)
    for name, block in desired.items():
        kind = f"{BLOCK_KIND} {block.get_block_type_slug()}"
        try:
            current = load_block(type(block), name, env.name)
        except ValueError:
            action: Action = "create"
        else:
            if _values(current) == _values(block):
                continue
            action = "update"
        if not dry_run:
            block.save(name, overwrite=True)
        changes.append(Change(kind, name, action))
    return changes + _prune(env, desired, dry_run=dry_run)


def _prune(env: Environment, desired: dict[str, Block], *, dry_run: bool) -> list[Change]:
    """Blocks an earlier apply saved that nothing declares any more (a removed owner's channel, a removed
    pipeline's Secret); a block anyone else saved is never in the record, whatever its name."""
    declared = {_block_path(block.get_block_type_slug(), name) for name, block in desired.items()}
    with get_client(sync_client=True) as client:
        ours = created(client, env.name, BLOCK_KIND)
        existing = {
            _block_path(document.block_type.slug, document.name): document
            for document in client.read_block_documents(include_secrets=False)
            if document.block_type is not None and document.name is not None
        }
        changes = prune(
            BLOCK_KIND, existing, declared, owned=ours.__contains__,
            delete=lambda document: client.delete_block_document(document.id), dry_run=dry_run,
        )
        if not dry_run:
            record_created(client, env.name, BLOCK_KIND, declared)
    return changes


def _block_path(type_slug: str, name: str) -> str:
    """`secret pii-hash-key-dev`: names are unique per block type only, so the type is part of the key."""
    return f"{type_slug} {name}"


def _channel_webhook(env: Environment, channel_slug: str) -> str:
    """The owner channel's webhook, or the environment's channel until the owners' webhook is configured."""
    name = channel_webhook_variable(channel_slug)
    return os.environ.get(name) or required(
        "SHIPSHAPE_SLACK_WEBHOOK_URL", f"block {env.channel_block(channel_slug)} (or set {name})"
    )


def _secret_refs() -> list[SecretRef]:
    """Every Secret block the declarations reference (the PII key by default), once."""
    refs: dict[str, SecretRef] = {}
    for declared in load_all():
        for ref in secret_refs(declared.spec):
            if ref.block:
                refs[ref.block] = ref
    return list(refs.values())


def _values(block: Block) -> dict[str, object]:
    """Field values with secrets revealed, for comparison only (never printed)."""
    values = {}
    for field in type(block).model_fields:
        value = getattr(block, field)
        values[field] = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return values
