"""Declarations: the shipped ones load; mistakes give one line naming file, field, value and fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from shipshape.catalog import find_pipeline, load_all, load_pipeline
from shipshape.errors import ConfigurationError, DeclarationError, SourceError
from shipshape.partitions import FULL_REFRESH, Window
from shipshape.settings import PACKAGE_ROOT, data_roots
from shipshape.sources.files import FileSource, PartitionFileSource
from shipshape.sources.path_template import fill_path

EXAMPLE = PACKAGE_ROOT / "pipelines" / "shop_orders.yaml"


def test_every_shipped_declaration_loads() -> None:
    names = [declared.name for declared in load_all(PACKAGE_ROOT)]
    assert "shop_orders" in names


def _write_variant(tmp_path: Path, change) -> Path:
    """Copy the example project files the declaration needs, with `change` applied to the YAML."""
    data = yaml.safe_load(EXAMPLE.read_text())
    change(data)
    for relative in ["checks/fct_orders.yaml", "pipelines/shop_orders/fct_orders.sql"]:
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((PACKAGE_ROOT / relative).read_text())
    file = tmp_path / "pipelines" / "shop_orders.yaml"
    file.write_text(yaml.safe_dump(data))
    return file


def _error_for(tmp_path: Path, change) -> str:
    file = _write_variant(tmp_path, change)
    with pytest.raises(DeclarationError) as caught:
        load_pipeline(file, tmp_path)
    return str(caught.value)


def test_typo_in_a_key_suggests_the_right_one(tmp_path: Path) -> None:
    message = _error_for(tmp_path, lambda d: d.update(shedule=d.pop("schedule")))
    assert message.startswith("pipelines/shop_orders.yaml: ")
    assert "unknown key 'shedule'; did you mean 'schedule'?" in message
    assert "field 'schedule' is required" in message


def test_unknown_nested_key_names_the_path(tmp_path: Path) -> None:
    message = _error_for(tmp_path, lambda d: d["load"].update(mdoe="merge"))
    assert "unknown key 'load.mdoe'; did you mean 'mode'?" in message


def test_bad_enum_value_names_value_and_choices(tmp_path: Path) -> None:
    message = _error_for(tmp_path, lambda d: d["load"].update(mode="upsert"))
    assert "field 'load.mode': got 'upsert'" in message
    assert "'replace_partition', 'merge' or 'full_replace'" in message


def test_unknown_column_type_lists_the_vocabulary(tmp_path: Path) -> None:
    message = _error_for(tmp_path, lambda d: d["source"]["columns"].update(amount="money"))
    assert "field 'source.columns': got" in message
    assert "unknown column type 'money'; expected one of integer, bigint" in message


def test_bad_cron_is_rejected(tmp_path: Path) -> None:
    message = _error_for(tmp_path, lambda d: d["schedule"].update(cron="61 * * * *"))
    assert "field 'schedule'" in message and "invalid cron '61 * * * *'" in message


def test_missing_contract_file(tmp_path: Path) -> None:
    message = _error_for(tmp_path, lambda d: d.update(contract="checks/nope.yaml"))
    assert "field 'contract': file 'checks/nope.yaml' does not exist" in message


def test_merge_without_key(tmp_path: Path) -> None:
    message = _error_for(tmp_path, lambda d: d["load"].update(mode="merge"))
    assert "load.mode 'merge' needs 'load.key'" in message


def test_volume_loss_rules_are_declared_values(tmp_path: Path) -> None:
    file = _write_variant(tmp_path, lambda d: d["volume"].update(min_rows=0, allow_empty=True, max_shrink=1))
    volume = load_pipeline(file, tmp_path).spec.volume
    assert (volume.allow_empty, volume.max_shrink) == (True, 1.0)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"max_shrink": 1.5}, "field 'volume.max_shrink': got 1.5; Input should be less than or equal to 1"),
        ({"max_shrink": -0.1}, "field 'volume.max_shrink': got -0.1; Input should be greater than or equal to 0"),
        ({"max_shrink": "50%"}, "field 'volume.max_shrink': got '50%'; Input should be a valid number"),
        ({"max_shrink": True}, "field 'volume.max_shrink': got True; Input should be a valid number"),
        ({"allow_empty": "sometimes"}, "field 'volume.allow_empty': got 'sometimes'; Input should be a valid boolean"),
        ({"allow_empty": "true"}, "field 'volume.allow_empty': got 'true'; Input should be a valid boolean"),
        ({"allow_emtpy": True}, "unknown key 'volume.allow_emtpy'; did you mean 'allow_empty'?"),
        ({"allow_empty": True}, "allow_empty is true but min_rows (1000) still blocks an empty partition"),
    ],
)
def test_bad_volume_loss_rules_give_one_line(tmp_path: Path, change: dict[str, object], expected: str) -> None:
    message = _error_for(tmp_path, lambda d: d["volume"].update(change))
    assert expected in message
    assert "\n" not in message


def test_pii_column_must_be_declared(tmp_path: Path) -> None:
    message = _error_for(tmp_path, lambda d: d["pii"]["columns"].update(phone="drop"))
    assert "pii columns ['phone'] are not declared in source.columns" in message


def test_unknown_sql_placeholder(tmp_path: Path) -> None:
    file = _write_variant(tmp_path, lambda d: None)
    (tmp_path / "pipelines/shop_orders/fct_orders.sql").write_text("SELECT * FROM {{ raw_orders }}")
    with pytest.raises(DeclarationError, match=r"uses \{\{ raw_orders \}\}; expected one of \{\{ raw \}\}"):
        load_pipeline(file, tmp_path)


def test_name_must_match_file(tmp_path: Path) -> None:
    message = _error_for(tmp_path, lambda d: d.update(name="orders"))
    assert "field 'name': got 'orders'; expected the file name 'shop_orders'" in message


def test_invalid_yaml(tmp_path: Path) -> None:
    file = tmp_path / "pipelines" / "broken.yaml"
    file.parent.mkdir()
    file.write_text("name: [unclosed")
    with pytest.raises(DeclarationError, match=r"pipelines/broken.yaml: not valid YAML"):
        load_pipeline(file, tmp_path)


def _csv_source(file_format: str = "csv", **csv: object):
    """A change turning the example's source into a landed file with `csv:` options."""

    def change(data: dict) -> None:
        path = "{data_dir}/landing/{start:%Y-%m-%d}." + file_format
        data["source"] = {"kind": "file", "path": path, "format": file_format, "columns": data["source"]["columns"]}
        data["source"]["csv"] = csv

    return change


