"""params.yaml is checked once, on load, against coaug.params_schema (the train section when a variant is built,
before any work): one line naming file, line and key, and the values the key allows."""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from coaug.errors import CoaugError
from coaug.params import load_params
from coaug.params_schema import Augmentation, Bm25, Params, System
from coaug.rl.config import Lora, TrainConfig, train_config

from .conftest import REPO

PARAMS_TEXT = (REPO / "params.yaml").read_text()


def changed_params(folder: Path, line: str, changed: str) -> Path:
    """The committed params.yaml with ``line`` (a key and value, comment aside) replaced by ``changed``."""
    path = folder / "params.yaml"
    path.write_text(
        "\n".join(
            changed if row.startswith(line) and row.split("#")[0].strip() == line.strip() else row
            for row in PARAMS_TEXT.splitlines()
        )
    )
    return path


def line_of(text: str) -> int:
    (index,) = [i for i, line in enumerate(PARAMS_TEXT.splitlines()) if line.startswith(text)]
    return index + 1


def test_the_committed_params_pass_and_load_as_typed_sections():
    params = load_params(REPO / "params.yaml")
    assert isinstance(params.bm25, Bm25) and params.bm25.k1 == 0.9
    assert isinstance(params.systems["bm25_flat"], System)
    assert isinstance(params.trained_augmentations["trained_sparse"], Augmentation)
    assert params.train["steps"] == 30  # a mapping: coaug.rl.config.TrainConfig types it per variant
    # Every value of the file and nothing else, as YAML reads it: no default was added on the way.
    assert dataclasses.asdict(params) == yaml.safe_load(PARAMS_TEXT)


@pytest.mark.parametrize(
    ("line", "changed", "message"),
    [
        ("  max_new_tokens: 24", "  max_new_token: 24", "generation.max_new_token: unknown key (did you mean max_new_tokens?)"),
        ("  k1: 0.9", "  kl: 0.9", "bm25.kl: unknown key (did you mean k1?)"),
        ("  k1: 0.9", "  k1: abc", "bm25.k1: must be a finite number >= 0, got 'abc'"),
        ("  hits: 1000", "  hits: '10'", "retrieval.hits: must be an integer >= 1, got '10'"),
        ("  hits: 1000", "  hits: -5", "retrieval.hits: must be an integer >= 1, got -5"),
        ("  hits: 1000", "  hits: 0", "retrieval.hits: must be an integer >= 1, got 0"),
        ("  b: 0.4", "  b: 1.5", "bm25.b: must be a finite number between 0 and 1, got 1.5"),
        ("  k1: 0.9", "  k1: .nan", "bm25.k1: must be a finite number >= 0, got nan"),
        ("  k1: 0.9", "  k1: -.inf", "bm25.k1: must be a finite number >= 0, got -inf"),
        ("  alpha: 0.05", "  alpha: 1", "evaluation.alpha: must be a finite number > 0 and < 1, got 1"),
        ("  multifield_weights: {contents: 1.0, title: 1.0}", "  multifield_weights: {contents: 1.0, title: -2}", "bm25.multifield_weights.title: must be a finite number >= 0, got -2"),
        ("dataset:", "datset:", "datset: unknown key (did you mean dataset?)"),
        ("  sha256: null", "  sha256: 5", "dataset.sha256: must be a string or null, got 5"),
        ("    retriever: bm25_flat", "    retriever: bm26", "systems.bm25_flat.retriever: must be one of bm25_flat, bm25_multifield, dense, got 'bm26'"),
        ("  eval_split: test", "  # eval_split removed", "dataset.eval_split: missing (the split every system is evaluated on)"),
    ],
)  # fmt: skip
def test_a_wrong_key_is_one_line_naming_file_line_and_key(line, changed, message, tmp_path):
    path = changed_params(tmp_path, line, changed)
    # A removed key is reported at its section's line.
    expected_line = line_of("dataset:") if changed.startswith("  #") else line_of(line)
    with pytest.raises(CoaugError) as raised:
        load_params(path)
    assert str(raised.value) == f"{path}:{expected_line}: {message}"


LORA = "  lora: {enabled: false, r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: [q_proj, k_proj, v_proj, o_proj]}"


