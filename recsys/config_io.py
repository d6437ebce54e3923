"""Config dataclasses as plain JSON-able dicts and back (checkpoints and bundles store them).

A setting retired since a bundle was saved is dropped on load (`RETIRED_FIELDS`), so bundles
trained before it still load; any other unknown key is an error.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from typing import Any, TypeVar

__all__ = ["RETIRED_FIELDS", "config_from_dict", "config_to_dict"]

log = logging.getLogger(__name__)

C = TypeVar("C")

RETIRED_FIELDS: dict[str, dict[str, str]] = {
    "CaseBankConfig": {"top_k": "K is `RecommendConfig.top_k`"},
    "PolicyConfig": {"num_chosen": "m is `RecommendConfig.num_chosen`"},
}
"""{config class name: {retired field: where the setting lives now}}. Both duplicated a
setting of the same bundle's `RecommendConfig` (bundles saved before issue 24 hold them)."""


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A nested plain dict of a config dataclass."""
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild config class `cls` from `config_to_dict` output (unknown keys rejected,
    `RETIRED_FIELDS` dropped)."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    retired = RETIRED_FIELDS.get(cls.__name__, {})
    unknown = set(data) - names - set(retired)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    for name, value in data.items():
        if name in retired:
            log.debug("%s.%s dropped on load: %s", cls.__name__, name, retired[name])
            continue
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            kwargs[name] = config_from_dict(hint, value)
        else:
            kwargs[name] = value
    return cls(**kwargs)
