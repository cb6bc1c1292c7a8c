"""Radio names → zigpy ControllerApplication classes, imported only when that radio is configured."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from gateway.adapters.zigbee.errors import RadioLibraryMissing

if TYPE_CHECKING:
    from zigpy.application import ControllerApplication

RADIOS: dict[str, tuple[str, str, str]] = {
    # radio: (module, distribution, Roost extra)
    "znp": ("zigpy_znp.zigbee.application", "zigpy-znp", "zigbee-znp"),
    "ezsp": ("bellows.zigbee.application", "bellows", "zigbee-ezsp"),
    "deconz": ("zigpy_deconz.zigbee.application", "zigpy-deconz", "zigbee-deconz"),
    "memory": ("gateway.adapters.zigbee.radio_memory", "zigpy", "zigbee"),
}


def radio_class(radio: str) -> type[ControllerApplication]:
    """The ControllerApplication of ``radio``; RadioLibraryMissing naming the extra when its library is absent."""
    module_name, distribution, extra = RADIOS[radio]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise RadioLibraryMissing(radio, extra, distribution) from exc
    cls: type[ControllerApplication] = module.MemoryRadio if radio == "memory" else module.ControllerApplication
    return cls
