"""Emulated Zigbee devices for the in-memory radio: they answer ZDO and ZCL requests with real frames.

An :class:`EmulatedDevice` holds endpoints, clusters and attribute values, and answers what zigpy's
interview and Roost's configuration send it (node, active endpoint and simple descriptors; binds;
read and write attributes; configure reporting; cluster commands with a default response whose status
a test can script). Every answer is serialized with zigpy's own types, so zigpy parses it for real on
the way back in. It also builds the frames a device sends unasked: attribute reports, IAS zone status
change notifications and its device announcement.

:func:`demo_devices` is the set the demo and ``emulate_devices = true`` use: a climate sensor, a door
contact, a motion sensor, a leak sensor, a smart plug with metering and a colour-temperature bulb.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import zigpy.types as t
import zigpy.zdo.types as zdo_t
from zigpy.zcl import Cluster, foundation

from drivers import zcl

ZHA_PROFILE = 0x0104
ZDO_PROFILE = 0x0000
COORDINATOR_NWK = 0x0000

# ZDO request → response cluster ids (the response is the request with bit 15 set).
_NODE_DESC_REQ = zdo_t.ZDOCmd.Node_Desc_req
_SIMPLE_DESC_REQ = zdo_t.ZDOCmd.Simple_Desc_req
_ACTIVE_EP_REQ = zdo_t.ZDOCmd.Active_EP_req
_BIND_REQ = zdo_t.ZDOCmd.Bind_req
_UNBIND_REQ = zdo_t.ZDOCmd.Unbind_req
_LEAVE_REQ = zdo_t.ZDOCmd.Mgmt_Leave_req
_PERMIT_REQ = zdo_t.ZDOCmd.Mgmt_Permit_Joining_req

ATTR_TYPES: dict[tuple[int, int], int] = {
    (0x0000, 0x0004): 0x42,  # manufacturer name, character string
    (0x0000, 0x0005): 0x42,  # model identifier
    (0x0000, 0x0007): 0x30,  # power source
}
"""ZCL data type of each attribute an emulated device may hold (the rest come from zigpy's definitions)."""


@dataclass(slots=True)
class EmulatedEndpoint:
    """One application endpoint of an emulated device."""

    endpoint: int
    device_type: int
    in_clusters: list[int]
    out_clusters: list[int] = field(default_factory=list)
    profile: int = ZHA_PROFILE


def _zcl_type(cluster: int, attribute: int) -> int:
    known = ATTR_TYPES.get((cluster, attribute))
    if known is not None:
        return known
    cls = Cluster._registry.get(cluster)
    if cls is None or attribute not in cls.attributes:
        raise KeyError(f"no ZCL type known for attribute 0x{attribute:04X} of cluster 0x{cluster:04X}")
    zcl_type = cls.attributes[attribute].zcl_type
    if zcl_type is None:
        raise KeyError(f"attribute 0x{attribute:04X} of cluster 0x{cluster:04X} has no fixed ZCL type")
    return int(zcl_type)


def _type_value(cluster: int, attribute: int, value: Any) -> foundation.TypeValue:
    zcl_type = _zcl_type(cluster, attribute)
    python_type = foundation.DataType.from_type_id(zcl_type).python_type
    return foundation.TypeValue(type=zcl_type, value=python_type(value))


def _frame(
    command: int, tsn: int, *, cluster_command: bool = False, manufacturer: int | None = None, client: bool = False
) -> bytes:
    fc = foundation.FrameControl(
        frame_type=foundation.FrameType.CLUSTER_COMMAND if cluster_command else foundation.FrameType.GLOBAL_COMMAND,
        is_manufacturer_specific=manufacturer is not None,
        # a server cluster answers server-to-client; a client cluster (OTA, ...) client-to-server
        direction=foundation.Direction.Client_to_Server if client else foundation.Direction.Server_to_Client,
        disable_default_response=1,
        reserved=0,
    )
    header = foundation.ZCLHeader(frame_control=fc, manufacturer=manufacturer, tsn=tsn, command_id=command)
    return bytes(header.serialize())


class EmulatedDevice:
    """A Zigbee device that lives only in memory and answers like a real one."""

    def __init__(
        self,
        ieee: str,
        nwk: int,
        endpoints: Iterable[EmulatedEndpoint],
        *,
        model: str,
        manufacturer: str,
        attributes: dict[tuple[int, int, int], Any] | None = None,
        end_device: bool = True,
        manufacturer_code: int = 0x1234,
    ) -> None:
        self.ieee = t.EUI64.convert(ieee)
        self.nwk = t.NWK(nwk)
        self.endpoints = {ep.endpoint: ep for ep in endpoints}
        self.model = model
        self.manufacturer = manufacturer
        self.end_device = end_device
        self.manufacturer_code = manufacturer_code
        self.attributes: dict[tuple[int, int, int], Any] = dict(attributes or {})
        """(endpoint, cluster, attribute) → value."""
        for ep in self.endpoints.values():
            if 0x0000 in ep.in_clusters:
                self.attributes.setdefault((ep.endpoint, 0x0000, 0x0004), manufacturer)
                self.attributes.setdefault((ep.endpoint, 0x0000, 0x0005), model)
        self.command_status: dict[tuple[int, int], foundation.Status] = {}
        """(cluster, command id) → the status its default response carries (SUCCESS when absent)."""
        self.report_after_command = True
        """Send an attribute report after a command changed an attribute (as bound, configured devices do)."""
        self.reporting: dict[tuple[int, int, int], tuple[int, int, int]] = {}
        """(endpoint, cluster, attribute) → (min, max, change) as configured by the coordinator."""
        self.bound: set[tuple[int, int]] = set()
        self.requests: list[tuple[int, int]] = []
        """(cluster, command id) of every ZCL request received, in order (bounded)."""
        self.silent = False
        """When true the device answers nothing (out of range, battery dead)."""
        self._tsn = 0
        self._client_reply = False

    @property
    def ieee_str(self) -> str:
        """The IEEE address as a sensor id (``00:12:4b:...``)."""
        return str(self.ieee)

    def next_tsn(self) -> int:
        """The device's own transaction sequence number for frames it sends unasked."""
        self._tsn = (self._tsn + 1) % 256
        return self._tsn

    # -- frames the device sends unasked ---------------------------------------------------------

    def packet(
        self, src_ep: int, cluster: int, data: bytes, *, profile: int = ZHA_PROFILE, dst_ep: int = 1
    ) -> t.ZigbeePacket:
        """A packet from this device to the coordinator."""
        return t.ZigbeePacket(
            src=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=self.nwk),
            src_ep=src_ep,
            dst=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=COORDINATOR_NWK),
            dst_ep=dst_ep,
            tsn=data[0] if profile == ZDO_PROFILE else 0,
            profile_id=profile,
            cluster_id=cluster,
            data=t.SerializableBytes(data),
            lqi=200,
            rssi=-60,
        )

    def report_frame(self, endpoint: int, cluster: int, attributes: Iterable[int]) -> bytes:
        """A Report Attributes frame carrying the current values of ``attributes``."""
        records = [
            foundation.Attribute(attrid=a, value=_type_value(cluster, a, self.attributes[(endpoint, cluster, a)]))
            for a in attributes
        ]
        schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Report_Attributes].schema
        body = schema(attribute_reports=records).serialize()
        return _frame(foundation.GeneralCommand.Report_Attributes, self.next_tsn()) + bytes(body)

    def report(self, endpoint: int, cluster: int, attributes: Iterable[int]) -> t.ZigbeePacket:
        """The packet of :meth:`report_frame`."""
        return self.packet(endpoint, cluster, self.report_frame(endpoint, cluster, attributes))

    def zone_notification(self, endpoint: int, zone_status: int) -> t.ZigbeePacket:
        """An IAS zone status change notification (and the zone status attribute updated)."""
        from zigpy.zcl.clusters.security import IasZone

        self.attributes[(endpoint, zcl.IAS_ZONE, zcl.ZONE_STATUS_ATTR)] = zone_status
        schema = IasZone.ClientCommandDefs.status_change_notification.schema
        body = schema(zone_status=zone_status, extended_status=0, zone_id=1, delay=0).serialize()
        frame = _frame(zcl.STATUS_CHANGE_NOTIFICATION, self.next_tsn(), cluster_command=True) + bytes(body)
        return self.packet(endpoint, zcl.IAS_ZONE, frame)

    def announce(self) -> t.ZigbeePacket:
        """The ZDO Device_annce this device broadcasts when it joins or rejoins."""
        tsn = self.next_tsn()
        schema = zdo_t.CLUSTERS[zdo_t.ZDOCmd.Device_annce][1]
        data = t.uint8_t(tsn).serialize() + t.serialize([self.nwk, self.ieee, t.uint8_t(0x80)], schema)
        return self.packet(0, zdo_t.ZDOCmd.Device_annce, data, profile=ZDO_PROFILE, dst_ep=0)

    # -- answering the coordinator ---------------------------------------------------------------

    def handle(self, packet: t.ZigbeePacket) -> list[t.ZigbeePacket]:
        """The packets this device sends back for ``packet`` (none when it would not answer)."""
        if self.silent:
            return []
        data = bytes(packet.data.serialize())
        if packet.dst_ep == 0 and packet.profile_id == ZDO_PROFILE:
            return self._zdo(int(packet.cluster_id), data)
        src_ep = int(packet.dst_ep or 0)
        if src_ep not in self.endpoints:
            return []
        return self._zcl(src_ep, int(packet.cluster_id), data, int(packet.src_ep or 1))

    def _zdo_rsp(self, request: int, tsn: int, args: list[Any]) -> list[t.ZigbeePacket]:
        rsp = zdo_t.ZDOCmd(request | 0x8000)
        schema = zdo_t.CLUSTERS[rsp][1]
        data = t.uint8_t(tsn).serialize() + t.serialize(args, schema)
        return [self.packet(0, rsp, data, profile=ZDO_PROFILE, dst_ep=0)]

    def node_descriptor(self) -> zdo_t.NodeDescriptor:
        """This device's node descriptor (end device or router, mains or battery)."""
        caps = zdo_t.NodeDescriptor.MACCapabilityFlags.AllocateAddress
        if not self.end_device:
            caps |= (
                zdo_t.NodeDescriptor.MACCapabilityFlags.FullFunctionDevice
                | zdo_t.NodeDescriptor.MACCapabilityFlags.MainsPowered
                | zdo_t.NodeDescriptor.MACCapabilityFlags.RxOnWhenIdle
            )
        return zdo_t.NodeDescriptor(
            logical_type=zdo_t.LogicalType.EndDevice if self.end_device else zdo_t.LogicalType.Router,
            complex_descriptor_available=0,
            user_descriptor_available=0,
            reserved=0,
            aps_flags=0,
            frequency_band=zdo_t.NodeDescriptor.FrequencyBand.Freq2400MHz,
            mac_capability_flags=caps,
            manufacturer_code=self.manufacturer_code,
            maximum_buffer_size=82,
            maximum_incoming_transfer_size=82,
            server_mask=0,
            maximum_outgoing_transfer_size=82,
            descriptor_capability_field=zdo_t.NodeDescriptor.DescriptorCapability.NONE,
        )

    def _zdo(self, cluster: int, data: bytes) -> list[t.ZigbeePacket]:
        if not data:
            return []
        tsn = data[0]
        ok = zdo_t.Status.SUCCESS
        if cluster == _NODE_DESC_REQ:
            return self._zdo_rsp(cluster, tsn, [ok, self.nwk, self.node_descriptor()])
        if cluster == _ACTIVE_EP_REQ:
            return self._zdo_rsp(cluster, tsn, [ok, self.nwk, sorted(self.endpoints)])
        if cluster == _SIMPLE_DESC_REQ:
            (_nwk, ep_id), _ = t.deserialize(data[1:], zdo_t.CLUSTERS[_SIMPLE_DESC_REQ][1])
            ep = self.endpoints.get(int(ep_id))
            if ep is None:
                return self._zdo_rsp(cluster, tsn, [zdo_t.Status.NOT_ACTIVE, self.nwk, None])
            sd = zdo_t.SizePrefixedSimpleDescriptor(
                endpoint=ep.endpoint,
                profile=ep.profile,
                device_type=ep.device_type,
                device_version=1,
                input_clusters=ep.in_clusters,
                output_clusters=ep.out_clusters,
            )
            return self._zdo_rsp(cluster, tsn, [ok, self.nwk, sd])
        if cluster in (_BIND_REQ, _UNBIND_REQ):
            args, _ = t.deserialize(data[1:], zdo_t.CLUSTERS[cluster][1])
            key = (int(args[1]), int(args[2]))
            if cluster == _BIND_REQ:
                self.bound.add(key)
            else:
                self.bound.discard(key)
            return self._zdo_rsp(cluster, tsn, [ok])
        if cluster in (_LEAVE_REQ, _PERMIT_REQ):
            return self._zdo_rsp(cluster, tsn, [ok])
        return []

    def _zcl(self, ep: int, cluster: int, data: bytes, reply_ep: int) -> list[t.ZigbeePacket]:
        try:
            hdr, rest = foundation.ZCLHeader.deserialize(data)
        except ValueError:
            return []
        if len(self.requests) < 10_000:
            self.requests.append((cluster, int(hdr.command_id)))
        endpoint = self.endpoints[ep]
        self._client_reply = cluster not in endpoint.in_clusters and cluster in endpoint.out_clusters
        has_cluster = cluster in endpoint.in_clusters or cluster in endpoint.out_clusters
        if hdr.frame_control.frame_type == foundation.FrameType.CLUSTER_COMMAND:
            return self._cluster_command(ep, cluster, hdr, rest, reply_ep)
        command = int(hdr.command_id)
        if not has_cluster:
            return self._default_rsp(ep, cluster, hdr, foundation.Status.UNSUPPORTED_CLUSTER, reply_ep)
        if command == foundation.GeneralCommand.Read_Attributes:
            ids, _ = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes].schema.deserialize(rest)
            records = []
            for attrid in ids.attribute_ids:
                key = (ep, cluster, int(attrid))
                if key in self.attributes:
                    value = _type_value(cluster, int(attrid), self.attributes[key])
                    records.append(foundation.ReadAttributeRecord(attrid=attrid, status=0, value=value))
                else:
                    records.append(
                        foundation.ReadAttributeRecord(attrid=attrid, status=foundation.Status.UNSUPPORTED_ATTRIBUTE)
                    )
            schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes_rsp].schema
            body = schema(status_records=records).serialize()
            return [
                self.packet(
                    ep, cluster, _frame(0x01, int(hdr.tsn), client=self._client_reply) + bytes(body), dst_ep=reply_ep
                )
            ]
        if command == foundation.GeneralCommand.Write_Attributes:
            req, _ = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Write_Attributes].schema.deserialize(rest)
            for attr in req.attributes:
                self.attributes[(ep, cluster, int(attr.attrid))] = attr.value.value
            schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Write_Attributes_rsp].schema
            body = schema(
                status_records=foundation.WriteAttributesResponse(
                    [foundation.WriteAttributesStatusRecord(status=foundation.Status.SUCCESS)]
                )
            ).serialize()
            return [
                self.packet(
                    ep, cluster, _frame(0x04, int(hdr.tsn), client=self._client_reply) + bytes(body), dst_ep=reply_ep
                )
            ]
        if command == foundation.GeneralCommand.Configure_Reporting:
            req, _ = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Configure_Reporting].schema.deserialize(rest)
            for cfg in req.config_records:
                self.reporting[(ep, cluster, int(cfg.attrid))] = (
                    int(cfg.min_interval),
                    int(cfg.max_interval),
                    int(getattr(cfg, "reportable_change", None) or 0),  # discrete types carry none
                )
            schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Configure_Reporting_rsp].schema
            body = schema(
                status_records=foundation.ConfigureReportingResponse(
                    [foundation.ConfigureReportingResponseRecord(status=foundation.Status.SUCCESS)]
                )
            ).serialize()
            return [
                self.packet(
                    ep, cluster, _frame(0x07, int(hdr.tsn), client=self._client_reply) + bytes(body), dst_ep=reply_ep
                )
            ]
        return self._default_rsp(ep, cluster, hdr, foundation.Status.UNSUP_GENERAL_COMMAND, reply_ep)

    def _default_rsp(
        self, ep: int, cluster: int, hdr: foundation.ZCLHeader, status: foundation.Status, reply_ep: int
    ) -> list[t.ZigbeePacket]:
        if hdr.frame_control.disable_default_response and status == foundation.Status.SUCCESS:
            return []
        schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Default_Response].schema
        body = schema(command_id=hdr.command_id, status=status).serialize()
        frame = _frame(foundation.GeneralCommand.Default_Response, int(hdr.tsn), client=self._client_reply) + bytes(
            body
        )
        return [self.packet(ep, cluster, frame, dst_ep=reply_ep)]

    def _cluster_command(
        self, ep: int, cluster: int, hdr: foundation.ZCLHeader, rest: bytes, reply_ep: int
    ) -> list[t.ZigbeePacket]:
        command = int(hdr.command_id)
        if cluster not in self.endpoints[ep].in_clusters:
            return self._default_rsp(ep, cluster, hdr, foundation.Status.UNSUPPORTED_CLUSTER, reply_ep)
        status = self.command_status.get((cluster, command), foundation.Status.SUCCESS)
        changed: list[int] = []
        if status == foundation.Status.SUCCESS:
            cls = Cluster._registry.get(cluster)
            if cls is None or command not in cls.server_commands:
                status = foundation.Status.UNSUP_CLUSTER_COMMAND
            else:
                args, _ = cls.server_commands[command].schema.deserialize(rest)
                changed = self._apply(ep, cluster, cls.server_commands[command].name, args)
        out = self._default_rsp(ep, cluster, hdr, status, reply_ep)
        if changed and self.report_after_command:
            out.append(self.report(ep, cluster, changed))
        return out

    def _apply(self, ep: int, cluster: int, name: str, args: Any) -> list[int]:
        """A command's effect on the device's attributes; the attributes it changed."""
        attrs = self.attributes
        if cluster == zcl.ON_OFF:
            now = bool(attrs.get((ep, cluster, 0x0000), False))
            new = {"on": True, "off": False, "toggle": not now}.get(name, now)
            attrs[(ep, cluster, 0x0000)] = new
            return [0x0000]
        if cluster == zcl.LEVEL_CONTROL and name in ("move_to_level", "move_to_level_with_on_off"):
            attrs[(ep, cluster, 0x0000)] = int(args.level)
            if name == "move_to_level_with_on_off" and (ep, zcl.ON_OFF, 0x0000) in attrs:
                attrs[(ep, zcl.ON_OFF, 0x0000)] = int(args.level) > 0
            return [0x0000]
        if cluster == zcl.COLOR_CONTROL and name == "move_to_color_temp":
            attrs[(ep, cluster, 0x0007)] = int(args.color_temp_mireds)
            return [0x0007]
        return []


