from __future__ import annotations

import pytest

from coaug.errors import CoaugError
from coaug.policy.parsing import Parsed, parse_response


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("<think>why</think><answer>statin, cholesterol</answer>", Parsed("statin, cholesterol", True, True, True)),
        ("<answer> Keywords: statin cholesterol </answer>", Parsed("statin cholesterol", True, False, True)),
        ("<think>only thinking</think>", Parsed("", False, True, False)),
        ("<answer>a</answer><answer>b</answer>", Parsed("", False, False, False)),
        ("<answer>unclosed", Parsed("", False, False, False)),
        ("<answer>x</answer> trailing </answer>", Parsed("", False, False, False)),
        ("<answer>   </answer>", Parsed("", False, False, True)),
        ("plain prose without tags", Parsed("", False, False, False)),
        ("<answer>line one\nline two</answer>", Parsed("line one\nline two", True, False, True)),
    ],
)
def test_tags_format_is_strict(response, expected):
    assert parse_response(response, "tags") == expected


def test_plain_format_takes_the_whole_response():
    assert parse_response("  statin cholesterol\n", "plain") == Parsed("statin cholesterol", True, False, True)
    assert parse_response(" \n ", "plain") == Parsed("", False, False, False)


def test_unknown_format():
    with pytest.raises(CoaugError, match="unknown prompt format 'xml'"):
        parse_response("x", "xml")