@pytest.mark.parametrize(
    ("variant", "line", "changed", "at", "message"),
    [
        ("coaug", "  learning_rate: 1.0e-5", "  learning_rate: -1", None, "train.learning_rate: must be a finite number > 0, got -1"),
        ("coaug", "  queries_per_step: 4", "  queries_per_step: 0", None, "train.queries_per_step: must be an integer >= 1, got 0"),
        ("coaug", "  steps: 30", "  steps: 0", None, "train.steps: must be an integer >= 1, got 0"),
        ("coaug", "  rollouts: 4", "  rollouts: 1", None,
         "train.rollouts: must be an integer >= 2 (a group of one rollout has no baseline), got 1"),
        ("coaug", "  temperature: 1.2", "  temperature: .inf", None, "train.temperature: must be a finite number > 0, got inf"),
        ("coaug", "  epsilon_low: 0.2", "  epsilon_low: .nan", None, "train.epsilon_low: must be a finite number between 0 and 1, got nan"),
        ("coaug", "  estimator: centred", "  estimator: grpo", None,
         "train.estimator: must be one of centred, group_std, batch_norm, got 'grpo'"),
        ("coaug", LORA, LORA.replace("r: 16", "r: 0"), None, "train.lora.r: must be an integer >= 1, got 0"),
        ("coaug", LORA, LORA.replace("lora_dropout: 0.05", "lora_dropout: 1"), None,
         "train.lora.lora_dropout: must be a finite number >= 0 and < 1, got 1"),
        # A key left out of train is missing, as in every section (no default fills it), reported at train's line.
        ("coaug", "  steps: 30", "  # steps removed", "train:", "train.steps: missing (optimizer steps cap)"),
        ("coaug", "  sample_every: 4", "  sample_evry: 4", None, "train.sample_evry: unknown key (did you mean sample_every?)"),
        # A variant's override is reported at its own line.
        ("control", "  control: {reward_control: shuffled}", "  control: {reward_control: shuffled, learning_rate: 0}", None,
         "train_variants.control.learning_rate: must be a finite number > 0, got 0"),
        ("qonly", "  qonly: {q_only: true}", "  qonly: {q_only: true, k_only: true}", None,
         "train_variants.qonly.k_only: excludes q_only (an ablation trains one side: q_only the queries)"),
        ("qonly", "  qonly: {q_only: true}", "  qonly: {q_only: true, doc_max_tokens: 9}", None,
         "train_variants.qonly.doc_max_tokens: is augment.doc_max_tokens: set it there"),
    ],
)  # fmt: skip
def test_a_wrong_train_key_is_one_line_naming_file_line_and_key(variant, line, changed, at, message, tmp_path):
    path = changed_params(tmp_path, line, changed)
    params = load_params(path)  # the train section is a mapping here: TrainConfig types it per variant
    with pytest.raises(CoaugError) as raised:
        train_config(params, variant, path)
    assert str(raised.value) == f"{path}:{line_of(at or line)}: {message}"


def test_the_train_section_of_the_committed_params_types_every_variant():
    params = load_params(REPO / "params.yaml")
    configs = {variant: train_config(params, variant, REPO / "params.yaml") for variant in params.train_variants}
    coaug = configs[params.registry.variant]
    assert coaug.steps == params.train["steps"] and coaug.policy == params.policy.model  # policy: null
    assert coaug.doc_max_tokens == params.augment.doc_max_tokens
    assert {name: c.reward_control for name, c in configs.items() if c.reward_control != "none"} == {
        "control": "shuffled"
    }


COMMITTED = yaml.safe_load(PARAMS_TEXT)
NUMBER_BOUNDS = ("minimum", "above", "maximum", "below")


