#!/usr/bin/env python3
"""Compares tideslice-inventory-dump's JSON with the vendors' own tools and fails on any difference.

  compare_inventory.py nvidia DUMP.json SMI_Q.xml TOPO.txt   (nvidia-smi -q -x, nvidia-smi topo -m)
  compare_inventory.py ascend DUMP.json INFO.txt MAP.txt TOPO.txt   (npu-smi info, info -m, info -t topo)

Prints every card side by side (ours | the tool's) and exits 1 on any difference, 2 on input it
cannot read. Formats and the facts behind each comparison: docs/hardware.md.
"""
import json
import re
import sys
import xml.etree.ElementTree as ET

ANSI = re.compile(r"\x1b\[[0-9;]*m")
diffs = []


def check(what, ours, theirs):
    mark = "ok  " if ours == theirs else "DIFF"
    print(f"  {mark} {what:<22} {str(ours):<40} | {theirs}")
    if ours != theirs:
        diffs.append(f"{what}: ours {ours!r}, tool {theirs!r}")


def canonical_bus(bus):
    """'00000000:18:00.0' / '0000:C1:00.0' -> '0000:18:00.0' (sysfs form, as the dump has it)."""
    m = re.fullmatch(r"([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])", bus.strip())
    if not m:
        return bus.strip()
    return "%04x:%02x:%02x.%x" % tuple(int(g, 16) for g in m.groups())


def partition(groups):
    """A set of frozensets: the link domains as groups of card keys, whatever they are named."""
    by = {}
    for key, name in groups.items():
        by.setdefault(name, set()).add(key)
    return sorted(sorted(v) for v in by.values())


class UnionFind:
    def __init__(self, keys):
        self.p = {k: k for k in keys}

    def find(self, k):
        while self.p[k] != k:
            self.p[k] = self.p[self.p[k]]
            k = self.p[k]
        return k

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.p[max(a, b)] = min(a, b)


def topo_matrix(text, row_prefix):
    """Parses an nvidia-smi topo -m / npu-smi info -t topo matrix: the device columns and, per
    device row, its cells by column name (device columns, NICs, "CPU Affinity", ...). Cells are
    separated by tabs or by two or more spaces; ANSI escapes (the header's underline) are dropped."""
    header = None
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"\t+| {2,}", ANSI.sub("", line).strip()) if c.strip() != ""]
        if not cells:
            continue
        if header is None and re.fullmatch(row_prefix + r"\d+", cells[0]):
            header = cells  # the header line has no row label: it starts with the first column
            continue
        if header is not None and re.fullmatch(row_prefix + r"\d+", cells[0]) and cells[0] not in rows:
            rows[cells[0]] = cells[1:]
    if header is None:
        raise ValueError("no matrix header found")
    devices = [h for h in header if re.fullmatch(row_prefix + r"\d+", h)]
    table = {}
    for name, cells in rows.items():
        if len(cells) < len(devices):
            raise ValueError(f"row {name} has {len(cells)} cells for {len(devices)} devices")
        table[name] = dict(zip(header, cells))
    return devices, table


def nvidia(dump, xml_text, topo_text):
    root = ET.fromstring(xml_text)
    gpus = root.findall("gpu")
    cards = [c for c in dump["cards"] if c["index"] >= 0]
    by_bus = {c["pciBusId"]: c for c in cards}
    check("GPU count", len(cards), len(gpus))
    check("driver version", cards[0]["driverVersion"] if cards else "", (root.findtext("driver_version") or "").strip())
    mib = re.compile(r"(\d+)\s*MiB")
    for g in gpus:
        bus = canonical_bus(g.get("id", ""))
        c = by_bus.get(bus)
        print(f"GPU {bus}")
        if c is None:
            check("card at this bus", None, bus)
            continue
        check("uuid", c["uuid"], (g.findtext("uuid") or "").strip())
        total = mib.search(g.findtext("fb_memory_usage/total") or "")
        check("memory total MiB", c["memoryMib"], int(total.group(1)) if total else None)
        cur = (g.findtext("mig_mode/current_mig") or "N/A").strip()
        pend = (g.findtext("mig_mode/pending_mig") or "N/A").strip()
        ours_cur = "Enabled" if c["migEnabled"] else "Disabled"
        after = (not c["migEnabled"]) if c["migResetPending"] else c["migEnabled"]
        ours_pend = "Enabled" if after else "Disabled"
        if cur == "N/A":  # no MIG on this card: ours must say off and nothing pending
            ours_cur = ours_pend = "N/A" if not c["migEnabled"] and not c["migResetPending"] else ours_cur
        check("MIG current", ours_cur, cur)
        check("MIG pending", ours_pend, pend)
    devices, table = topo_matrix(topo_text, "GPU")
    by_index = {c["index"]: c for c in cards}
    nv = dump.get("nvlinks", {})
    uf = UnionFind(list(by_index))
    for name in devices:
        i = int(name[3:])
        c = by_index.get(i)
        row = table.get(name, {})
        print(f"{name} (topo -m)")
        if c is None:
            check("card with this index", None, name)
            continue
        numa = row.get("NUMA Affinity", "N/A")
        check("NUMA node", c["numaNode"], int(numa) if numa.isdigit() else -1)
        cpus = row.get("CPU Affinity", "N/A")
        check("CPU affinity", c["cpuAffinity"], "" if cpus == "N/A" else cpus)
        mine = nv.get(c["uuid"], {"active": 0, "toSwitch": 0, "toPeer": {}})
        for other in devices:
            j = int(other[3:])
            if j == i or j not in by_index:
                continue
            cell = row.get(other, "")
            m = re.fullmatch(r"NV(\d+)", cell)
            theirs = int(m.group(1)) if m else 0
            peer = by_index[j]
            peer_links = nv.get(peer["uuid"], {"toSwitch": 0})
            if mine["toSwitch"] > 0 and peer_links["toSwitch"] > 0:
                ours = mine["active"]  # through the switches: NV<n> = this GPU's active links
            else:
                ours = mine["toPeer"].get(peer["uuid"], 0)
            check(f"NVLinks to GPU{j}", ours, theirs)
            if theirs:
                uf.union(i, j)
    check("link domains", partition({i: c["linkDomain"] for i, c in by_index.items()}),
          partition({i: uf.find(i) for i in by_index}))


