"""What each DVC stage's command reads, found statically: the ``coaug`` modules it imports (all of their code
runs or may run) and the ``params.yaml`` keys read by the functions it can reach, through the typed sections of
coaug.params_schema. Modules are named by their dotted path under coaug (``rl.train``)."""

from __future__ import annotations

import ast
import dataclasses
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from coaug.params_schema import Params

PACKAGE = Path(__file__).resolve().parents[1] / "coaug"


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


# The classes of coaug.params_schema that type params.yaml: the whole file, a section (Bm25 -> bm25, so that
# ``bm25.k1`` is read as key ``bm25.k1``) or an item of a section that maps names to items (System -> systems,
# read as a whole: which item is a foreach stage's ${key}).
PARAMS_FIELDS = typing.get_type_hints(Params)


def item_class(hint: typing.Any) -> type | None:
    """The dataclass of a ``dict[str, Item]`` section's items, else None."""
    args = typing.get_args(hint)
    return args[1] if typing.get_origin(hint) is dict and dataclasses.is_dataclass(args[1]) else None


SECTION_CLASSES = {hint.__name__: name for name, hint in PARAMS_FIELDS.items() if dataclasses.is_dataclass(hint)}
ITEM_CLASSES = {
    item.__name__: frozenset(name for name, hint in PARAMS_FIELDS.items() if item_class(hint) is item)
    for item in filter(None, map(item_class, PARAMS_FIELDS.values()))
}


@dataclass(frozen=True)
class Typed:
    """What a typed expression holds: all params (``Params``), one ``section`` or an item of ``sections``."""

    kind: str  # "params", "section" or "item"
    sections: frozenset[str] = frozenset()


def schema_class(module: str, annotation: ast.AST | None, bound: dict[str, tuple[str, str | None]]) -> Typed | None:
    """What an annotation of ``module`` types when it names a class of coaug.params_schema, else None."""
    name = None
    if isinstance(annotation, ast.Name):
        origin = ("params_schema", annotation.id) if module == "params_schema" else bound.get(annotation.id)
        name = origin[1] if origin and origin[0] == "params_schema" else None
    elif isinstance(annotation, ast.Attribute) and isinstance(annotation.value, ast.Name):
        name = annotation.attr if bound.get(annotation.value.id) == ("params_schema", None) else None
    if name == Params.__name__:
        return Typed("params")
    if name in SECTION_CLASSES:
        return Typed("section", frozenset({SECTION_CLASSES[name]}))
    if name in ITEM_CLASSES:
        return Typed("item", ITEM_CLASSES[name])
    return None


def called_function(module: str, func: ast.AST) -> tuple[str, ast.FunctionDef] | None:
    """The coaug function (or the ``__init__`` of the coaug class) a call of ``func`` in ``module`` runs."""
    targets = referenced(module, func)
    if len(targets) != 1:
        return None
    ((target, name),) = targets
    node = definitions(target)[name]
    if isinstance(node, ast.ClassDef):
        node = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    return (target, node) if node else None


def parameter_annotation(function: ast.FunctionDef, call: ast.Call, argument: ast.AST) -> ast.AST | None:
    """The annotation of the parameter of ``function`` that ``argument`` of ``call`` binds."""
    positional = [*function.args.posonlyargs, *function.args.args][1 if function.name == "__init__" else 0 :]
    if argument in call.args and not any(isinstance(a, ast.Starred) for a in call.args):
        index = call.args.index(argument)
        return positional[index].annotation if index < len(positional) else None
    keyword = next((k.arg for k in call.keywords if k.value is argument), None)
    by_name = {a.arg: a.annotation for a in [*positional, *function.args.kwonlyargs]}
    return by_name.get(keyword)


