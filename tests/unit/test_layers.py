"""The layer rule of service/: a module never imports one of a higher layer.

    settings, credentials, version, json_types  <  model  <  telemetry  <  api  <  server

Read from the source (every import statement, also inside functions), not from what happens to
be imported at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"
# Lowest first; a module belongs to the first layer whose prefix its dotted name starts with.
LAYERS = (
    (
        "foundation",
        ("service.settings", "service.credentials", "service.version", "service.json_types"),
    ),
    ("model", ("service.model",)),
    ("telemetry", ("service.telemetry",)),
    ("api", ("service.api",)),
    ("server", ("service.server", "service.__main__")),
)

Edge = tuple[str, str]


def layer_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return rank
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def module_name(path: Path) -> str:
    parts = path.relative_to(SERVICE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The service modules `path` imports (`from service.a import b` counts as service.a)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.startswith("service.")}
    return found


def import_edges() -> list[Edge]:
    edges = []
    for path in sorted(SERVICE.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == SERVICE:
            continue
        source = module_name(path)
        edges += [(source, target) for target in sorted(imports(path))]
    return edges


def upward(edges: list[Edge]) -> list[str]:
    return [
        f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for source, target in edges
        if layer_of(target) > layer_of(source)
    ]


def test_no_module_imports_a_higher_layer() -> None:
    edges = import_edges()
    assert len(edges) > 50  # the walk found the code
    assert upward(edges) == []


def test_every_module_belongs_to_a_layer() -> None:
    for path in SERVICE.rglob("*.py"):
        if path != SERVICE / "__init__.py":
            layer_of(module_name(path))


def test_an_upward_import_is_caught() -> None:
    """The control: the rule flags an import from a lower layer into a higher one."""
    edges = [
        ("service.model.card", "service.api.prediction_ids"),
        ("service.api.app", "service.model.card"),
    ]
    assert upward(edges) == ["service.model.card (model) imports service.api.prediction_ids (api)"]
