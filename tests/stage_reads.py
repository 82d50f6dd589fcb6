"""What each DVC stage's command reads, found statically: the ``coaug`` modules it imports (all of their code
runs or may run) and the ``params.yaml`` keys read by the functions it can reach. Modules are named by their
dotted path under coaug (``rl.train``)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "coaug"
KEY_READERS = {("params", "get")}  # (module, function) taking (params, "dotted.key")


def module_path(module: str) -> Path:
    return PACKAGE / (module.replace(".", "/") + ".py")


@cache
def module_tree(module: str) -> ast.Module:
    return ast.parse(module_path(module).read_text())


def coaug_imports(node: ast.AST) -> dict[str, tuple[str, str | None]]:
    """Names bound by ``from coaug... import`` anywhere under ``node``: name -> (module, attribute or None)."""
    bound: dict[str, tuple[str, str | None]] = {}
    for item in ast.walk(node):
        if not (isinstance(item, ast.ImportFrom) and (item.module or "").split(".")[0] == "coaug"):
            continue
        source = item.module.removeprefix("coaug").removeprefix(".")
        for alias in item.names:
            inner = f"{source}.{alias.name}" if source else alias.name
            # `from coaug.rl import run` binds a module; `from coaug.rl.run import run_training` a definition.
            target = (inner, None) if module_path(inner).is_file() else (source, alias.name)
            bound[alias.asname or alias.name] = target
    return bound


def imported_modules(entry: ast.AST) -> set[str]:
    """Every coaug module ``entry`` imports, directly or through the modules it imports."""
    seen: set[str] = set()
    todo = [module for module, _ in coaug_imports(entry).values()]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += [imported for imported, _ in coaug_imports(module_tree(module)).values()]
    return seen


def definitions(module: str) -> dict[str, ast.AST]:
    """Top-level functions and classes (a class counts as one unit: all of its methods)."""
    return {node.name: node for node in module_tree(module).body if isinstance(node, ast.FunctionDef | ast.ClassDef)}


def referenced(module: str, node: ast.AST) -> set[tuple[str, str]]:
    """(module, definition) pairs that ``node`` calls or passes along."""
    bound = coaug_imports(module_tree(module)) | coaug_imports(node)
    local = definitions(module)
    found: set[tuple[str, str]] = set()
    for item in ast.walk(node):
        if isinstance(item, ast.Name) and item.id in local:
            found.add((module, item.id))
        elif isinstance(item, ast.Name) and item.id in bound and bound[item.id][1]:
            found.add(bound[item.id])  # type: ignore[arg-type]
        elif isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name) and item.value.id in bound:
            target, attribute = bound[item.value.id]
            if attribute is None:  # module.function
                found.add((target, item.attr))
    return {(m, name) for m, name in found if name in definitions(m)}


def literal_key(node: ast.AST) -> set[str]:
    """The key a literal names; an f-string ``f"dense.{key}"`` counts as its literal head (``dense``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return {node.values[0].value.rstrip(".")}
    return set()


def is_params_method(func: ast.AST, method: str) -> bool:
    return isinstance(func, ast.Attribute) and func.attr == method and isinstance(func.value, ast.Name) and func.value.id == "params"


def params_read(
    module: str, entry: str, skipped_modules: set[str], skipped_calls: set[tuple[tuple[str, str], tuple[str, str]]],
) -> set[str]:  # fmt: skip
    """The dotted ``params.yaml`` keys read (as literals) by every definition reachable from ``module.entry``,
    not entering ``skipped_modules`` nor following a (caller, callee) pair of ``skipped_calls``."""
    keys: set[str] = set()
    seen: set[tuple[str, str]] = set()
    todo = [(module, entry)]
    while todo:
        unit = todo.pop()
        if unit in seen:
            continue
        seen.add(unit)
        node = definitions(unit[0])[unit[1]]
        for item in ast.walk(node):
            if isinstance(item, ast.Call) and len(item.args) >= 2 and referenced(unit[0], item.func) & KEY_READERS:
                keys |= literal_key(item.args[1])  # P.get(params, "a.b")
            elif isinstance(item, ast.Call) and is_params_method(item.func, "get") and item.args:
                keys |= literal_key(item.args[0])  # params.get("a")
            elif isinstance(item, ast.Subscript) and isinstance(item.value, ast.Name) and item.value.id == "params":
                keys |= literal_key(item.slice)  # params["a"]
        todo += [callee for callee in referenced(unit[0], node) - seen
                 if callee[0] not in skipped_modules and (unit, callee) not in skipped_calls]  # fmt: skip
    return keys