def test_csv_options_load_with_any_spelling_of_a_supported_encoding(tmp_path: Path) -> None:
    file = _write_variant(tmp_path, _csv_source(delimiter="\t", encoding="Windows-1252", null_markers=["", "NA"]))
    options = load_pipeline(file, tmp_path).spec.source.csv
    assert (options.delimiter, options.quote, options.encoding, options.null_markers, options.header) == (
        "\t", '"', "cp1252", ["", "NA"], True,
    )


@pytest.mark.parametrize(
    ("csv", "expected"),
    [
        (
            {"delimiter": ";;"},
            "field 'source.csv.delimiter': got ';;'; must be exactly one character other than a line break",
        ),
        ({"quote": ""}, "field 'source.csv.quote': got ''; must be exactly one character other than a line break"),
        (
            {"encoding": "utf-16"},
            "field 'source.csv.encoding': got 'utf-16'; unsupported encoding; expected one of cp1252, latin-1, utf-8",
        ),
        ({"null_markers": "NA"}, "field 'source.csv.null_markers': got 'NA'; Input should be a valid list"),
        ({"header": "maybe"}, "field 'source.csv.header': got 'maybe'; Input should be a valid boolean"),
        ({"delimiter": '"'}, "field 'source.csv': got {'delimiter': '\"'}; delimiter and quote are both '\"'"),
        (
            {"delimiter": ";", "null_markers": ["n;a"]},
            "null marker 'n;a' holds the delimiter or quote; an unquoted field's text cannot match it",
        ),
        ({"delimitr": ";"}, "unknown key 'source.csv.delimitr'; did you mean 'delimiter'?"),
    ],
)
def test_invalid_csv_option_is_one_line_naming_the_field(tmp_path: Path, csv: dict, expected: str) -> None:
    message = _error_for(tmp_path, _csv_source(**csv))
    assert message.startswith("pipelines/shop_orders.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_csv_options_on_a_parquet_source_are_rejected(tmp_path: Path) -> None:
    message = _error_for(tmp_path, _csv_source("parquet", delimiter=";"))
    assert "field 'source.csv': got {'delimiter': ';'}; csv options apply only to format: csv" in message
    assert "(this source is parquet); remove source.csv" in message


def test_a_declared_timeout_loads_as_a_duration(tmp_path: Path) -> None:
    declared = load_pipeline(_write_variant(tmp_path, lambda d: d.update(timeout="45m")), tmp_path)
    assert declared.spec.timeout_delta == timedelta(minutes=45)


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        ("soon", "field 'timeout': got 'soon'; expected a duration like 90m, 26h or 2d (units: s, m, h, d)"),
        ("0m", "timeout '0m' is zero: give a duration like 30m, or remove it (default)"),
    ],
)
def test_a_bad_timeout_is_one_line_naming_the_field_and_the_fix(tmp_path: Path, timeout: str, expected: str) -> None:
    message = _error_for(tmp_path, lambda d: d.update(timeout=timeout))
    assert message.startswith("pipelines/shop_orders.yaml: ")
    assert expected in message


