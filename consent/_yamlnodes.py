"""Reading YAML through its node graph, so that every problem can name its line.

``yaml.safe_load`` throws away positions; ``yaml.compose`` keeps them. The
agreement and directory loaders walk nodes with these helpers and collect
problems as ``line N: ...`` strings instead of stopping at the first one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

__all__ = ["NodeReader", "compose", "line_of"]


def compose(text: str) -> yaml.Node | None:
    """The node graph of one YAML document (safe: no Python tags are constructed).

    Raises:
        yaml.YAMLError: not YAML, or nested too deeply for the composer (which
            recurses once per level and would otherwise raise RecursionError).
    """
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError as exc:
        raise yaml.YAMLError("nested too deeply") from exc


def line_of(node: yaml.Node | None) -> int:
    """1-based line of a node (0 when unknown)."""
    return node.start_mark.line + 1 if node is not None else 0


@dataclass
class NodeReader:
    """Collects problems while reading typed values out of mapping nodes."""

    problems: list[str] = field(default_factory=list)

    def problem(self, node: yaml.Node | None, message: str) -> None:
        self.problems.append(f"line {line_of(node)}: {message}")

    def mapping(self, node: yaml.Node | None, what: str) -> dict[str, yaml.Node]:
        """Keys to value nodes; a non-mapping is a problem and reads as empty."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping")
            return {}
        result: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in result:
                self.problem(key_node, f"{what}: key '{key}' is given twice")
            result[key] = value_node
        return result

    def text(
        self, parent: yaml.Node, fields: dict[str, yaml.Node], key: str, *, required: bool = True
    ) -> str | None:
        """A non-empty scalar string, or None (and a problem when required)."""
        node = fields.get(key)
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
            if required:
                self.problem(parent, f"missing required field '{key}'")
            return None
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            self.problem(node, f"'{key}' must be a non-empty text value")
            return None
        return str(node.value).strip()

    def text_list(
        self, parent: yaml.Node, fields: dict[str, yaml.Node], key: str, *, required: bool = True
    ) -> list[tuple[str, yaml.Node]]:
        """A sequence of scalars with each item's node (for per-item line numbers)."""
        node = fields.get(key)
        if node is None:
            if required:
                self.problem(parent, f"missing required field '{key}'")
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"'{key}' must be a list")
            return []
        items: list[tuple[str, yaml.Node]] = []
        for item in node.value:
            if not isinstance(item, yaml.ScalarNode) or not str(item.value).strip():
                self.problem(item, f"'{key}' items must be non-empty text values")
                continue
            items.append((str(item.value).strip(), item))
        if required and not items and not node.value:
            self.problem(node, f"'{key}' must not be empty")
        return items

    def unknown_keys(
        self, fields: dict[str, yaml.Node], allowed: frozenset[str], what: str
    ) -> None:
        for key, node in fields.items():
            if key not in allowed:
                self.problem(node, f"{what}: unknown field '{key}'")
