"""A small JSON Schema draft-04 validator for the runtime-spec schemas in tests.

``jsonschema`` is not a dependency of this project, so the tests carry the subset of
draft-04 that the runtime-spec schema files use, plus the neighbouring keywords a
schema of that style could use (so a schema update fails loudly instead of being
ignored): ``$ref`` (across files: ``defs.json#/definitions/x`` is resolved against the
directory the schemas were loaded from, ``#/...`` against the current file), ``type``,
``enum``, ``properties``, ``patternProperties``, ``additionalProperties``, ``required``,
``items`` (a schema or a list of schemas), ``additionalItems``, ``minItems``,
``maxItems``, ``uniqueItems``, ``minimum``/``maximum`` (with draft-04's boolean
``exclusiveMinimum``/``exclusiveMaximum``), ``minLength``, ``maxLength``, ``pattern``,
``minProperties``, ``maxProperties``, ``allOf``, ``anyOf``, ``oneOf``, ``not``,
``dependencies``. Annotations (``description``, ``$schema``, ``id``, ``title``,
``default``, ``definitions``, ``format``) are ignored; any other keyword raises
``SchemaError`` rather than being silently skipped.

Integers follow draft-04: a JSON number with no fractional part is an ``integer``;
``true``/``false`` are never numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["SchemaError", "SchemaStore", "ValidationError"]

_ANNOTATIONS = frozenset({"description", "$schema", "id", "title", "default",
                          "definitions", "format"})
_MAX_DEPTH = 200


class SchemaError(Exception):
    """The schema itself uses something this validator does not implement."""


class ValidationError(AssertionError):
    """An instance does not match: ``errors`` lists ``(json-path, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("\n".join(f"{p}: {m}" for p, m in errors[:20]))


def _type_ok(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, int | float)
    raise SchemaError(f"unknown type {name!r}")


def _equal(a: Any, b: Any) -> bool:
    """JSON equality (1 == 1.0, but True != 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


class SchemaStore:
    """Schema files of one directory, addressed by bare file name."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.documents: dict[str, Any] = {}
        for path in sorted(directory.glob("*.json")):
            self.documents[path.name] = json.loads(path.read_text())
        self._patterns: dict[str, re.Pattern[str]] = {}

    # -- references -------------------------------------------------------------------

    def _resolve(self, ref: str, current: str) -> tuple[Any, str]:
        file_part, _, pointer = ref.partition("#")
        document_name = file_part or current
        if document_name not in self.documents:
            raise SchemaError(f"$ref {ref!r}: no schema file {document_name!r}")
        node = self.documents[document_name]
        for token in [t for t in pointer.split("/") if t]:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, list):
                node = node[int(token)]
            elif isinstance(node, dict) and token in node:
                node = node[token]
            else:
                raise SchemaError(f"$ref {ref!r}: {token!r} not found")
        return node, document_name

    def _pattern(self, pattern: str) -> re.Pattern[str]:
        compiled = self._patterns.get(pattern)
        if compiled is None:
            compiled = self._patterns[pattern] = re.compile(pattern)
        return compiled

    # -- validation ---------------------------------------------------------------------

    def validate(self, instance: Any, schema_file: str = "config-schema.json") -> None:
        """Raise :class:`ValidationError` unless ``instance`` matches ``schema_file``."""
        errors = list(self.iter_errors(instance, schema_file))
        if errors:
            raise ValidationError(errors)

    def is_valid(self, instance: Any, schema_file: str = "config-schema.json") -> bool:
        return next(iter(self.iter_errors(instance, schema_file)), None) is None

    def iter_errors(self, instance: Any, schema_file: str = "config-schema.json"
                    ) -> Iterator[tuple[str, str]]:
        return self._check(instance, self.documents[schema_file], schema_file, "$", 0)

    def _check(self, value: Any, schema: Any, doc: str, path: str, depth: int
               ) -> Iterator[tuple[str, str]]:
        if depth > _MAX_DEPTH:
            raise SchemaError(f"$ref nesting deeper than {_MAX_DEPTH} at {path}")
        if not isinstance(schema, dict):
            raise SchemaError(f"schema at {path} is not an object")
        if "$ref" in schema:  # draft-04: $ref replaces every sibling keyword
            target, target_doc = self._resolve(schema["$ref"], doc)
            yield from self._check(value, target, target_doc, path, depth + 1)
            return
        for keyword in schema:
            if keyword in _ANNOTATIONS:
                continue
            handler = getattr(self, "_kw_" + keyword, None)
            if handler is None:
                raise SchemaError(f"keyword {keyword!r} is not implemented (at {path})")
            yield from handler(value, schema, doc, path, depth)

    def _sub(self, value: Any, schema: Any, doc: str, path: str, depth: int) -> bool:
        return next(iter(self._check(value, schema, doc, path, depth + 1)), None) is None

    def _kw_type(self, value: Any, schema: dict[str, Any], doc: str, path: str, depth: int
                 ) -> Iterator[tuple[str, str]]:
        types = schema["type"]
        names = [types] if isinstance(types, str) else types
        if not any(_type_ok(value, t) for t in names):
            yield path, f"{json.dumps(value)[:60]} is not of type {types}"

    def _kw_enum(self, value: Any, schema: dict[str, Any], doc: str, path: str, depth: int
                 ) -> Iterator[tuple[str, str]]:
        if not any(_equal(value, option) for option in schema["enum"]):
            yield path, f"{json.dumps(value)[:60]} is not one of {schema['enum']}"

    def _kw_properties(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                       depth: int) -> Iterator[tuple[str, str]]:
        if isinstance(value, dict):
            for name, sub in schema["properties"].items():
                if name in value:
                    yield from self._check(value[name], sub, doc, f"{path}.{name}", depth + 1)

    def _kw_patternProperties(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                              depth: int) -> Iterator[tuple[str, str]]:
        if isinstance(value, dict):
            for pattern, sub in schema["patternProperties"].items():
                for name, item in value.items():
                    if self._pattern(pattern).search(name):
                        yield from self._check(item, sub, doc, f"{path}.{name}", depth + 1)

    def _kw_additionalProperties(self, value: Any, schema: dict[str, Any], doc: str,
                                 path: str, depth: int) -> Iterator[tuple[str, str]]:
        if not isinstance(value, dict):
            return
        extra = [k for k in value if k not in schema.get("properties", {})
                 and not any(self._pattern(p).search(k)
                             for p in schema.get("patternProperties", {}))]
        rule = schema["additionalProperties"]
        if rule is False:
            for name in extra:
                yield f"{path}.{name}", "additional property not allowed"
        elif isinstance(rule, dict):
            for name in extra:
                yield from self._check(value[name], rule, doc, f"{path}.{name}", depth + 1)

    def _kw_required(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                     depth: int) -> Iterator[tuple[str, str]]:
        if isinstance(value, dict):
            for name in schema["required"]:
                if name not in value:
                    yield path, f"required property {name!r} missing"

    def _kw_items(self, value: Any, schema: dict[str, Any], doc: str, path: str, depth: int
                  ) -> Iterator[tuple[str, str]]:
        if not isinstance(value, list):
            return
        items = schema["items"]
        if isinstance(items, list):
            for i, (item, sub) in enumerate(zip(value, items, strict=False)):
                yield from self._check(item, sub, doc, f"{path}[{i}]", depth + 1)
        else:
            for i, item in enumerate(value):
                yield from self._check(item, items, doc, f"{path}[{i}]", depth + 1)

    def _kw_additionalItems(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                            depth: int) -> Iterator[tuple[str, str]]:
        items = schema.get("items")
        if not isinstance(value, list) or not isinstance(items, list):
            return
        rule = schema["additionalItems"]
        for i in range(len(items), len(value)):
            if rule is False:
                yield f"{path}[{i}]", "additional item not allowed"
            elif isinstance(rule, dict):
                yield from self._check(value[i], rule, doc, f"{path}[{i}]", depth + 1)

    def _kw_minItems(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                     depth: int) -> Iterator[tuple[str, str]]:
        if isinstance(value, list) and len(value) < schema["minItems"]:
            yield path, f"fewer than {schema['minItems']} items"

    def _kw_maxItems(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                     depth: int) -> Iterator[tuple[str, str]]:
        if isinstance(value, list) and len(value) > schema["maxItems"]:
            yield path, f"more than {schema['maxItems']} items"

    def _kw_uniqueItems(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                        depth: int) -> Iterator[tuple[str, str]]:
        if schema["uniqueItems"] and isinstance(value, list):
            for i, a in enumerate(value):
                if any(_equal(a, b) for b in value[:i]):
                    yield f"{path}[{i}]", "duplicate item"

    def _kw_minimum(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                    depth: int) -> Iterator[tuple[str, str]]:
        if isinstance(value, int | float) and not isinstance(value, bool):
            bound = schema["minimum"]
            if value < bound or (schema.get("exclusiveMinimum") and value == bound):
                yield path, f"{value} is below the minimum {bound}"

    def _kw_maximum(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                    depth: int) -> Iterator[tuple[str, str]]:
        if isinstance(value, int | float) and not isinstance(value, bool):
            bound = schema["maximum"]
            if value > bound or (schema.get("exclusiveMaximum") and value == bound):
                yield path, f"{value} is above the maximum {bound}"

    def _kw_exclusiveMinimum(self, *args: Any) -> Iterator[tuple[str, str]]:
        return iter(())  # read by _kw_minimum

    def _kw_exclusiveMaximum(self, *args: Any) -> Iterator[tuple[str, str]]:
        return iter(())  # read by _kw_maximum

    def _kw_minLength(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                      depth: int) -> Iterator[tuple[str, str]]:
        if isinstance(value, str) and len(value) < schema["minLength"]:
            yield path, f"shorter than {schema['minLength']}"

    def _kw_maxLength(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                      depth: int) -> Iterator[tuple[str, str]]:
        if isinstance(value, str) and len(value) > schema["maxLength"]:
            yield path, f"longer than {schema['maxLength']}"

    def _kw_pattern(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                    depth: int) -> Iterator[tuple[str, str]]:
        if isinstance(value, str) and not self._pattern(schema["pattern"]).search(value):
            yield path, f"{value!r} does not match {schema['pattern']!r}"

    def _kw_minProperties(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                          depth: int) -> Iterator[tuple[str, str]]:
        if isinstance(value, dict) and len(value) < schema["minProperties"]:
            yield path, f"fewer than {schema['minProperties']} properties"

    def _kw_maxProperties(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                          depth: int) -> Iterator[tuple[str, str]]:
        if isinstance(value, dict) and len(value) > schema["maxProperties"]:
            yield path, f"more than {schema['maxProperties']} properties"

    def _kw_allOf(self, value: Any, schema: dict[str, Any], doc: str, path: str, depth: int
                  ) -> Iterator[tuple[str, str]]:
        for sub in schema["allOf"]:
            yield from self._check(value, sub, doc, path, depth + 1)

    def _kw_anyOf(self, value: Any, schema: dict[str, Any], doc: str, path: str, depth: int
                  ) -> Iterator[tuple[str, str]]:
        if not any(self._sub(value, sub, doc, path, depth) for sub in schema["anyOf"]):
            yield path, "matches none of anyOf"

    def _kw_oneOf(self, value: Any, schema: dict[str, Any], doc: str, path: str, depth: int
                  ) -> Iterator[tuple[str, str]]:
        matches = sum(self._sub(value, sub, doc, path, depth) for sub in schema["oneOf"])
        if matches != 1:
            yield path, f"matches {matches} of oneOf, not exactly one"

    def _kw_not(self, value: Any, schema: dict[str, Any], doc: str, path: str, depth: int
                ) -> Iterator[tuple[str, str]]:
        if self._sub(value, schema["not"], doc, path, depth):
            yield path, "matches a 'not' schema"

    def _kw_dependencies(self, value: Any, schema: dict[str, Any], doc: str, path: str,
                         depth: int) -> Iterator[tuple[str, str]]:
        if not isinstance(value, dict):
            return
        for name, dependency in schema["dependencies"].items():
            if name not in value:
                continue
            if isinstance(dependency, list):
                for other in dependency:
                    if other not in value:
                        yield path, f"{name!r} requires {other!r}"
            else:
                yield from self._check(value, dependency, doc, path, depth + 1)