# Confined declarations (SECURITY.md): a declaration reads only its own files and the data folder, names only
# secrets meant for it, and publishes only to a table of its own.

HOSTILE_PATH = "{data_dir.__class__.__new__.__globals__[os].environ[PREFECT_API_KEY]}"
CANARY = "pnu_canary-api-key-0123456789"


def _file_source(path: str):
    def change(data: dict) -> None:
        data["source"] = {"kind": "file", "path": path, "format": "csv", "columns": data["source"]["columns"]}

    return change


def test_a_path_template_cannot_reach_the_worker_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_KEY", CANARY)
    message = _error_for(tmp_path, _file_source(HOSTILE_PATH))
    assert f"field 'source.path': got {HOSTILE_PATH!r}; unknown placeholder {HOSTILE_PATH}" in message
    assert "use only {data_dir}, {start:<strftime>} and {end:<strftime>}" in message
    assert CANARY not in message

    # The reader fills templates the same way, even one that never went through validation.
    spec = FileSource.model_construct(kind="file", path=HOSTILE_PATH, format="csv", columns={"a": "text"})
    with pytest.raises(SourceError) as raised:
        PartitionFileSource(spec, tmp_path).path_for(Window("2026-11-05", datetime(2026, 11, 5, tzinfo=UTC)))
    assert CANARY not in str(raised.value)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("{data_dir}/../../etc/passwd", "'..' is not allowed in the path"),
        ("etc/passwd", "the path must start with {data_dir}/ or be absolute"),
        ("/srv/{data_dir}/../x.csv", "'..' is not allowed in the path"),
        ("{data_dir}/{start:%Y}/{end}.csv", "unknown placeholder {end}"),
        ("{data_dir}/{start.year}.csv", "unknown placeholder {start.year}"),
        ("{data_dir}/{start:%Y/../../x}.csv", "'..' is not allowed in the path"),
        ("{data_dir}/{0}.csv", "unknown placeholder {0}"),
        ("{data_dir}/x}.csv", "unmatched '{' or '}'"),
    ],
)
def test_a_path_template_outside_the_data_folder_or_with_unknown_fields_is_refused(
    tmp_path: Path, path: str, problem: str
) -> None:
    message = _error_for(tmp_path, _file_source(path))
    assert f"field 'source.path': got {path!r}; " in message
    assert problem in message


def test_a_symlink_out_of_the_data_folder_is_not_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("a\nworker-only\n")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "landing.csv").symlink_to(outside)
    monkeypatch.setenv("SHIPSHAPE_DATA_ROOTS", str(tmp_path / "landing"))  # a declared root does not cover it either
    spec = FileSource(kind="file", path="{data_dir}/landing.csv", format="csv", columns={"a": "text"})
    with pytest.raises(SourceError) as raised:
        PartitionFileSource(spec, data_dir).path_for(FULL_REFRESH)
    assert str(raised.value) == (
        f"file source: field 'source.path': got '{{data_dir}}/landing.csv', which names the file {outside} for "
        f"partition full (symlinks resolved), outside the allowed roots {data_dir}, {tmp_path / 'landing'} (the data "
        "folder, then SHIPSHAPE_DATA_ROOTS); move the file under one of them, or ask the platform team to declare "
        "its folder"
    )


