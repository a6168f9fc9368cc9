"""Which environment a platform block belongs to is read from its name: the rule runs use to refuse another's."""

from __future__ import annotations

import pytest

from deployments.environments import ENVIRONMENTS
from shipshape import names


@pytest.mark.parametrize(
    ("block", "environment"),
    [
        ("warehouse-prod", "prod"), ("slack-staging", "staging"), ("slack-prod-commerce-data", "prod"),
        ("pii-hash-key-dev", "dev"), ("warehouse-dve", None), ("warehouse-broken", None),
        ("orders-api-token", None), ("slackers-prod", None),
    ],
)
def test_a_platform_blocks_environment_is_read_from_its_name(block: str, environment: str | None) -> None:
    assert names.block_environment(block) == environment


def test_names_knows_every_environment() -> None:
    assert tuple(ENVIRONMENTS) == names.ENVIRONMENTS
