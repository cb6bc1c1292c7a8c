"""The in-memory radio: a zigpy ControllerApplication whose radio keeps its state in memory.

Everything above the radio is zigpy's own: network formation and backups (``form_network``,
``BackupManager``), joins and interviews (``handle_join``, ``Device.initialize``), parsing of every
received frame (``packet_received``) and the request/response matching. Only the radio's methods are
implemented here: the network settings live in memory, :meth:`MemoryRadio.send_packet` records each
packet and hands unicasts to the :class:`~.emulated.EmulatedDevice` at that address, whose answers
come back through ``packet_received`` like frames from a real radio; :meth:`MemoryRadio.inject` feeds
any raw packet in the same way.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Iterable
from typing import Any

import zigpy.application
import zigpy.device
import zigpy.endpoint
import zigpy.exceptions
import zigpy.state
import zigpy.types as t
import zigpy.zdo.types as zdo_t

from gateway.adapters.zigbee.emulated import EmulatedDevice

_LOGGER = logging.getLogger(__name__)

RADIO_IEEE = "00:12:4b:00:00:00:ee:01"
MAX_SENT = 2000
"""Packets remembered in :attr:`MemoryRadio.sent` (older ones are forgotten)."""


class MemoryRadio(zigpy.application.ControllerApplication):
    """A ControllerApplication with an in-memory radio and emulated devices behind it."""

    def __init__(
        self,
        config: dict[str, Any],
        *,
        devices: Iterable[EmulatedDevice] = (),
        radio_ieee: str = RADIO_IEEE,
        response_delay_s: float = 0.0,
    ) -> None:
        super().__init__(config)
        self.radio_ieee = t.EUI64.convert(radio_ieee)
        self.emulated: dict[int, EmulatedDevice] = {}
        """Devices in range, joined or not, by NWK address."""
        self.joined: set[t.EUI64] = set()
        for d in devices:
            self.add_emulated(d)
        self.sent: collections.deque[t.ZigbeePacket] = collections.deque(maxlen=MAX_SENT)
        self.permits: list[int] = []
        """Every permit-join duration the radio was asked for, in order."""
        self.permit_until = 0.0
        self.connected = False
        self.response_delay_s = response_delay_s
        self._stored: tuple[zigpy.state.NetworkInfo, zigpy.state.NodeInfo] | None = None

    # -- test and demo controls -------------------------------------------------------------------

    def add_emulated(self, device: EmulatedDevice) -> None:
        """Put ``device`` in range (it has not joined yet)."""
        self.emulated[int(device.nwk)] = device

    @property
    def permitting(self) -> bool:
        """Whether the network accepts joins now."""
        return asyncio.get_running_loop().time() < self.permit_until

    def join(self, device: EmulatedDevice, *, force: bool = False) -> bool:
        """``device`` asks to join; True when the network let it in (permit-join open, or ``force``)."""
        self.add_emulated(device)
        if not (force or self.permitting or device.ieee in self.joined):
            return False
        self.joined.add(device.ieee)
        # What a radio library does on its join indication (zigpy-znp's ZDO.TCDevInd, bellows' trustCenterJoin).
        self.handle_join(nwk=device.nwk, ieee=device.ieee, parent_nwk=t.NWK(0x0000))
        return True

    def rejoin(self, device: EmulatedDevice, new_nwk: int | None = None) -> None:
        """A joined device comes back (after a power cut), announcing itself, maybe at a new address."""
        if new_nwk is not None:
            self.emulated.pop(int(device.nwk), None)
            device.nwk = t.NWK(new_nwk)
            self.add_emulated(device)
        self.joined.add(device.ieee)
        self.inject(device.announce())

    def leave(self, device: EmulatedDevice) -> None:
        """``device`` leaves the network (its leave indication reaches the radio)."""
        self.joined.discard(device.ieee)
        self.handle_leave(nwk=device.nwk, ieee=device.ieee)

    def inject(self, packet: t.ZigbeePacket) -> None:
        """Feed a received packet to zigpy, as the radio library does for every frame it hears."""
        self.packet_received(packet)

    # -- the radio (zigpy's abstract methods) -----------------------------------------------------

    async def connect(self) -> None:
        """Nothing to open: the radio is in memory."""
        self.connected = True

    async def disconnect(self) -> None:
        """Nothing to close."""
        self.connected = False

    async def start_network(self) -> None:
        """Start the network the radio holds; NetworkNotFormed when it holds none."""
        await self.load_network_info(load_devices=False)
        coordinator = self.add_device(ieee=self.state.node_info.ieee, nwk=self.state.node_info.nwk)
        coordinator.node_desc = zdo_t.NodeDescriptor(
            logical_type=zdo_t.LogicalType.Coordinator,
            complex_descriptor_available=0,
            user_descriptor_available=0,
            reserved=0,
            aps_flags=0,
            frequency_band=zdo_t.NodeDescriptor.FrequencyBand.Freq2400MHz,
            mac_capability_flags=zdo_t.NodeDescriptor.MACCapabilityFlags.AllocateAddress,
            manufacturer_code=0x0000,
            maximum_buffer_size=82,
            maximum_incoming_transfer_size=82,
            server_mask=0,
            maximum_outgoing_transfer_size=82,
            descriptor_capability_field=zdo_t.NodeDescriptor.DescriptorCapability.NONE,
        )
        ep = coordinator.add_endpoint(1)
        ep.status = zigpy.endpoint.Status.ZDO_INIT
        ep.profile_id = 0x0104
        ep.device_type = 0x0400
        coordinator.model = "Roost in-memory radio"
        coordinator.manufacturer = "Roost"

    async def force_remove(self, dev: zigpy.device.Device) -> None:
        """Forget a device at the radio."""
        self.joined.discard(dev.ieee)

    async def add_endpoint(self, descriptor: zdo_t.SimpleDescriptor) -> None:
        """Endpoints of the coordinator need no registration here."""

    async def permit_ncp(self, time_s: int = 60) -> None:
        """Open (or close, with 0) joining at the radio."""
        self.permits.append(time_s)
        self.permit_until = asyncio.get_running_loop().time() + time_s

    async def permit_with_link_key(self, node: t.EUI64, link_key: t.KeyData, time_s: int = 60) -> None:
        """Install-code joining: the same window in memory."""
        await self.permit_ncp(time_s)

    async def write_network_info(
        self, *, network_info: zigpy.state.NetworkInfo, node_info: zigpy.state.NodeInfo
    ) -> None:
        """Keep the network settings (a radio writes them to its NVRAM)."""
        if node_info.ieee == t.EUI64.UNKNOWN:
            node_info = node_info.replace(ieee=self.radio_ieee)
        # As a radio library reads them back from the hardware: typed, so backups serialize right.
        node_info = node_info.replace(nwk=t.NWK(node_info.nwk))
        self._stored = (network_info, node_info)

    async def load_network_info(self, *, load_devices: bool = False) -> None:
        """Read the settings back into ``self.state``; NetworkNotFormed when there are none."""
        if self._stored is None:
            raise zigpy.exceptions.NetworkNotFormed("the in-memory radio holds no network")
        network_info, node_info = self._stored
        self.state.network_info = network_info
        self.state.node_info = node_info

    async def reset_network_info(self) -> None:
        """Leave the network: forget its settings."""
        self._stored = None

    async def energy_scan(self, channels: t.Channels, duration_exp: int, count: int) -> dict[int, float]:
        """A quiet spectrum (every channel at energy 0): zigpy then picks its preferred channel."""
        return dict.fromkeys(channels, 0.0)

    async def send_packet(self, packet: t.ZigbeePacket) -> None:
        """Record ``packet`` and let the emulated device it is addressed to answer."""
        self.sent.append(packet)
        dst = packet.dst
        if dst is None or dst.addr_mode not in (t.AddrMode.NWK, t.AddrMode.IEEE):
            return  # broadcasts and groups: nobody answers in memory
        device = self._emulated_at(dst)
        if device is None or device.ieee not in self.joined:
            if dst.addr_mode == t.AddrMode.NWK and dst.address == self.state.node_info.nwk:
                return  # to ourselves
            raise zigpy.exceptions.DeliveryError(f"no ACK from {dst.address}: the device is not in range", status=0xE9)
        try:
            answers = device.handle(packet)
        except Exception:  # an emulator bug must look like a device that did not answer, and be visible
            _LOGGER.exception("Emulated device %s could not answer %r", device.ieee, packet)
            return
        for answer in answers:
            self._deliver(answer)

    def _emulated_at(self, dst: t.AddrModeAddress) -> EmulatedDevice | None:
        if dst.addr_mode == t.AddrMode.NWK:
            return self.emulated.get(int(dst.address))
        return next((d for d in self.emulated.values() if d.ieee == dst.address), None)

    def _deliver(self, packet: t.ZigbeePacket) -> None:
        loop = asyncio.get_running_loop()
        if self.response_delay_s > 0:
            loop.call_later(self.response_delay_s, self.inject, packet)
        else:
            loop.call_soon(self.inject, packet)
