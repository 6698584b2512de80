"""Issue #16 (security): verified model bundles, and output file permissions.

A bundle is checked (owner-only writable, SHA-256 digest from export) before it is unpickled;
the proof uses a pickle that would create a marker file when loaded. Output files keep the mode
of the file they replace; new ones are 0600 unless ``output.file_mode`` says otherwise.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import warnings
from pathlib import Path

import joblib
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import churnml
from churnml import _atomic
from churnml._atomic import atomic_path, set_file_mode, write_table
from churnml.cli import app
from churnml.errors import ConfigError, ModelError
from churnml.tracking import export_model, load_pipeline
from conftest import local_sample_config

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


class _Payload:
    """Unpickling this runs ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(autouse=True)
def _defaults():
    """A permissive umask (the old code gave 0644 under it) and the default file mode, restored after."""
    old_umask = os.umask(0o022)
    previous = set_file_mode(None)
    yield
    os.umask(old_umask)
    set_file_mode(f"{previous:o}")


@pytest.fixture(scope="module")
def fitted():
    from churnml.pipeline import fit_pipeline

    cfg = churnml.load_config(REPO / "configs" / "cdnow_sample.yaml")
    ds = churnml.load_dataset(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "backtest not requested"
        pipe, _ = fit_pipeline(ds, cfg, backtest=False)
    return pipe, ds, cfg


@pytest.fixture
def bundle(fitted, tmp_path):
    """A bundle exported by churnml (digest beside it), made from an unverified dump."""
    raw = tmp_path / "raw.joblib"
    joblib.dump(fitted[0], raw)
    os.chmod(raw, 0o600)
    return export_model(str(raw), tmp_path / "models" / "m.joblib", trust_unverified=True)


# --- trusted bundles ---------------------------------------------------------------------------


def test_the_payload_runs_code_when_unpickled(tmp_path):
    """The control: without churnml's checks, loading this bundle creates the marker."""
    marker = tmp_path / "pwned"
    joblib.dump(_Payload(marker), tmp_path / "evil.joblib")
    joblib.load(tmp_path / "evil.joblib").close()
    assert marker.exists()


def test_export_writes_a_sha256sum_digest_and_the_bundle_loads_and_scores(fitted, bundle):
    pipe, ds, _ = fitted
    digest = bundle.with_name("m.joblib.sha256")
    assert digest.read_text() == f"{hashlib.sha256(bundle.read_bytes()).hexdigest()}  m.joblib\n"
    if shutil.which("sha256sum"):
        assert subprocess.run(["sha256sum", "-c", digest.name], cwd=bundle.parent, capture_output=True).returncode == 0
    assert mode(bundle) == 0o600 and mode(digest) == 0o600 and mode(bundle.parent) == 0o700
    loaded = load_pipeline(str(bundle))
    as_of = pipe.as_of
    a, b = pipe.score(ds.transactions, as_of), loaded.score(ds.transactions, as_of)
    assert len(b) == 2357
    pd.testing.assert_series_equal(a["churn_probability"], b["churn_probability"])


def test_a_bundle_changed_after_export_is_refused_before_unpickling(bundle, tmp_path):
    marker = tmp_path / "pwned"
    joblib.dump(_Payload(marker), bundle)  # same name, same mode, other bytes
    with pytest.raises(ModelError, match="does not match m.joblib.sha256"):
        load_pipeline(str(bundle))
    with pytest.raises(ModelError, match="does not match"):
        load_pipeline(str(bundle), trust_unverified=True)  # the flag never overrides a mismatch
    assert not marker.exists()


def test_a_bundle_without_its_digest_is_refused_unless_trusted_explicitly(fitted, bundle, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.joblib"
    joblib.dump(_Payload(marker), evil)
    os.chmod(evil, 0o600)
    with pytest.raises(ModelError, match="no digest file evil.joblib.sha256.*--trust-unverified"):
        load_pipeline(str(evil))
    assert not marker.exists()
    bundle.with_name("m.joblib.sha256").unlink()
    with pytest.raises(ModelError, match="no digest file"):
        load_pipeline(str(bundle))
    assert load_pipeline(str(bundle), trust_unverified=True).as_of == fitted[0].as_of


@pytest.mark.parametrize("which, bits, who", [("bundle", 0o020, "group"), ("bundle", 0o002, "others"),
                                              ("digest", 0o020, "group"), ("bundle", 0o022, "group and others")])
def test_a_bundle_or_digest_writable_by_others_is_refused(bundle, which, bits, who):
    target = bundle if which == "bundle" else bundle.with_name("m.joblib.sha256")
    os.chmod(target, 0o600 | bits)
    with pytest.raises(ModelError, match=f"writable by {who} .*chmod go-w"):
        load_pipeline(str(bundle), trust_unverified=True)


def test_cli_score_refuses_a_tampered_bundle_with_exit_3_and_writes_nothing(bundle, tmp_path):
    marker = tmp_path / "pwned"
    joblib.dump(_Payload(marker), bundle)
    out = tmp_path / "s.parquet"
    res = runner.invoke(app, ["score", "--config", local_sample_config(tmp_path), "--model", str(bundle), "--out", str(out)])
    assert res.exit_code == 3 and "does not match" in res.output
    assert not marker.exists() and not out.exists()


def test_cli_export_requires_the_flag_for_an_unverified_bundle(fitted, tmp_path):
    raw = tmp_path / "raw.joblib"
    joblib.dump(fitted[0], raw)
    os.chmod(raw, 0o600)
    out = tmp_path / "out.joblib"
    res = runner.invoke(app, ["export", "--model", str(raw), "--out", str(out)])
    assert res.exit_code == 3 and "no digest file" in res.output and not out.exists()
    res = runner.invoke(app, ["export", "--model", str(raw), "--out", str(out), "--trust-unverified"])
    assert res.exit_code == 0, res.output
    assert out.with_name("out.joblib.sha256").is_file() and load_pipeline(str(out)).as_of == fitted[0].as_of


# --- file permissions --------------------------------------------------------------------------


def test_new_outputs_are_owner_only_and_rewrites_keep_the_previous_mode(tmp_path):
    df = pd.DataFrame({"customer_id": ["a", "b"], "x": [1.0, 2.0]})
    new = write_table(df, tmp_path / "new" / "deeper" / "t.csv")
    assert mode(new) == 0o600  # under umask 022 the old code gave 0644
    assert mode(tmp_path / "new") == 0o700 and mode(tmp_path / "new" / "deeper") == 0o700
    for m in (0o600, 0o640, 0o644):
        os.chmod(new, m)
        write_table(df, new)
        assert mode(new) == m
    # the configured mode applies to new files only
    set_file_mode("0640")
    assert mode(write_table(df, tmp_path / "g" / "t.parquet")) == 0o640 and mode(tmp_path / "g") == 0o750
    os.chmod(new, 0o600)
    write_table(df, new)
    assert mode(new) == 0o600
    assert not list(tmp_path.rglob("*.tmp"))


def test_file_mode_setting_is_validated(tmp_path):
    cfg = churnml.config.config_from_dict({"output": {"file_mode": "0640"}})
    assert cfg.output.file_mode == "0640" and churnml.config.Config().output.file_mode == "0600"
    for bad, needle in [("0400", "owner must be able to read and write"), ("0689", "not an octal"), ("4600", "at most 0777")]:
        with pytest.raises(ConfigError, match=f"file_mode.*{needle}"):
            churnml.config.config_from_dict({"output": {"file_mode": bad}})
    path = tmp_path / "c.yaml"
    path.write_text("output:\n  file_mode: 0640\n")  # YAML reads an unquoted 0640 as the integer 416
    with pytest.raises(ConfigError, match="file_mode.*quoted octal string"):
        churnml.load_config(path)
    with pytest.raises(ValueError):
        set_file_mode("0777x")
    assert _atomic.file_mode() == 0o600


def test_cli_score_keeps_a_restricted_file_restricted_and_honours_the_configured_mode(bundle, tmp_path):
    conf = local_sample_config(tmp_path)
    out = tmp_path / "scores.csv"
    args = ["score", "--config", conf, "--model", str(bundle), "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    meta = out.with_name("scores.csv.meta.json")
    assert mode(out) == 0o600 and mode(meta) == 0o600
    os.chmod(out, 0o640)  # the user's choice survives a re-run
    assert runner.invoke(app, args).exit_code == 0
    assert mode(out) == 0o640 and mode(meta) == 0o600
    raw = yaml.safe_load(Path(conf).read_text())
    raw["output"] = {"file_mode": "0640"}
    Path(conf).write_text(yaml.safe_dump(raw))
    out2 = tmp_path / "new" / "scores.parquet"
    assert runner.invoke(app, [*args[:-1], str(out2)]).exit_code == 0
    assert mode(out2) == 0o640 and mode(out2.parent) == 0o750


def test_at_risk_list_and_report_are_owner_only_and_keep_their_mode(fitted, tmp_path):
    from churnml.jobs import marketing_outputs
    from churnml.scoring import score_dataset

    pipe, ds, cfg = fitted
    scored = score_dataset(pipe, ds, cfg)
    at_risk, report = marketing_outputs(scored.scores, scored.meta, cfg, tmp_path / "out", ds)
    assert at_risk.name == "at_risk.xlsx" and mode(at_risk) == 0o600 and mode(report) == 0o600
    assert mode(tmp_path / "out") == 0o700
    os.chmod(at_risk, 0o640)
    marketing_outputs(scored.scores, scored.meta, cfg, tmp_path / "out", ds)
    assert mode(at_risk) == 0o640 and mode(report) == 0o600


def test_a_failed_write_leaves_no_file_and_no_temporary(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("{}")
        raise RuntimeError("boom")
    assert not target.exists() and not list(tmp_path.iterdir())
