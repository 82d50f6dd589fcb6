"""System prompts (files under prompts/<format>/<name>.txt) and how texts become chat conversations.

Formats (METHOD §2, §10):
- ``plain``: the whole response is the augmentation. The default: SmolLM2-135M never writes tag blocks.
- ``tags``:  the paper's ``<think>``/``<answer>`` format, parsed strictly (coaug.policy.parsing).

A document is shown as ``"{title}. {text}"`` with the TEXT cut to a token budget *before* templating, so the
assistant header is never truncated away; training and inference share this function.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from coaug.errors import CoaugError

FORMATS = ("plain", "tags")


@dataclass(frozen=True)
class Prompt:
    name: str
    format: str
    system: str

    @property
    def digest(self) -> str:
        """Identifies the prompt in augmentation cache keys: any edit invalidates cached outputs."""
        return hashlib.sha256(f"{self.format}\0{self.system}".encode()).hexdigest()[:16]


def load_prompt(prompts_dir: str | Path, fmt: str, name: str) -> Prompt:
    if fmt not in FORMATS:
        raise CoaugError(f"unknown prompt format '{fmt}' (choose from {', '.join(FORMATS)})")
    folder = Path(prompts_dir) / fmt
    path = folder / f"{name}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.txt"))
        raise CoaugError(f"unknown prompt '{name}' for format '{fmt}' (in {folder}: {', '.join(known) or 'none'})")
    system = path.read_text(encoding="utf-8").strip()
    if not system:
        raise CoaugError(f"{path}: empty prompt")
    return Prompt(name=name, format=fmt, system=system)


def truncate_tokens(tokenizer, text: str, max_tokens: int) -> str:
    """The first ``max_tokens`` tokens of ``text``, decoded back to a string."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text
    return tokenizer.decode(ids[:max_tokens], skip_special_tokens=True)


def document_input(tokenizer, title: str, text: str, max_text_tokens: int) -> str:
    body = truncate_tokens(tokenizer, text, max_text_tokens)
    return f"{title}. {body}" if title.strip() else body


def conversation(prompt: Prompt, user_text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": user_text}]
