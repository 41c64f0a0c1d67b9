"""YAML text -> plain data, within bounds: a config file, a `--set` or a `--grid` value.

Any text is refused or read in bounded time and memory: nesting, the number of values (with
every alias expanded) and duplicate keys are checked while composing, before anything is built.
"""

from __future__ import annotations

from typing import Any

import yaml

from tiny_cli.errors import TinyError, echo, echo_key

MAX_DEPTH = 32  # nesting of YAML collections
MAX_NODES = 100_000  # YAML values, counted with every alias expanded (a "billion laughs")

# (dotted key, value, how the user wrote it: "--set train.lr=0.1" or "--epochs 5")
Override = tuple[str, Any, str]


def is_key_path(key: str, label: str) -> bool:
    """Whether `key` is a dotted key path (`train.lr`). Its depth is bounded as a YAML
    file's is (a path of thousands of parts would nest as deep): one line naming `label`."""
    parts = key.split(".")
    if len(parts) > MAX_DEPTH:
        raise TinyError(f"{label}: a key path of {len(parts)} parts (at most {MAX_DEPTH})")
    return bool(key) and all(p.isidentifier() for p in parts)


class Refused(yaml.MarkedYAMLError):
    """A YAML document beyond what a config may be: too deep, too big, a key given twice."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class Loader(yaml.SafeLoader):
    """PyYAML's SafeLoader with bounds, checked while composing (before anything is built):
    collections nest at most MAX_DEPTH deep; the document has at most MAX_NODES values with
    every alias expanded (aliases share one node, so a "billion laughs" file composes fast
    and is refused by the count); a mapping gives each key once."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._path: list[str] = []
        self._sizes: dict[int, int] = {}  # id(node) -> values under it, aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:  # its anchor is still open: `&a [*a]`
                raise Refused("an alias refers to a collection that contains it", mark)
            return node
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise Refused(f"nested deeper than {MAX_DEPTH} levels", mark)
            composed: Any = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        node = composed
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        size = 1 + sum(self._sizes[id(c)] for c in children)
        if size > MAX_NODES:
            raise Refused(
                f"more than {MAX_NODES:,} values once aliases are expanded", node.start_mark
            )
        self._sizes[id(node)] = size
        return node

    def compose_mapping_node(self, anchor: Any) -> Any:
        # PyYAML's, with duplicate keys refused and the dotted path kept for the message.
        start = self.get_event()
        tag = start.tag
        if tag is None or tag == "!":
            tag = self.resolve(yaml.MappingNode, None, start.implicit)
        node = yaml.MappingNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        seen: dict[tuple[str, str], int] = {}
        while not self.check_event(yaml.MappingEndEvent):
            key = self.compose_node(node, None)
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                ident = (key.tag, key.value)
                if ident in seen:
                    dotted = ".".join([*self._path, name])
                    raise Refused(
                        f"duplicate key {echo_key(dotted)} (lines {seen[ident]} and {line})",
                        key.start_mark,
                    )
                seen[ident] = line
            self._path.append(name)
            try:
                value = self.compose_node(node, key)
            finally:
                self._path.pop()
            node.value.append((key, value))
        node.end_mark = self.get_event().end_mark
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # 2001-13-45, a 5,000-digit integer, ...
            value = echo(node.value) if isinstance(node, yaml.ScalarNode) else "value"
            raise Refused(
                f"cannot read {value}: {echo(str(exc), 60)[1:-1]}", node.start_mark
            ) from None


def parse_yaml(text: str) -> Any:
    """YAML text -> plain data through `Loader`; every failure is a `yaml.YAMLError`."""
    loader = Loader(text)
    try:
        return loader.get_single_data()
    except RecursionError:  # not reached within MAX_DEPTH; kept as a guarantee
        raise Refused("nested too deeply", None) from None
    finally:
        loader.dispose()


def yaml_value(raw: str, label: str) -> Any:
    """One value typed on the command line: YAML, or the text itself where it is not YAML."""
    if not raw.strip():
        return None
    try:
        return parse_yaml(raw)
    except Refused as exc:
        raise TinyError(f"{label}: {exc.problem}") from None
    except yaml.YAMLError:
        return raw
