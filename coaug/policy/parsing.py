"""Turn a policy response into an augmentation (METHOD §2).

``plain``: the stripped response is the augmentation; it is format-valid when non-empty.
``tags``:  the content of the response's single ``<answer>…</answer>`` block, stripped, with a leading
label such as "Keywords:" removed. No well-formed single block -> empty augmentation, not format-valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from coaug.errors import CoaugError

ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
LABEL_PREFIX = re.compile(r"^\s*(keywords?|answer|expansion|abstract|summary)\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    augmentation: str
    format_valid: bool
    has_think: bool
    has_answer: bool


def parse_response(response: str, fmt: str) -> Parsed:
    if fmt == "plain":
        text = response.strip()
        return Parsed(text, bool(text), has_think=False, has_answer=bool(text))
    if fmt != "tags":
        raise CoaugError(f"unknown prompt format '{fmt}'")
    has_think = THINK_BLOCK.search(response) is not None
    blocks = ANSWER_BLOCK.findall(response)
    # Strict: exactly one block, and no stray tag left outside it.
    if len(blocks) != 1 or response.count("<answer>") != 1 or response.count("</answer>") != 1:
        return Parsed("", False, has_think, has_answer=False)
    text = LABEL_PREFIX.sub("", blocks[0].strip()).strip()
    return Parsed(text, bool(text), has_think, has_answer=True)