def _ieee(n: int) -> str:
    return ":".join(f"{b:02x}" for b in (0x00, 0x12, 0x4B, 0x00, 0x1C, 0xA1, 0xB2, n))


def demo_devices() -> list[EmulatedDevice]:
    """The emulated devices of ``emulate_devices = true``: one of each kind the adapter reads or drives."""
    climate = EmulatedDevice(
        _ieee(0x01), 0x1A01,
        [EmulatedEndpoint(1, 0x0302, [0x0000, 0x0001, zcl.TEMPERATURE, zcl.HUMIDITY, zcl.PRESSURE], [0x0019])],
        model="ROOST-CLIMATE", manufacturer="Roost Emulated",
        attributes={(1, zcl.TEMPERATURE, 0): 2150, (1, zcl.HUMIDITY, 0): 4520, (1, zcl.PRESSURE, 0): 1013,
                    (1, 0x0001, 0x0020): 30, (1, 0x0001, 0x0021): 190},
    )  # fmt: skip
    door = EmulatedDevice(
        _ieee(0x02), 0x1A02, [EmulatedEndpoint(1, 0x0402, [0x0000, 0x0001, zcl.IAS_ZONE])],
        model="ROOST-DOOR", manufacturer="Roost Emulated",
        attributes={(1, zcl.IAS_ZONE, 0x0000): 0, (1, zcl.IAS_ZONE, 0x0001): 0x0015, (1, zcl.IAS_ZONE, 0x0002): 0,
                    (1, 0x0001, 0x0021): 200},
    )  # fmt: skip
    motion = EmulatedDevice(
        _ieee(0x03), 0x1A03,
        [EmulatedEndpoint(1, 0x0402, [0x0000, zcl.IAS_ZONE, zcl.ILLUMINANCE, zcl.OCCUPANCY])],
        model="ROOST-MOTION", manufacturer="Roost Emulated",
        attributes={(1, zcl.IAS_ZONE, 0x0000): 0, (1, zcl.IAS_ZONE, 0x0001): 0x000D, (1, zcl.IAS_ZONE, 0x0002): 0,
                    (1, zcl.ILLUMINANCE, 0): 20001, (1, zcl.OCCUPANCY, 0): 0},
    )  # fmt: skip
    leak = EmulatedDevice(
        _ieee(0x04), 0x1A04, [EmulatedEndpoint(1, 0x0402, [0x0000, zcl.IAS_ZONE])],
        model="ROOST-LEAK", manufacturer="Roost Emulated",
        attributes={(1, zcl.IAS_ZONE, 0x0000): 0, (1, zcl.IAS_ZONE, 0x0001): 0x002A, (1, zcl.IAS_ZONE, 0x0002): 0},
    )  # fmt: skip
    plug = EmulatedDevice(
        _ieee(0x05), 0x1A05,
        [EmulatedEndpoint(1, 0x0051, [0x0000, zcl.ON_OFF, zcl.ELECTRICAL_MEASUREMENT, zcl.METERING])],
        model="ROOST-PLUG", manufacturer="Roost Emulated", end_device=False,
        attributes={(1, zcl.ON_OFF, 0): True, (1, zcl.ELECTRICAL_MEASUREMENT, 0x0505): 2301,
                    (1, zcl.ELECTRICAL_MEASUREMENT, 0x0508): 512, (1, zcl.ELECTRICAL_MEASUREMENT, 0x050B): 1180,
                    (1, zcl.ELECTRICAL_MEASUREMENT, 0x0600): 1, (1, zcl.ELECTRICAL_MEASUREMENT, 0x0601): 10,
                    (1, zcl.ELECTRICAL_MEASUREMENT, 0x0602): 1, (1, zcl.ELECTRICAL_MEASUREMENT, 0x0603): 1000,
                    (1, zcl.ELECTRICAL_MEASUREMENT, 0x0604): 1, (1, zcl.ELECTRICAL_MEASUREMENT, 0x0605): 10,
                    (1, zcl.METERING, 0x0000): 1234567, (1, zcl.METERING, 0x0400): 118,
                    (1, zcl.METERING, 0x0300): 0, (1, zcl.METERING, 0x0301): 1, (1, zcl.METERING, 0x0302): 1000},
    )  # fmt: skip
    bulb = EmulatedDevice(
        _ieee(0x06), 0x1A06,
        [EmulatedEndpoint(1, 0x010C, [0x0000, zcl.ON_OFF, zcl.LEVEL_CONTROL, zcl.COLOR_CONTROL])],
        model="ROOST-BULB", manufacturer="Roost Emulated", end_device=False,
        attributes={(1, zcl.ON_OFF, 0): False, (1, zcl.LEVEL_CONTROL, 0): 254, (1, zcl.COLOR_CONTROL, 0x0007): 370},
    )  # fmt: skip
    return [climate, door, motion, leak, plug, bulb]


