"""Commands that read the state of an applied workload: status, output, show, export-key."""

from __future__ import annotations

import json
import stat

from .conftest import run_cli


def test_status_json_forms_agree(applied_tutorial):
    by_flag = run_cli(applied_tutorial, "status", "--json")
    by_option = run_cli(applied_tutorial, "status", "--output", "json")

    assert by_flag.returncode == 0, by_flag.stderr
    assert by_option.returncode == 0, by_option.stderr
    report = json.loads(by_flag.stdout)
    assert json.loads(by_option.stdout)["resources"] == report["resources"]
    assert report["workload"] == "tutorial"
    assert [row["address"] for row in report["resources"]] == ["kp1", "vm1", "image1"]
    assert {row["status"] for row in report["resources"]} == {"created"}


def test_status_text_lists_each_resource(applied_tutorial):
    result = run_cli(applied_tutorial, "status")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("workload tutorial (")
    assert lines[1].split() == ["RESOURCE", "TYPE", "STATE", "INSTANCE", "INSTANCE", "ID"]
    assert [line.split()[0] for line in lines[2:5]] == ["kp1", "vm1", "image1"]
    assert lines[5].startswith("STATE is what cws-workload last did")


def test_output_json_is_one_document(applied_tutorial):
    result = run_cli(applied_tutorial, "output", "--json")

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert set(values) == {"vm_public_ip", "image_uri"}


def test_show_masks_private_key(applied_tutorial):
    hidden = run_cli(applied_tutorial, "show", "tutorial", "kp1")
    shown = run_cli(applied_tutorial, "show", "tutorial", "kp1", "--show-secrets")

    assert hidden.returncode == 0, hidden.stderr
    record = json.loads(hidden.stdout)
    assert record["address"] == "kp1"
    assert record["type"] == "kp"
    assert record["instance"]["attributes"]["privateKey"] == "<HIDDEN>"
    assert record["operations"][0]["action"] == "create"
    assert json.loads(shown.stdout)["instance"]["attributes"]["privateKey"].startswith("-----BEGIN")


def test_show_unknown_resource(applied_tutorial):
    result = run_cli(applied_tutorial, "show", "tutorial", "kp9")

    assert result.returncode == 2
    assert "no resource 'kp9' in workload 'tutorial' (resources: image1, kp1, vm1)" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_key_writes_mode_0600(applied_tutorial):
    target = applied_tutorial / "kp1.pem"

    result = run_cli(applied_tutorial, "export-key", "tutorial", "kp1", "--file", str(target))

    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text(encoding="utf-8").startswith("-----BEGIN RSA PRIVATE KEY-----")

    again = run_cli(applied_tutorial, "export-key", "tutorial", "kp1", "--file", str(target))

    assert again.returncode == 2
    assert f"{target} already exists" in again.stderr


def test_export_key_rejects_non_key_pair(applied_tutorial):
    result = run_cli(applied_tutorial, "export-key", "tutorial", "vm1", "--file", str(applied_tutorial / "vm1.pem"))

    assert result.returncode == 2
    assert "'vm1' has no private key in the state" in result.stderr
    assert not (applied_tutorial / "vm1.pem").exists()