class SectionReads(ast.NodeVisitor):
    """The params keys one definition reads through typed names: ``bm25.k1`` where a name annotated ``Bm25``
    (or bound to a call returning one) has ``.k1`` read, ``bm25.k1`` too for ``params.bm25.k1`` on a ``Params``,
    ``systems`` for ``params.systems``. A section (or all params) used whole counts as read whole, unless it is
    handed to a coaug function whose parameter has the same type: that function's own reads count instead
    (when the walk reaches it)."""

    def __init__(self, module: str, node: ast.AST):
        self.module = module
        self.bound = coaug_imports(module_tree(module)) | coaug_imports(node)
        self.parents = {child: parent for parent in ast.walk(node) for child in ast.iter_child_nodes(parent)}
        self.scopes: list[dict[str, Typed]] = [{}]
        self.keys: set[str] = set()
        self.visit(node)

    def typed(self, node: ast.AST) -> Typed | frozenset[str] | None:
        """What ``node`` holds (:class:`Typed`), the keys reading it reads (``bm25.k1``; ``systems``), or None."""
        if isinstance(node, ast.Name):
            return self.scopes[-1].get(node.id)
        if not isinstance(node, ast.Attribute):
            return None
        base = self.typed(node.value)
        if not isinstance(base, Typed):
            return None
        if base.kind == "params":
            hint = PARAMS_FIELDS.get(node.attr)
            return (
                Typed("section", frozenset({node.attr})) if dataclasses.is_dataclass(hint) else frozenset({node.attr})
            )
        return (
            frozenset(f"{section}.{node.attr}" for section in base.sections)
            if base.kind == "section"
            else base.sections
        )

    def whole(self, value: Typed) -> set[str]:
        return set(PARAMS_FIELDS) if value.kind == "params" else set(value.sections)

    def handed_on(self, node: ast.AST, value: Typed) -> bool:
        """Whether ``node`` is bound to a name or passed to a coaug parameter of its own type."""
        parent = self.parents.get(node)
        if isinstance(parent, ast.Assign | ast.AnnAssign) and parent.value is node:
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            return all(isinstance(t, ast.Name) for t in targets)
        if isinstance(parent, ast.keyword):
            parent = self.parents.get(parent)
        if not isinstance(parent, ast.Call) or node is parent.func:
            return False
        function = called_function(self.module, parent.func)
        if function is None:
            return False
        target, definition = function
        annotation = parameter_annotation(definition, parent, node)
        bound = coaug_imports(module_tree(target))
        return schema_class(target, annotation, bound) == value

    def read(self, node: ast.Name | ast.Attribute) -> None:
        value = self.typed(node) if isinstance(node.ctx, ast.Load) else None
        parent = self.parents.get(node)
        if value is None or (
            isinstance(parent, ast.Attribute) and parent.value is node and self.typed(parent) is not None
        ):
            return  # not typed, or the longer chain around it is
        if isinstance(value, frozenset):
            self.keys |= value
        elif not self.handed_on(node, value):
            self.keys |= self.whole(value)

    def visit_Name(self, node: ast.Name) -> None:
        self.read(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.read(node)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        scope = dict(self.scopes[-1])  # a nested function sees the names of the one around it
        arguments = node.args
        for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
            typed = schema_class(self.module, argument.annotation, self.bound)
            if typed:
                scope[argument.arg] = typed
            else:
                scope.pop(argument.arg, None)
        self.scopes.append(scope)
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.bind(target, self.assigned(node.value))
            if not isinstance(target, ast.Name):
                self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.bind(node.target, schema_class(self.module, node.annotation, self.bound))

    def assigned(self, value: ast.AST) -> Typed | None:
        """What a name assigned ``value`` holds: a typed expression, or the result of a coaug function whose
        return annotation is a params class."""
        typed = self.typed(value)
        if isinstance(typed, Typed):
            return typed
        if isinstance(value, ast.Call) and (function := called_function(self.module, value.func)):
            target, definition = function
            return schema_class(target, definition.returns, coaug_imports(module_tree(target)))
        return None

    def bind(self, target: ast.AST, typed: Typed | None) -> None:
        if isinstance(target, ast.Name):
            if typed:
                self.scopes[-1][target.id] = typed
            else:
                self.scopes[-1].pop(target.id, None)


def params_read(
    module: str,
    entry: str,
    skipped_modules: set[str],
    skipped_calls: set[tuple[tuple[str, str], tuple[str, str]]],
) -> set[str]:
    """The dotted ``params.yaml`` keys read through typed sections (:class:`SectionReads`) by every definition
    reachable from ``module.entry``, not entering ``skipped_modules`` nor following a (caller, callee) pair of
    ``skipped_calls``."""
    keys: set[str] = set()
    seen: set[tuple[str, str]] = set()
    todo = [(module, entry)]
    while todo:
        unit = todo.pop()
        if unit in seen:
            continue
        seen.add(unit)
        node = definitions(unit[0])[unit[1]]
        keys |= SectionReads(unit[0], node).keys
        todo += [
            callee
            for callee in referenced(unit[0], node) - seen
            if callee[0] not in skipped_modules and (unit, callee) not in skipped_calls
        ]
    return keys