def step(device: EmulatedDevice, n: int) -> list[t.ZigbeePacket]:
    """The frames ``device`` sends on its ``n``-th emulated report tick (values drift so reports differ)."""
    attrs = device.attributes
    out: list[t.ZigbeePacket] = []
    wave = math.sin(n / 5)
    for ep in device.endpoints.values():
        for cluster in ep.in_clusters:
            if cluster == zcl.TEMPERATURE:
                attrs[(ep.endpoint, cluster, 0)] = 2150 + round(150 * wave)
                out.append(device.report(ep.endpoint, cluster, [0]))
            elif cluster == zcl.HUMIDITY:
                attrs[(ep.endpoint, cluster, 0)] = 4520 + round(300 * wave)
                out.append(device.report(ep.endpoint, cluster, [0]))
            elif cluster == zcl.PRESSURE and n % 2 == 0:
                out.append(device.report(ep.endpoint, cluster, [0]))
            elif cluster == zcl.ILLUMINANCE:
                attrs[(ep.endpoint, cluster, 0)] = 20001 + round(2000 * wave)
                out.append(device.report(ep.endpoint, cluster, [0]))
            elif cluster == zcl.IAS_ZONE:
                out.append(device.zone_notification(ep.endpoint, zcl.ZONE_ALARM1 if n % 4 == 1 else 0))
            elif cluster == zcl.ELECTRICAL_MEASUREMENT:
                attrs[(ep.endpoint, cluster, 0x050B)] = 1180 + round(200 * wave)
                out.append(device.report(ep.endpoint, cluster, [0x0505, 0x0508, 0x050B]))
            elif cluster == zcl.METERING:
                attrs[(ep.endpoint, cluster, 0x0000)] = int(attrs.get((ep.endpoint, cluster, 0x0000), 0)) + 3
                out.append(device.report(ep.endpoint, cluster, [0x0000, 0x0400]))
            elif cluster == zcl.ON_OFF and n % 3 == 0:
                out.append(device.report(ep.endpoint, cluster, [0x0000]))
            elif cluster == zcl.POWER_CONFIGURATION and n % 10 == 0:
                wanted = [a for a in (0x0020, 0x0021) if (ep.endpoint, cluster, a) in attrs]
                if wanted:
                    out.append(device.report(ep.endpoint, cluster, wanted))
    return out
