"""config/fastdds_large_frames.xml: a Fast DDS profile whose shared-memory segment holds camera frames."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NS = {"f": "http://www.eprosima.com"}


def test_profile_is_default_with_a_large_shm_segment_and_udp():
    tree = ET.parse(ROOT / "config" / "fastdds_large_frames.xml")
    descs = {d.findtext("f:transport_id", namespaces=NS): d for d in tree.iter(f"{{{NS['f']}}}transport_descriptor")}
    kinds = {tid: d.findtext("f:type", namespaces=NS) for tid, d in descs.items()}
    assert sorted(kinds.values()) == ["SHM", "UDPv4"]  # same-host frames by SHM, other hosts still reachable
    shm = next(d for d in descs.values() if d.findtext("f:type", namespaces=NS) == "SHM")
    frame = 640 * 480 * 3
    assert int(shm.findtext("f:maxMessageSize", namespaces=NS)) >= frame
    assert int(shm.findtext("f:segment_size", namespaces=NS)) >= 8 * frame
    (part,) = tree.iter(f"{{{NS['f']}}}participant")
    assert part.get("is_default_profile") == "true"
    used = [t.text for t in part.iter(f"{{{NS['f']}}}transport_id")]
    assert sorted(used) == sorted(descs) and part.findtext("f:rtps/f:useBuiltinTransports", namespaces=NS) == "false"