HEALTH_OK = {"OK": True, "Warning": True, "Alarm": False, "Critical": False, "UNKNOWN": False}


def ascend(dump, info_text, map_text, topo_text):
    cards = [c for c in dump["cards"] if c["index"] >= 0]
    by_logic = {c["index"]: c for c in cards}
    # npu-smi info -m: NPU ID, Chip ID, Chip Logic ID, Chip Name
    logic_of = {}
    for line in map_text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 4 and cells[0].isdigit() and cells[1].isdigit() and cells[2].isdigit():
            logic_of[(int(cells[0]), int(cells[1]))] = int(cells[2])
    check("chip count", len(cards), len(logic_of))
    # npu-smi info: two rows per chip, split on '|'.
    rows = [[c.strip() for c in l.strip().strip("|").split("|")] for l in info_text.splitlines() if l.startswith("|")]
    chips = []
    i = 0
    while i + 1 < len(rows):
        a, b = rows[i], rows[i + 1]
        first = a[0].split() if a else []
        second = b[0].split() if b else []
        if (len(a) >= 3 and len(first) >= 2 and first[0].isdigit() and not first[1].isdigit() and second
                and second[0].isdigit() and len(b) >= 3 and re.search(r"[0-9A-Fa-f]+:[0-9A-Fa-f]+\.", b[1])):
            chips.append((int(first[0]), first[1], a[1], int(second[0]), b[1], b[2]))
            i += 2
        else:
            i += 1
    for npu, name, health, chip, bus, usage in chips:
        logic = logic_of.get((npu, chip))
        c = by_logic.get(logic)
        print(f"NPU {npu} chip {chip} (logic {logic})")
        if c is None:
            check("card with this logic ID", None, logic)
            continue
        check("model", c["model"], "Ascend" + name)
        check("healthy", c["healthy"], HEALTH_OK.get(health, False))
        check("PCI bus", c["pciBusId"], canonical_bus(bus))
        hbm = re.findall(r"(\d+)\s*/\s*(\d+)", usage)
        check("HBM total MB", c["memoryMib"], int(hbm[-1][1]) if hbm else None)
    devices, table = topo_matrix(topo_text, "NPU")
    uf = UnionFind(list(by_logic))
    for name in devices:
        logic = int(name[3:])
        c = by_logic.get(logic)
        row = table.get(name, {})
        print(f"{name} (info -t topo)")
        if c is None:
            check("card with this logic ID", None, name)
            continue
        cpus = row.get("CPU Affinity", "N/A")
        check("CPU affinity", c["cpuAffinity"], "" if cpus == "N/A" else cpus)
        for other in devices:
            j = int(other[3:])
            if j != logic and j in by_logic and row.get(other, "") in ("HCCS", "HCCS_SW", "SIO", "XLink", "XLink_SW"):
                uf.union(logic, j)
    check("link domains", partition({i: c["linkDomain"] for i, c in by_logic.items()}),
          partition({i: uf.find(i) for i in by_logic}))


def main(argv):
    try:
        if len(argv) == 5 and argv[1] == "nvidia":
            dump = json.load(open(argv[2]))
            nvidia(dump, open(argv[3]).read(), open(argv[4]).read())
        elif len(argv) == 6 and argv[1] == "ascend":
            dump = json.load(open(argv[2]))
            ascend(dump, open(argv[3]).read(), open(argv[4]).read(), open(argv[5]).read())
        else:
            print(__doc__)
            return 2
    except (OSError, ValueError, KeyError, ET.ParseError) as e:
        print(f"compare_inventory: cannot read the inputs: {e}")
        return 2
    if diffs:
        print(f"\n{len(diffs)} difference(s):")
        for d in diffs:
            print("  " + d)
        return 1
    print("\nno differences")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
