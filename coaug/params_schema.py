"""What params.yaml may hold: every section as a typed dataclass, each key with its type, allowed values and help.

``check`` runs once when params are loaded, before any stage does work, and fails with one line naming the
file, line and key: an unknown key (with the nearest valid name), a wrong type, a value out of range. The
checked mapping then becomes a :class:`Params` (:func:`typed_params`), and each stage is handed the sections
it reads. The values themselves live in params.yaml only, never here: DVC tracks params.yaml, so a default in
the code would change results without DVC seeing it. The ``train`` section is typed by
coaug.rl.config.TrainConfig, which also carries the paper's values; its keys are checked when a train variant
is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any

import yaml

from coaug.errors import CoaugError

RETRIEVERS = ("bm25_flat", "bm25_multifield", "dense")


def knob(help: str, *, minimum: float | None = None, maximum: float | None = None, choices: tuple = ()) -> Any:
    return dataclasses.field(metadata={"help": help, "minimum": minimum, "maximum": maximum, "choices": choices})


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
    multifield_weights: dict[str, float] = knob("field boosts of bm25_multifield")
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
    seed: int = knob("bootstrap seed")
    alpha: float = knob("significance level", minimum=0, maximum=1)
    comparisons: list[list[str]] = knob("extra paired tests: [system, the system it is tested against]")
    policy_block: dict[str, dict[str, str]] = knob("report block: retriever -> policy column -> system")


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
    repetition_penalty: float = knob("over prompt and output, as transformers and vLLM", minimum=0)
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
    query_repeat: int = knob("times the original query is repeated before its augmentation (BM25)", minimum=1)


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
    min_delta: float = knob("smallest NDCG@10 gain worth a change of the served model")
    max_p_value: float = knob("paired t-test threshold", minimum=0, maximum=1)
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
    problem = _problem(params, Params, ())
    if problem:
        path, message = problem
        line = _line_of(text, path)
        where = f"{source}:{line}" if line else source
        raise CoaugError(f"{where}: {'.'.join(path) or 'params'}: {message}")


def _problem(value: Any, hint: Any, path: tuple[str, ...]) -> tuple[tuple[str, ...], str] | None:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            return path, f"must be a mapping, got {value!r}"
        fields = {f.name: f for f in dataclasses.fields(hint)}
        for key in value:
            if key not in fields:
                near = difflib.get_close_matches(str(key), fields, n=1, cutoff=0.5)
                return (*path, str(key)), "unknown key" + (f" (did you mean {near[0]}?)" if near else f"; valid: {', '.join(fields)}")
        hints = typing.get_type_hints(hint)
        for name, spec in fields.items():
            if name not in value:
                return (*path, name), f"missing ({spec.metadata['help']})"
            found = _problem(value[name], hints[name], (*path, name)) or _out_of_range(value[name], spec.metadata, (*path, name))
            if found:
                return found
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if any(_problem(value, option, path) is None for option in args):
            return None
        return path, f"must be {' or '.join(_describe(a) for a in args)}, got {value!r}"
    if origin is list:
        if not isinstance(value, list):
            return path, f"must be a list, got {value!r}"
        return next(filter(None, (_problem(v, args[0], (*path, str(i))) for i, v in enumerate(value))), None)
    if origin is dict:
        if not isinstance(value, dict):
            return path, f"must be a mapping, got {value!r}"
        return next(filter(None, (_problem(v, args[1], (*path, str(k))) for k, v in value.items())), None)
    return None if _is(value, hint) else (path, f"must be {_describe(hint)}, got {value!r}")


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


def _describe(hint: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null"}
    return names.get(hint, "a " + getattr(typing.get_origin(hint), "__name__", str(hint)).replace("dict", "mapping"))


def _out_of_range(value: Any, spec: dict[str, Any], path: tuple[str, ...]) -> tuple[tuple[str, ...], str] | None:
    if spec["choices"] and value not in spec["choices"]:
        return path, f"must be one of {', '.join(spec['choices'])}, got {value!r}"
    low, high = spec["minimum"], spec["maximum"]
    if isinstance(value, int | float) and ((low is not None and value < low) or (high is not None and value > high)):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        return path, f"must be {bounds}, got {value!r}"
    return None


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
