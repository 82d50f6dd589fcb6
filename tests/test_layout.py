"""The package's layout is its architecture: one subpackage per stage, imports only downward."""

from __future__ import annotations

import ast

from .stage_reads import PACKAGE, coaug_imports, module_tree

BENCHMARKS = PACKAGE.parent / "benchmarks"

# Bottom to top. A module may import its own layer and the layers below it, never one above.
LAYERS = [
    {"errors", "atomic_io", "locks", "runtime_env", "params_schema", "params", "tracking"},  # plumbing
    {"data"},  # prepare
    {"policy"},  # the LLM: loading, prompts, decoding
    {"augment"},  # augment
    {"retrieval"},  # index (and retrieval inside rewards and evaluation)
    {"evaluation"},  # evaluate, report
    {"rl"},  # train
    {"registry"},  # promote, search
    {"cli", "plan"},  # entry points
]


def layer(module: str) -> int:
    (index,) = [i for i, names in enumerate(LAYERS) if module.split(".")[0] in names]
    return index


def modules() -> list[str]:
    return sorted(
        str(p.relative_to(PACKAGE).with_suffix("")).replace("/", ".")
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py"
    )


def test_every_module_sits_in_one_layer():
    assert [m for m in modules() if sum(m.split(".")[0] in names for names in LAYERS) != 1] == []


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{m} -> {imported}"
        for m in modules()
        for imported, _ in coaug_imports(module_tree(m)).values()
        if layer(imported) > layer(m)
    ]
    assert upward == []


def test_no_benchmark_imports_the_tests():
    """Benchmarks run apart from pytest: what they share with the tests lives in coaug/ or in benchmarks/."""

    def imported(path):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                yield node.module

    names = [(p.name, name) for p in sorted(BENCHMARKS.glob("*.py")) for name in imported(p)]
    assert [f"{script}: {name}" for script, name in names if name.split(".")[0] == "tests"] == []
