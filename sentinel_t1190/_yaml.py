"""YAML loading that remembers where each key was, so findings can name a line.

Rule, exclusion, fixture and targets files may come from anyone who can open a pull request,
so the loader refuses, with the line: a key given twice in one mapping (YAML says keys are
unique; PyYAML would silently keep the last), and aliases that expand the document by more
than :data:`MAX_ALIAS_NODES` nodes (a "billion laughs" file is a few lines that expand to
billions of nodes) or refer to themselves.
"""

from __future__ import annotations

from typing import Any

import yaml

Path_ = tuple[str | int, ...]
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Nodes that aliases may add to a document when expanded (anchors reused in fixtures stay
#: far below; an alias bomb goes far above and is refused before anything walks it).
MAX_ALIAS_NODES = 10_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlSyntaxError(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def load_with_lines(text: str) -> tuple[Any, dict[Path_, int]]:
    """Parse *text*; return the data and a map from key path to its 1-based line."""
    # One parse (libyaml when PyYAML has it): the node tree gives the lines, and the data is
    # constructed from that same tree.
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check(node)  # before anything expands the aliases
        data = loader.construct_document(node) if node is not None else None
        lines: dict[Path_, int] = {}
        if node is not None:
            _walk(node, (), lines)
    except RecursionError as exc:
        raise YamlSyntaxError("YAML nested too deeply", None) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None and line is not None and start.line + 1 != line:
            problem += f" ({context} that starts on line {start.line + 1})"
        raise YamlSyntaxError(f"YAML syntax error: {problem}", line) from exc
    finally:
        loader.dispose()
    return data, lines


def _check(root: yaml.Node) -> None:
    """Refuse duplicate keys, self-referring aliases and alias expansion past the bound."""
    sizes: dict[int, int] = {}  # node id -> nodes in its expansion
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YamlSyntaxError("YAML alias refers to the node that contains it",
                                  node.start_mark.line + 1)
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            _no_duplicate_keys(node)
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        active.discard(key)
        sizes[key] = total
        return total

    expanded = size(root)
    if expanded - len(sizes) > MAX_ALIAS_NODES:
        raise YamlSyntaxError(f"YAML aliases expand the file by {expanded - len(sizes):,} "
                              f"nodes (at most {MAX_ALIAS_NODES:,} allowed)",
                              root.start_mark.line + 1)


def _no_duplicate_keys(node: yaml.MappingNode) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
            continue
        line = key.start_mark.line + 1
        if (key.tag, key.value) in seen:
            raise YamlSyntaxError(f"YAML key {key.value!r} given twice in one mapping (first "
                                  f"on line {seen[key.tag, key.value]})", line)
        seen[key.tag, key.value] = line


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines[child] = key.start_mark.line + 1
            _walk(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines)
