"""Read policy packs: from a file, from text, or by the name of a bundled pack.

Bundled packs ship in ``batchjobs/packs/<name>.yaml`` (``default``, ``election-eu``);
every ``--policy`` option accepts either such a name or a path.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import BadConfigError
from pipelines.policy.model import Pack
from pipelines.policy.validate import InvalidPackError, validate

DEFAULT_PACK = "default"


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping (YAML would keep the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (YAML would silently keep only the last one)", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _FastUniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same loader on libyaml's parser where PyYAML has it: the default pack parses in 3 ms
    instead of 60 (an audit parses every pack version it quotes). Its error messages are terser,
    so a pack it refuses is parsed again by :class:`_UniqueKeyLoader` for the message."""


_FastUniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_pack(text: str, *, source: str = "<string>", heads: Sequence[str] | None = None) -> Pack:
    """Parse YAML ``text`` and validate it; ``source`` names the file in messages."""
    try:
        try:
            data = yaml.load(text, Loader=_FastUniqueKeyLoader)
        except yaml.YAMLError:
            data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        kind = "YAML syntax error" if not isinstance(exc, yaml.constructor.ConstructorError) else "YAML error"
        raise InvalidPackError(source, [f"{source}: {where}: {kind}: {problem}"]) from None
    return validate(data, source=source, text=text, heads=heads)


def bundled_packs() -> dict[str, Path]:
    """Name -> path of every pack shipped in ``batchjobs/packs``."""
    root = importlib.resources.files("batchjobs").joinpath("packs")
    out: dict[str, Path] = {}
    for entry in root.iterdir():
        if entry.name.endswith(".yaml"):
            out[entry.name.removesuffix(".yaml")] = Path(str(entry))
    return dict(sorted(out.items()))


def resolve_pack(name_or_path: str | os.PathLike[str]) -> Path:
    """The file a ``--policy`` value names: an existing path, else a bundled pack name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = bundled_packs()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    raise BadConfigError(
        f"policy pack '{name_or_path}' is neither a file nor a bundled pack "
        f"(bundled: {', '.join(bundled) or 'none'}); give a path to a pack YAML file"
    )


def load_pack(source: str | os.PathLike[str], *, heads: Sequence[str] | None = None) -> Pack:
    """Read and validate a pack from a path or a bundled name (``default``, ``election-eu``).

    heads: the scoring model's head names; when given, a policy whose head the model lacks
    is a problem. Raises :class:`~pipelines.errors.BadConfigError` (an
    :class:`InvalidPackError` listing every problem when the pack itself is bad).
    """
    path = resolve_pack(source)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadConfigError(f"policy pack {path}: cannot read it ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPackError(str(path), [f"{path}: (file): not UTF-8 text ({exc.reason})"]) from None
    return parse_pack(text, source=str(path) if Path(source).is_file() else path.name, heads=heads)


def load_default_pack(*, heads: Sequence[str] | None = None) -> Pack:
    """The default pack shipped with the package (``batchjobs/packs/default.yaml``)."""
    return load_pack(DEFAULT_PACK, heads=heads)
