"""A bug in a command prints its type and place, never its message or traceback.

A superscript digit in an NHS number once raised ``ValueError: invalid literal
for int() with base 10: '²'`` inside ``fedbroker link``, and the command
printed the whole traceback, quoting the value, to the operator's terminal
and whatever log collects it. This test failed on the code before its fix.
"""

from __future__ import annotations

import io
import json
import sys

import connectors
from fedbroker.cli import main

SECRET = "Alice Example 14/02/1984 9434765919"


def test_an_unexpected_exception_is_one_line_without_its_message(monkeypatch, capsys, tmp_path):
    def broken(*args, **kwargs):
        raise ValueError(f"invalid literal for int() with base 10: {SECRET!r}")

    monkeypatch.setattr(connectors, "normalise_identity", broken)
    keys = tmp_path / "linkage.json"
    keys.write_text(json.dumps({"1": "11" * 32}))
    monkeypatch.setattr(sys, "stdin", io.StringIO("family_name: Example\n"))
    monkeypatch.setattr(sys, "argv", ["fedbroker", "audit", "subject", "--linkage-keys", str(keys)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert code == 1
    assert "error [internal-error]: unexpected ValueError at test_cli_internal_error.py:" in err
    for part in SECRET.split():
        assert part not in out + err
    assert "Traceback" not in err
