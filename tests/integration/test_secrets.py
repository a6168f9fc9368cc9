"""Secret references resolve from the environment or a real Prefect Secret block, and say how to fix a miss."""

from __future__ import annotations

import uuid

import pytest
from prefect.blocks.system import Secret

from runtime.secrets import prefect_secret
from shipshape.declaration_base import SecretRef
from shipshape.errors import ConfigurationError


def test_a_secret_block_is_read_from_the_prefect_api(prefect_api: str) -> None:
    name = f"orders-api-token-{uuid.uuid4().hex[:8]}"
    Secret(value="s3cr3t-token").save(name)
    assert prefect_secret(SecretRef(block=name), "http source token") == "s3cr3t-token"


def test_a_missing_block_names_it_and_how_to_create_it(prefect_api: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        prefect_secret(SecretRef(block="no-such-block"), "pipeline shop_orders PII hash key")
    message = str(caught.value)
    assert "pipeline shop_orders PII hash key: Prefect Secret block 'no-such-block' was not found" in message
    assert "Secret(value=...).save('no-such-block')" in message


def test_an_environment_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPSHAPE_SECRET_ORDERS_API_TOKEN", "from-env")
    assert prefect_secret(SecretRef(env="SHIPSHAPE_SECRET_ORDERS_API_TOKEN"), "token") == "from-env"


def test_an_unset_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPSHAPE_SECRET_ORDERS_API_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="environment variable SHIPSHAPE_SECRET_ORDERS_API_TOKEN is not set"):
        prefect_secret(SecretRef(env="SHIPSHAPE_SECRET_ORDERS_API_TOKEN"), "token")


def test_a_reference_needs_a_place() -> None:
    with pytest.raises(ValueError, match="give 'env' \\(variable name\\), 'block'"):
        SecretRef()


def test_a_set_variable_wins_over_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPSHAPE_SECRET_ORDERS_API_TOKEN", "from-env")
    reference = SecretRef(env="SHIPSHAPE_SECRET_ORDERS_API_TOKEN", block="no-such-block")
    assert prefect_secret(reference, "token") == "from-env"


def test_the_block_of_the_runs_environment_is_read(prefect_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    suffix = uuid.uuid4().hex[:8]
    Secret(value="staging-key").save(f"pii-hash-key-{suffix}")
    monkeypatch.setenv("SHIPSHAPE_ENV", suffix)
    monkeypatch.delenv("PII_HASH_KEY", raising=False)
    assert prefect_secret(SecretRef(env="PII_HASH_KEY", block="pii-hash-key-{env}"), "PII key") == "staging-key"


def test_a_missing_environment_block_names_the_block_the_variable_and_the_fix(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPSHAPE_ENV", "staging")
    monkeypatch.delenv("PII_HASH_KEY", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        prefect_secret(SecretRef(env="PII_HASH_KEY", block="pii-hash-key-{env}"), "pipeline shop_orders PII hash key")
    assert str(caught.value) == (
        "pipeline shop_orders PII hash key: Prefect Secret block 'pii-hash-key-staging' was not found and "
        "environment variable PII_HASH_KEY is not set; create it with `make apply ENV=staging` "
        "(value from SHIPSHAPE_SECRET_PII_HASH_KEY) or Secret(value=...).save('pii-hash-key-staging')"
    )
