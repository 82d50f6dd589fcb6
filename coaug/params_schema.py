"""What params.yaml may hold: every section as a typed dataclass, each key with its type, allowed values and help.

``check`` runs once when params are loaded, before any stage does work, and fails with one line naming the
file, line and key: an unknown key (with the nearest valid name), a wrong type, a value out of range. The
checked mapping then becomes a :class:`Params` (:func:`typed_params`), and each stage is handed the sections
it reads. The values themselves live in params.yaml only, never here: DVC tracks params.yaml, so a default in
the code would change results without DVC seeing it. The ``train`` section is typed by
coaug.rl.config.TrainConfig (the paper's values in its comments), checked by the same rules
(:func:`section_problem`) when a train variant is built, before any work.

A knob declares the values it allows next to its type: inclusive ``minimum``/``maximum``, exclusive
``above``/``below``, ``choices``, and the ``reason`` for a bound that is not obvious. A number must also be
finite (YAML reads .nan and .inf as numbers); a bound on a list or mapping bounds each number in it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import operator
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from coaug.errors import CoaugError

RETRIEVERS = ("bm25_flat", "bm25_multifield", "dense")


def knob(
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    choices: tuple = (),
    reason: str = "",
) -> Any:
    return dataclasses.field(
        metadata={
            "help": help,
            "minimum": minimum,
            "maximum": maximum,
            "above": above,
            "below": below,
            "choices": choices,
            "reason": reason,
        }
    )


# A knob's bounds: the metadata key, the sign the error shows, the test a value must pass.
BOUNDS = (
    ("minimum", ">=", operator.ge),
    ("above", ">", operator.gt),
    ("maximum", "<=", operator.le),
    ("below", "<", operator.lt),
)
# (the key's path in params.yaml, what is wrong with its value)
Problem = tuple[tuple[str, ...], str]


@dataclass(frozen=True)
class Dataset:
    name: str = knob("names the MLflow experiment and titles the report")
    prepared_dir: str = knob("where `coaug prepare` writes the validated copy")
    source: str = knob("a BEIR folder, a BEIR zip file or an official BEIR zip URL")
    sha256: str | None = knob("expected sha256 of a downloaded zip")
    splits: list[str] = knob("qrels splits that must exist")
    eval_split: str = knob("the split every system is evaluated on")
    max_unknown_qrels: int = knob("judgements naming unknown ids dropped with a warning, up to this count", minimum=0)


@dataclass(frozen=True)
class Bm25:
    k1: float = knob("term-frequency saturation", minimum=0)
    b: float = knob("length normalisation", minimum=0, maximum=1)
    # Lucene refuses negative boosts
    multifield_weights: dict[str, float] = knob("field boosts of bm25_multifield", minimum=0)
    index_threads: int = knob("Lucene indexing threads", minimum=1)
    search_threads: int = knob("Lucene search threads", minimum=1)
    search_batch_size: int = knob("queries per Lucene batch search", minimum=1)


@dataclass(frozen=True)
class Dense:
    encoder: str = knob("sentence-transformers folder, or package:NAME")
    max_seq_length: int = knob("encoder input tokens", minimum=1)
    batch_size: int = knob("texts encoded together", minimum=1)
    cache_chunk_size: int = knob("texts per cached embedding chunk", minimum=1)
    cache_dir: str = knob("embedding cache")


@dataclass(frozen=True)
class Retrieval:
    hits: int = knob("documents retrieved per query", minimum=1)
    remove_self_hits: bool = knob("drop a document with the query's own id")


@dataclass(frozen=True)
class Evaluation:
    metrics: list[str] = knob("ir_measures names, e.g. NDCG@10")
    baseline: str = knob("the system every other is tested against")
    significance_metric: str = knob("the metric of the paired tests")
    bootstrap_samples: int = knob("paired bootstrap resamples", minimum=1)
    seed: int = knob("bootstrap seed", minimum=0)  # numpy seeds are non-negative
    alpha: float = knob("significance level", above=0, below=1)
    comparisons: list[list[str]] = knob("extra paired tests: [system, the system it is tested against]")
    policy_block: dict[str, dict[str, str]] = knob("report block: retriever -> policy column -> system")
    headline: list[str] = knob("the systems of the README's headline table (at most 8), rendered by `coaug report`")


@dataclass(frozen=True)
class System:
    retriever: str = knob("the frozen retriever", choices=RETRIEVERS)
    corpus: str = knob("corpus JSONL")
    queries: str = knob("queries JSONL")


@dataclass(frozen=True)
class Policy:
    model: str = knob("HF folder, .gguf file, package:NAME/FILE.gguf or models:/NAME@ALIAS")
    cache_dir: str = knob("GGUF conversions and registry downloads")
    dtype: str = knob("compute dtype of augmentation: auto, float32, bfloat16 or float16 (coaug.policy.precision)")
    quantize: str = knob("inference-only quantization: none or int8")
    packed_weights: bool = knob("inference on a CPU: Linear weights prepacked for oneDNN (coaug.policy.packed_linear)")


@dataclass(frozen=True)
class Generation:
    max_new_tokens: int = knob("tokens generated per augmentation", minimum=1)
    # divides repeated tokens' logits
    repetition_penalty: float = knob("over prompt and output, as transformers and vLLM", above=0)
    do_sample: bool = knob("false = greedy")
    backend: str = knob("transformers or vllm")


@dataclass(frozen=True)
class Augment:
    batch_size: int = knob("texts decoded together", minimum=1)
    doc_max_tokens: int = knob("document text token budget before the chat template", minimum=1)
    prompts_dir: str = knob("prompts/<format>/<name>.txt")
    cache_dir: str = knob("resumable augmentation cache")
    out_dir: str = knob("augmentation outputs")
    shards: int = knob("parallel shards of a corpus pass", minimum=1)
    task_runner: str = knob("where shards run: local, dask or ray")
    runner_address: str | None = knob("a running dask/ray cluster; null = a local one")


@dataclass(frozen=True)
class Augmentation:
    policy: str | None = knob("null = policy.model")
    format: str = knob("prompt format folder")
    doc_prompt: str | None = knob("null = documents not augmented")
    query_prompt: str | None = knob("null = queries not augmented")


@dataclass(frozen=True)
class AugmentedSystem:
    retriever: str = knob("the frozen retriever", choices=RETRIEVERS)
    augmentation: str = knob("a key of augmentations or trained_augmentations")
    augment_docs: bool = knob("join the augmentation to each document")
    augment_queries: bool = knob("join the augmentation to each query")
    query_repeat: int = knob(
        "times the original query is repeated before its augmentation (BM25); 0 = the augmentation alone", minimum=0
    )


@dataclass(frozen=True)
class MainJob:
    augmentations: list[str] = knob("untrained augmentations whose systems `make pipeline` evaluates")
    train_variants: list[str] = knob("train variants whose policies' systems `make pipeline` evaluates")


@dataclass(frozen=True)
class TrainOutputs:
    checkpoints_dir: str = knob("<dir>/<variant>/step-N")
    policies_dir: str = knob("<dir>/<variant>: the trained policy")
    reports_dir: str = knob("<dir>/<variant>.json, .curves.csv, .validation.csv, .curves.png")


@dataclass(frozen=True)
class Registry:
    model_name: str = knob("MLflow registered model")
    variant: str = knob("the train variant registered as @challenger")


@dataclass(frozen=True)
class Promotion:
    system: str = knob("the system that decides a promotion")
    min_delta: float = knob("smallest NDCG@10 gain worth a change of the served model", minimum=0)
    max_p_value: float = knob("paired t-test threshold", above=0, maximum=1)
    serve_systems: list[str] = knob("systems served by `coaug search`")
    serving_dir: str = knob("the served bundle")


@dataclass(frozen=True)
class Search:
    alias: str = knob("registry alias served")
    k: int = knob("hits printed per query", minimum=1)


@dataclass(frozen=True)
class Mlflow:
    tracking_uri: str = knob("MLflow tracking and registry store")
    artifact_root: str = knob("MLflow artifacts")
    ui_url: str = knob("`mlflow ui` address for links")


@dataclass(frozen=True)
class Outputs:
    indexes_dir: str = knob("indexes/<system>")
    runs_dir: str = knob("runs/<system>.trec")
    metrics_dir: str = knob("metrics/<system>.json and .perquery.tsv")
    reports_dir: str = knob("summary.json, results.md, plots")
    results_page: str = knob("the results page `coaug report` renders (docs/results.md)")
    readme: str | None = knob(
        "the README whose headline table `coaug report` rewrites between its markers; null = none"
    )


@dataclass(frozen=True)
class Params:
    dataset: Dataset = knob("the BEIR dataset")
    bm25: Bm25 = knob("Lucene BM25")
    dense: Dense = knob("the dense encoder and faiss")
    retrieval: Retrieval = knob("retrieval depth")
    evaluation: Evaluation = knob("metrics and tests")
    systems: dict[str, System] = knob("retrieval over the original texts")
    policy: Policy = knob("the augmentation policy")
    generation: Generation = knob("decoding of `coaug augment`")
    augment: Augment = knob("the augment stage")
    augmentations: dict[str, Augmentation] = knob("augmentation runs of untrained policies")
    trained_augmentations: dict[str, Augmentation] = knob("augmentation runs of trained policies")
    augmented_systems: dict[str, AugmentedSystem] = knob("retrieval over texts + augmentations")
    train: dict[str, Any] = knob("RL training (coaug.rl.config.TrainConfig)")
    train_variants: dict[str, dict[str, Any] | None] = knob("train runs: train + overrides")
    main_job: MainJob = knob("what `make pipeline` runs; `make experiments` runs the rest")
    train_outputs: TrainOutputs = knob("where train variants write")
    registry: Registry = knob("MLflow model registry")
    promotion: Promotion = knob("champion/challenger rule")
    search: Search = knob("`coaug search`")
    mlflow: Mlflow = knob("tracking")
    outputs: Outputs = knob("where stages write")


def typed_params(checked: dict[str, Any]) -> Params:
    """The mapping ``check`` passed, as a :class:`Params` of section instances. Values are kept as YAML wrote
    them; ``train`` and ``train_variants`` stay mappings, which coaug.rl.config.TrainConfig types per variant."""
    return _typed(checked, Params)


def _typed(value: Any, hint: Any) -> Any:
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return hint(**{f.name: _typed(value[f.name], hints[f.name]) for f in dataclasses.fields(hint)})
    item_hint = typing.get_args(hint)[1] if typing.get_origin(hint) is dict else None
    if dataclasses.is_dataclass(item_hint):  # a section of named items, such as systems
        return {key: _typed(item, item_hint) for key, item in value.items()}
    return value


def check(params: dict[str, Any], source: str, text: str) -> None:
    """Raise one CoaugError (``source:line: key: problem``) for the first key params.yaml gets wrong."""
    problem = section_problem(params, Params, ())
    if problem:
        raise params_error(problem, source, text)


def params_error(problem: Problem, source: str, text: str) -> CoaugError:
    """``problem`` as the one line the CLI prints: ``source:line: key: what is wrong`` (``text``: the file's)."""
    path, message = problem
    line = _line_of(text, path)
    where = f"{source}:{line}" if line else source
    return CoaugError(f"{where}: {'.'.join(path) or 'params'}: {message}")


def section_problem(value: Any, section: type, path: tuple[str, ...], *, partial: bool = False) -> Problem | None:
    """The first key of ``value``, the mapping at ``path`` of params.yaml, that the dataclass ``section``
    refuses: an unknown key (with the nearest valid name), a missing one (allowed when ``partial``, as in a
    variant's overrides), a wrong type or a value out of its knob's range."""
    if not isinstance(value, dict):
        return path, f"must be a mapping, got {value!r}"
    fields = {f.name: f for f in dataclasses.fields(section)}
    for key in value:
        if key not in fields:
            near = difflib.get_close_matches(str(key), fields, n=1, cutoff=0.5)
            return (*path, str(key)), "unknown key" + (
                f" (did you mean {near[0]}?)" if near else f"; valid: {', '.join(fields)}"
            )
    hints = typing.get_type_hints(section)
    for name, field in fields.items():
        if name not in value and not partial:
            return (*path, name), f"missing ({field.metadata['help']})"
        found = _problem(value[name], hints[name], (*path, name), field.metadata) if name in value else None
        if found:
            return found
    return None


def _problem(value: Any, hint: Any, path: tuple[str, ...], spec: Mapping[str, Any]) -> Problem | None:
    """The first part of ``value`` that ``hint`` refuses, every number in it bounded by ``spec`` (its knob)."""
    if dataclasses.is_dataclass(hint):
        return section_problem(value, hint, path)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if any(_problem(value, option, path, spec) is None for option in args):
            return None
        return path, f"must be {' or '.join(_requirement(a, spec) for a in args)}, got {value!r}"
    if origin is list:
        if not isinstance(value, list):
            return path, f"must be a list, got {value!r}"
        return next(filter(None, (_problem(v, args[0], (*path, str(i)), spec) for i, v in enumerate(value))), None)
    if origin is dict:
        if not isinstance(value, dict):
            return path, f"must be a mapping, got {value!r}"
        return next(filter(None, (_problem(v, args[1], (*path, str(k)), spec) for k, v in value.items())), None)
    if _is(value, hint) and _allowed(value, hint, spec):
        return None
    return path, f"must be {_requirement(hint, spec)}, got {value!r}"


def _is(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is float:  # YAML writes 1 for 1.0
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _allowed(value: Any, hint: Any, spec: Mapping[str, Any]) -> bool:
    """Whether ``value``, of type ``hint``, is one of the knob's choices or a finite number within its bounds."""
    if spec["choices"]:
        return value in spec["choices"]
    if hint not in (int, float):
        return True
    # an int is finite, and math.isfinite overflows on a huge one
    finite = not isinstance(value, float) or math.isfinite(value)
    return finite and all(passes(value, spec[name]) for name, _, passes in BOUNDS if spec[name] is not None)


def _requirement(hint: Any, spec: Mapping[str, Any]) -> str:
    """What a value of type ``hint`` under the knob ``spec`` must be, as the error says it: ``an integer >= 2
    (why)``, ``a finite number between 0 and 1``, ``one of bm25, dense``."""
    if spec["choices"]:
        return f"one of {', '.join(map(str, spec['choices']))}"
    bounds = ""
    if hint in (int, float):
        both = spec["minimum"] is not None and spec["maximum"] is not None
        bounds = (
            f"between {spec['minimum']} and {spec['maximum']}"
            if both
            else " and ".join(f"{sign} {spec[name]}" for name, sign, _ in BOUNDS if spec[name] is not None)
        )
    reason = f" ({spec['reason']})" if spec["reason"] else ""
    return " ".join(filter(None, (_describe(hint), bounds))) + reason


def _describe(hint: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a finite number", bool: "true or false", type(None): "null"}
    return names.get(hint, "a " + getattr(typing.get_origin(hint), "__name__", str(hint)).replace("dict", "mapping"))


def _line_of(text: str, path: tuple[str, ...]) -> int | None:
    """The 1-based line of the deepest node of ``path`` found in the YAML text."""
    node = yaml.compose(text)
    line = None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line