def test_an_absolute_path_is_read_only_under_a_root_the_platform_declares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, elsewhere, data_dir = tmp_path / "landing", tmp_path / "elsewhere", tmp_path / "data"
    for folder in (landing, elsewhere, data_dir):
        folder.mkdir()
        (folder / "orders.csv").write_text("a\n1\n")
    (landing / "escape.csv").symlink_to(elsewhere / "orders.csv")

    def path_for(template: str) -> Path:
        spec = FileSource(kind="file", path=template, format="csv", columns={"a": "text"})
        return PartitionFileSource(spec, data_dir).path_for(FULL_REFRESH)

    with pytest.raises(SourceError, match=r"outside the allowed roots [^ ]*/data \(the data folder"):
        path_for(f"{landing}/orders.csv")  # nothing declared: only the data folder
    monkeypatch.setenv("SHIPSHAPE_DATA_ROOTS", f"{tmp_path / 'other'}:{landing}")
    assert path_for(f"{landing}/orders.csv") == landing / "orders.csv"
    assert path_for("{data_dir}/orders.csv") == data_dir / "orders.csv"
    for outside in (f"{elsewhere}/orders.csv", f"{landing}/escape.csv", "/etc/passwd"):
        with pytest.raises(SourceError) as raised:
            path_for(outside)
        assert f"field 'source.path': got {outside!r}, which names the file " in str(raised.value)
        assert f"outside the allowed roots {data_dir}, {tmp_path / 'other'}, {landing} (the data folder" in str(
            raised.value
        )
    # A '..' never reaches the reader: refused with the declaration (test above), and by the reader the same way.
    spec = FileSource.model_construct(kind="file", path=f"{landing}/../elsewhere/orders.csv", format="csv",
                                      columns={"a": "text"})
    with pytest.raises(SourceError, match=r"'\.\.' is not allowed in the path"):
        PartitionFileSource(spec, data_dir).path_for(FULL_REFRESH)


def test_data_roots_must_be_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPSHAPE_DATA_ROOTS", "/mnt/landing:landing")
    with pytest.raises(ConfigurationError, match=r"SHIPSHAPE_DATA_ROOTS='/mnt/landing:landing': landing is not an abs"):
        data_roots()


@pytest.mark.parametrize(
    "variable", ["PREFECT_API_AUTH_STRING", "PREFECT_API_KEY", "SHIPSHAPE_WAREHOUSE_URL", "SHIPSHAPE_SECRET_"]
)
def test_a_secret_reference_cannot_name_the_worker_credentials(tmp_path: Path, variable: str) -> None:
    message = _error_for(tmp_path, lambda d: d["pii"].update(key={"env": variable}))
    assert f"field 'pii.key.env': got {variable!r}; a secret variable must be named SHIPSHAPE_SECRET_<NAME>" in message
    assert "(or one of: PII_HASH_KEY); rename the variable (e.g. SHIPSHAPE_SECRET_ORDERS_API_TOKEN)" in message


def test_an_http_token_cannot_name_the_prefect_credential(tmp_path: Path) -> None:
    def http_source(data: dict) -> None:
        data["source"] = {
            "kind": "http", "url": "https://attacker.example/collect", "columns": data["source"]["columns"],
            "token": {"env": "PREFECT_API_AUTH_STRING"},
        }

    message = _error_for(tmp_path, http_source)
    assert "field 'source.token.env': got 'PREFECT_API_AUTH_STRING'; a secret variable must be named" in message


def test_a_secret_reference_may_name_a_shipshape_secret(tmp_path: Path) -> None:
    file = _write_variant(tmp_path, lambda d: d["pii"].update(key={"env": "SHIPSHAPE_SECRET_ORDERS_PII_KEY"}))
    assert load_pipeline(file, tmp_path).spec.pii.key.env == "SHIPSHAPE_SECRET_ORDERS_PII_KEY"


