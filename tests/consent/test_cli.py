"""``fedbroker keys`` and ``fedbroker directory``: files, exit codes, clear errors."""

from __future__ import annotations

import stat
import sys
from datetime import timedelta

import pytest

from consent import load_directory
from fedbroker.cli import main
from tests.consent.conftest import T0


@pytest.fixture
def run(monkeypatch, capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["fedbroker", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_keys_gen_writes_pem_pairs(run, tmp_path):
    code, out, _ = run("keys", "gen", "--kind", "signing", "--out", str(tmp_path / "ca"))
    assert code == 0 and "ed25519:" in out
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600
    code, out, _ = run("keys", "gen", "--kind", "sealing", "--out", str(tmp_path / "svc"))
    assert code == 0 and "x25519:" in out
    code, out, _ = run("keys", "show", str(tmp_path / "svc.pub"))
    assert code == 0 and out.startswith("sealing key (X25519): x25519:")
    code, out, _ = run("keys", "show", str(tmp_path / "ca.key"))
    assert out.startswith("signing key (Ed25519)")
    code, _, err = run("keys", "gen", "--kind", "signing", "--out", str(tmp_path / "ca"))
    assert code == 1 and "exists" in err
    code, _, _ = run("keys", "gen", "--kind", "other", "--out", str(tmp_path / "x"))
    assert code == 2


def test_directory_sign_and_verify(run, federation, tmp_path):
    signed = tmp_path / "d.signed"
    key = federation.keys["gmca"].signing.private
    code, out, err = run(
        "directory",
        "sign",
        "--key",
        str(key),
        "--in",
        str(federation.document_path),
        "--out",
        str(signed),
    )
    assert code == 0, err
    anchor = str(federation.trust_anchor)
    load_directory(signed, trust_anchor=federation.trust_anchor, now=T0)
    code, out, err = run(
        "directory", "verify", str(signed), "--trust-anchor", anchor, "--at", T0.isoformat()
    )
    assert code == 0, err
    assert "council (3): E08000003, E08000006, E08000009" in out
    assert "agreement gm-multiple-disadvantage" in out
    # refused: unsigned, expired, wrong anchor (exit 1 with the reason code)
    code, _, err = run(
        "directory",
        "verify",
        str(federation.document_path),
        "--trust-anchor",
        anchor,
        "--at",
        T0.isoformat(),
    )
    assert code == 1 and "[directory-unsigned]" in err
    later = (T0 + timedelta(days=60)).isoformat()
    code, _, err = run("directory", "verify", str(signed), "--trust-anchor", anchor, "--at", later)
    assert code == 1 and "[directory-expired]" in err
    wrong = str(federation.keys["broker"].signing.public)
    code, _, err = run(
        "directory", "verify", str(signed), "--trust-anchor", wrong, "--at", T0.isoformat()
    )
    assert code == 1 and "[directory-signature-invalid]" in err
    code, _, err = run(
        "directory",
        "sign",
        "--key",
        str(federation.keys["broker"].signing.private),
        "--in",
        str(federation.document_path),
        "--out",
        str(signed),
    )
    assert code == 1 and "[directory-signer-mismatch]" in err


def test_directory_dev_and_check_agreement(run, tmp_path):
    from consent import example_agreement_paths

    code, out, err = run(
        "directory",
        "dev",
        "--out",
        str(tmp_path / "fed"),
        "--council",
        "E08000006",
        "--council",
        "E08000009",
    )
    assert code == 0, err
    signed, anchor = tmp_path / "fed/directory.signed", tmp_path / "fed/keys/gmca.signing.pub"
    paths = [str(p) for p in example_agreement_paths()]
    code, out, err = run("directory", "check-agreement", *paths)
    assert code == 0 and out.count("is valid") == 3
    # the full GM agreements name councils this two-council directory lacks
    code, _, err = run(
        "directory",
        "check-agreement",
        paths[0],
        "--directory",
        str(signed),
        "--trust-anchor",
        str(anchor),
    )
    assert code == 1 and "[agreement-invalid]" in err
    assert "is not a council in the directory" in err


def test_audit_subject_details_are_parsed_and_never_echoed():
    from fedbroker._errors import CommandError
    from fedbroker.cli._audit_subject import parse_details

    assert parse_details('{"given_name": "Ann", "nhs_number": "943 476 5919"}') == {
        "given_name": "Ann",
        "nhs_number": "943 476 5919",
    }
    assert parse_details("# a request\ngiven_name: Ann\nfamily_name=Example\n\n") == {
        "given_name": "Ann",
        "family_name": "Example",
    }
    assert parse_details("date_of_birth: 1980-02-03")["date_of_birth"] == "1980-02-03"
    for bad, expected in (
        ("Ann Example 1980-02-03", "details line 1"),
        ('{"given_name": ', "not valid JSON"),
        ('["Ann"]', "details line 1"),
        ('{"nhs_number": 9434765919}', "'nhs_number' must be text"),
        ("surname: Secretname", "details line(s) 1: unknown field"),
        ("given_name: Ann\nAnn Example=1980-02-03", "details line(s) 2: unknown field"),
        ('{"Ann Example": "1980-02-03"}', "1 detail(s): unknown field"),
        ("Ann: Example", "details line(s) 1: unknown field"),
        ("given_name:   ", "no details given"),
    ):
        with pytest.raises(CommandError) as caught:
            parse_details(bad)
        message = str(caught.value)
        assert expected in message, (bad, message)
        for value in ("Ann", "Example", "1980", "9434765919", "Secretname"):
            assert value not in message


def test_audit_subject_reads_details_before_any_kafka_and_refuses_bad_ones(
    run, monkeypatch, tmp_path
):
    import io
    import json

    keys = tmp_path / "linkage.json"
    keys.write_text(json.dumps({"1": "11" * 32}))
    monkeypatch.setattr(sys, "stdin", io.StringIO("nhs_number: 943 476 5918\n"))
    code, _, err = run("audit", "subject", "--linkage-keys", str(keys))
    assert code == 1 and "nhs_number" in err and "5918" not in err