def numbers(section: type, path: tuple[str, ...], value: dict) -> typing.Iterator[tuple[tuple[str, ...], type, dict]]:
    """(path, int or float, knob) of every number the dataclass ``section`` types in ``value``, its mapping in
    params.yaml: its own, those of its subsections, one item of each section of named items (their fields are
    the same), each value of a mapping of numbers."""
    hints = typing.get_type_hints(section)
    for field in dataclasses.fields(section):
        hint, where = hints[field.name], (*path, field.name)
        item = typing.get_args(hint)[1] if typing.get_origin(hint) is dict else None
        if hint in (int, float):
            yield where, hint, field.metadata
        elif item in (int, float):
            yield from (((*where, key), item, field.metadata) for key in value[field.name])
        elif dataclasses.is_dataclass(hint):
            yield from numbers(hint, where, value[field.name])
        elif dataclasses.is_dataclass(item):
            name = next(iter(value[field.name]))
            yield from numbers(item, (*where, name), value[field.name][name])


# Every number of the schema. doc_max_tokens is augment.doc_max_tokens in TrainConfig, never written in train.
NUMBERS = [
    *numbers(Params, (), COMMITTED),
    *(n for n in numbers(TrainConfig, ("train",), COMMITTED["train"]) if n[0] != ("train", "doc_max_tokens")),
    *numbers(Lora, ("train", "lora"), COMMITTED["train"]["lora"]),
]


def test_every_number_of_the_schema_declares_its_range():
    assert len(NUMBERS) > 50  # the walk found the sections, train and lora
    assert [".".join(path) for path, _, knob in NUMBERS if all(knob[b] is None for b in NUMBER_BOUNDS)] == []


def refused(kind: type, knob: dict) -> st.SearchStrategy:
    """Numbers ``knob`` refuses: NaN and the infinities (not integers either), and values past each of its bounds."""
    finite = {"allow_nan": False, "allow_infinity": False}
    whole = kind is int
    # A float strategy bounded by 0 may draw -0.0, which equals 0: the filters keep only values past the bound.
    beyond = {
        "minimum": lambda b: (
            st.integers(max_value=b - 1) if whole else st.floats(max_value=b, **finite).filter(lambda v: v < b)
        ),
        "above": lambda b: st.integers(max_value=b) if whole else st.floats(max_value=b, **finite),
        "maximum": lambda b: (
            st.integers(min_value=b + 1) if whole else st.floats(min_value=b, **finite).filter(lambda v: v > b)
        ),
        "below": lambda b: st.integers(min_value=b) if whole else st.floats(min_value=b, **finite),
    }
    past = [values(knob[bound]) for bound, values in beyond.items() if knob[bound] is not None]
    return st.one_of(st.sampled_from([math.nan, math.inf, -math.inf]), *past)


def dumped_line(text: str, path: tuple[str, ...]) -> int:
    """The 1-based line of ``path`` in YAML as yaml.safe_dump writes it (block style, two spaces a level)."""
    lines, number = text.splitlines(), -1
    for depth, key in enumerate(path):
        number = next(i for i in range(number + 1, len(lines)) if lines[i].startswith("  " * depth + f"{key}:"))
    return number + 1


@pytest.mark.parametrize(("path", "kind", "knob"), NUMBERS, ids=[".".join(path) for path, _, _ in NUMBERS])
@settings(max_examples=6, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_number_out_of_its_range_is_refused_in_one_line_before_any_work(path, kind, knob, data, tmp_path):
    params = copy.deepcopy(COMMITTED)
    parent = params
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = data.draw(refused(kind, knob), label="value")
    source = tmp_path / "params.yaml"
    text = yaml.safe_dump(params, sort_keys=False)
    source.write_text(text)
    written = yaml.safe_load(text)
    for key in path:
        written = written[key]
    # Loading checks every section but train, which train_config checks as it types it: neither loads a model,
    # an index or a dataset.
    with pytest.raises(CoaugError) as raised:
        train_config(load_params(source), params["registry"]["variant"], source)
    message = str(raised.value)
    words = "an integer" if kind is int else "a finite number"
    prefix, suffix = f"{source}:{dumped_line(text, path)}: {'.'.join(path)}: must be {words} ", f", got {written!r}"
    assert "\n" not in message and message.startswith(prefix) and message.endswith(suffix), message
    allowed = message.removeprefix(prefix).removesuffix(suffix)
    assert re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", allowed.split(" (")[0]) == [
        str(knob[b]) for b in NUMBER_BOUNDS if knob[b] is not None
    ]
    assert allowed.endswith(f" ({knob['reason']})") if knob["reason"] else "(" not in allowed