@pytest.mark.parametrize(
    ("field", "value", "folder"),
    [
        ("contract", "../outside/contract.yaml", "checks/"),
        ("contract", "pipelines/shop_orders/fct_orders.sql", "checks/"),
        ("transform", "../outside/steal.sql", "pipelines/shop_orders/"),
        ("transform", "checks/fct_orders.yaml", "pipelines/shop_orders/"),
        ("transform", "pipelines/shop_orders/../other/steal.sql", "pipelines/shop_orders/"),
    ],
)
def test_declared_files_must_lie_in_the_pipelines_own_folders(
    tmp_path: Path, field: str, value: str, folder: str
) -> None:
    for existing in ["outside/contract.yaml", "outside/steal.sql", "pipelines/other/steal.sql"]:
        (tmp_path / existing).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / existing).write_text("SELECT 1")
    shown = "transform[0]" if field == "transform" else field
    message = _error_for(tmp_path, lambda d: d.update({field: [value] if field == "transform" else value}))
    assert f"field {shown!r}: got {value!r}; expected a file under {folder} (after resolving '..' and symlinks)" in (
        message
    )


def test_a_transform_symlinked_out_of_the_pipeline_folder_is_refused(tmp_path: Path) -> None:
    file = _write_variant(tmp_path, lambda d: d.update(transform=["pipelines/shop_orders/leak.sql"]))
    (tmp_path / "secret.txt").write_text("not for declarations")
    (tmp_path / "pipelines/shop_orders/leak.sql").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(DeclarationError, match=r"'transform\[0\]': got 'pipelines/shop_orders/leak.sql'; expected"):
        load_pipeline(file, tmp_path)


@pytest.mark.parametrize("name", ["../pipelines/shop_orders", "../../etc/passwd", "shop_orders/../shop_orders", ""])
def test_a_pipeline_name_from_a_parameter_is_an_identifier_not_a_path(name: str) -> None:
    with pytest.raises(DeclarationError) as raised:
        find_pipeline(name, PACKAGE_ROOT)
    assert str(raised.value) == (
        f"pipelines/: pipeline name {name!r} is not a pipeline name; "
        "expected letters, digits and _ (^[a-z_][a-z0-9_]*$)"
    )


@pytest.mark.parametrize("schema", ["platform", "audit", "public", "pg_catalog", "information_schema"])
def test_a_reserved_schema_is_not_a_destination(tmp_path: Path, schema: str) -> None:
    message = _error_for(tmp_path, lambda d: d["destination"].update(schema=schema))
    assert f"field 'destination.schema': got {schema!r}; schema {schema!r} is reserved for the platform" in message
    assert "publish to a schema of your own, e.g. analytics" in message


def test_two_pipelines_cannot_share_a_destination(tmp_path: Path) -> None:
    _write_variant(tmp_path, lambda d: None)
    copy = yaml.safe_load(EXAMPLE.read_text()) | {"name": "shop_orders_copy", "transform": []}
    (tmp_path / "pipelines" / "shop_orders_copy.yaml").write_text(yaml.safe_dump(copy))
    with pytest.raises(DeclarationError) as raised:
        load_all(tmp_path)
    assert str(raised.value) == (
        "pipelines/shop_orders_copy.yaml: field 'destination': analytics.fct_orders is already the destination of "
        "pipelines/shop_orders.yaml; each pipeline publishes its own table — change destination.table or "
        "destination.schema in one of them"
    )


def test_a_path_template_fills_only_its_three_fields(tmp_path: Path) -> None:
    path = "{data_dir}/landing/{start:%Y/%m/%d}-{end:%d}.csv"
    spec = load_pipeline(_write_variant(tmp_path, _file_source(path)), tmp_path).spec.source
    window = Window("2026-11-05", datetime(2026, 11, 5, tzinfo=UTC), datetime(2026, 11, 6, tzinfo=UTC))
    assert fill_path(spec.path, tmp_path / "data", window) == (tmp_path / "data/landing/2026/11/05-06.csv").resolve()
