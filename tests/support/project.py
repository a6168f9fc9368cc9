"""A throwaway copy of the example project (declaration, SQL, contract) with its generated shop database."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.shop_app import generate
from shipshape.settings import PACKAGE_ROOT

FIRST_DAY = date(2026, 11, 1)
DAYS = 3
EXAMPLE_FILES = ["pipelines/shop_orders.yaml", "pipelines/shop_orders/fct_orders.sql", "checks/fct_orders.yaml"]


@dataclass(frozen=True)
class Project:
    root: Path
    data_dir: Path
    warehouse_url: str

    @property
    def shop_db(self) -> Path:
        return self.data_dir / "shop.db"

    @property
    def declaration(self) -> Path:
        return self.root / "pipelines" / "shop_orders.yaml"

    def edit_declaration(self, change: Callable[[dict[str, Any]], None], pipeline: str = "shop_orders") -> None:
        path = self.root / "pipelines" / f"{pipeline}.yaml"
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def env(self) -> dict[str, str]:
        return {
            "SHIPSHAPE_PROJECT_DIR": str(self.root),
            "SHIPSHAPE_DATA_DIR": str(self.data_dir),
            "SHIPSHAPE_WAREHOUSE_URL": self.warehouse_url,
            "PII_HASH_KEY": "test-key-not-a-secret",
            "SODA_CORE_TELEMETRY_ENABLED": "false",
        }


def copy_example(root: Path) -> None:
    """The example pipeline's declaration, SQL and contract, at the same places under `root`."""
    for relative in EXAMPLE_FILES:
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PACKAGE_ROOT / relative, target)


def make_project(tmp_path: Path, warehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> Project:
    """Copy the example pipeline into tmp_path, generate DAYS days of shop orders, point settings at it."""
    root = tmp_path / "project"
    copy_example(root)
    project = Project(root=root, data_dir=tmp_path / "data", warehouse_url=warehouse_url)
    generate(project.shop_db, FIRST_DAY, DAYS)
    for name, value in project.env().items():
        monkeypatch.setenv(name, value)
    return project
