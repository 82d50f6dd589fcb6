from __future__ import annotations

import pytest

from coaug.errors import CoaugError
from coaug.policy.prompts import conversation, document_input, load_prompt, truncate_tokens
from coaug.retrieval.combine import augmented_doc, augmented_query

from ..conftest import REPO
from ..tiny_models import build_tokenizer

PROMPTS = REPO / "prompts"


@pytest.mark.parametrize("fmt", ["plain", "tags"])
@pytest.mark.parametrize("name", ["sparse_query", "sparse_doc", "dense_query", "dense_doc"])
def test_the_four_templates_exist_in_both_formats(fmt, name):
    prompt = load_prompt(PROMPTS, fmt, name)
    assert prompt.system and prompt.format == fmt
    assert ("<answer>" in prompt.system) == (fmt == "tags")


def test_prompt_digest_changes_with_text_and_format():
    plain, tags = load_prompt(PROMPTS, "plain", "dense_doc"), load_prompt(PROMPTS, "tags", "dense_doc")
    assert plain.digest != tags.digest
    assert plain.digest == load_prompt(PROMPTS, "plain", "dense_doc").digest


def test_unknown_prompt_lists_the_known_ones():
    with pytest.raises(CoaugError, match=r"unknown prompt 'sparse_qeury' for format 'plain' \(in .*: dense_doc, "):
        load_prompt(PROMPTS, "plain", "sparse_qeury")


def test_document_text_is_truncated_before_templating():
    tokenizer = build_tokenizer()
    text = "breast cancer statin " * 50
    cut = truncate_tokens(tokenizer, text, 10)
    assert len(tokenizer(cut, add_special_tokens=False)["input_ids"]) <= 10
    assert text.startswith(cut)
    user = document_input(tokenizer, "Statins", text, 10)
    assert user == f"Statins. {cut}"
    assert document_input(tokenizer, "", "short text", 10) == "short text"
    messages = conversation(load_prompt(PROMPTS, "plain", "dense_doc"), user)
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered.endswith("<|im_start|>assistant\n")


DOC = {"title": "Statins", "text": "lower mortality"}


def test_doc_augmentation_placement_per_retriever():
    assert augmented_doc(DOC, "cholesterol drug", "bm25_flat") == {
        "title": "Statins",
        "text": "lower mortality cholesterol drug",
    }
    assert augmented_doc(DOC, "cholesterol drug", "bm25_multifield") == {
        "title": "Statins cholesterol drug",
        "text": "lower mortality",
    }
    assert augmented_doc(DOC, "cholesterol drug", "dense") == {
        "title": "cholesterol drug Statins",
        "text": "lower mortality",
    }
    assert augmented_doc(DOC, "", "bm25_flat") == DOC


def test_query_weighting():
    assert augmented_query("statin", "drug lipid", "bm25_flat", 1) == "statin drug lipid"
    assert augmented_query("statin", "drug lipid", "bm25_multifield", 3) == "statin statin statin drug lipid"
    assert augmented_query("statin", "drug lipid", "dense", 5) == "statin drug lipid"
