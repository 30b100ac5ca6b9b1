"""``events.decode_json`` is ``json.loads`` for the log's ``data`` text: same values, same refusals.

Readers decode ``data`` with the C scanner directly (importing ``json`` costs
`profile history` about a millisecond); every row read depends on it
answering exactly as ``json.loads`` would, refusals included.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from hermes_lifecycle.events import decode_json

SAME = [
    "{}", ' {"a": 1} ', '\n\t{"run": 12}\r\n', '{"a": [1, 2.5, -3e2, true, false, null]}',
    '{"nested": {"deep": {"er": ["x", {"y": []}]}}}', '{"s": "caf\\u00e9 \\ud83d\\ude00 \\n \\" \\\\"}',
    '{"big": 123456789012345678901234567890}', '{"dup": 1, "dup": 2}', '{"\\u0000": "nul key"}',
    '{"u": "ünïcödé ✓"}', '[1, 2]', '"text"', "12", "null", '{"f": 1.0e-400}', '{"lone": "\\ud800"}',
]
REFUSED = [
    "", " ", "{", "}", '{"a": 1} x', '{"a": 1}{}', '{"a": 1,}', "{'a': 1}", '{"a": 01}', "\ufeff{}",
    '{"a": "tab\there"}', '{"a": "\\x41"}', "{a: 1}", '{"a" 1}', "[1, 2", '{"a": tru}', "nul",
    '{"a": 1}\x00', "\u00a0{}", '{"a": -}', '{"a": .5}', '{"a": "\\u12"}',
]


@pytest.mark.parametrize("text", SAME)
def test_decodes_as_json_loads_does(text):
    assert decode_json(text) == json.loads(text)
    assert type(decode_json(text)) is type(json.loads(text))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_the_non_standard_constants_as_json_loads_reads_them(constant):
    value, expected = decode_json(f'{{"x": {constant}}}')["x"], json.loads(f'{{"x": {constant}}}')["x"]
    assert (math.isnan(value) and math.isnan(expected)) or value == expected


@pytest.mark.parametrize("text", REFUSED)
def test_refuses_what_json_loads_refuses(text):
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        decode_json(text)


def test_nesting_too_deep_fails_as_json_loads_does():
    text = '{"a": ' * 100_000 + "1" + "}" * 100_000
    with pytest.raises(RecursionError):
        json.loads(text)
    with pytest.raises(RecursionError):
        decode_json(text)


def test_refuses_malformed_text_in_a_process_that_never_imported_json():
    """The C scanner reports a syntax error through json.decoder: without it loaded, the refusal
    must still be a ValueError (a hostile row is skipped and named), never a SystemError."""
    code = (
        "import sys\n"
        "from hermes_lifecycle.events import decode_json\n"
        "assert 'json' not in sys.modules\n"
        "for text in ('{not json', '{\"a\": 1} x', '', '[1,'):\n"
        "    try:\n"
        "        decode_json(text)\n"
        "    except ValueError:\n"
        "        continue\n"
        "    raise SystemExit(f'accepted {text!r}')\n"
        "print(decode_json(' {\"run\": 3} ') == {'run': 3})\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
