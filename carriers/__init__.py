"""Carrier tracking: the normalised model, errors, detection, one subpackage per carrier.

``carriers`` never imports ``notifier``. Adapters are registered here explicitly (no scanning,
no entry points) and imported lazily so pure users of the model do not pull in httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from carriers import errors, model

if TYPE_CHECKING:
    from carriers.base import Carrier

__all__ = ["NAMES", "REGISTRY", "adapter_class", "errors", "model"]

# name -> "module:Class". A fifth carrier is one line here plus its subpackage; the shared
# contract tests (tests/contract/test_registry.py) then run against it automatically.
REGISTRY: dict[str, str] = {
    "ups": "carriers.ups:UpsCarrier",
    "fedex": "carriers.fedex:FedexCarrier",
    "dhl": "carriers.dhl:DhlCarrier",
    "usps": "carriers.usps:UspsCarrier",
}
NAMES: tuple[str, ...] = tuple(REGISTRY)


def adapter_class(name: str) -> type[Carrier]:
    """The adapter class registered for ``name`` (KeyError names the unknown carrier)."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown carrier {name!r} (known: {', '.join(NAMES)})") from None
    module_name, _, class_name = target.partition(":")
    cls: type[Carrier] = getattr(importlib.import_module(module_name), class_name)
    return cls
