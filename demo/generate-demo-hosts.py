#!/usr/bin/env python3
"""Writes the libvirt test-driver node files of the demo hosts (demo/hosts/*.xml).

The files are committed; this script documents how they were made and regenerates them.
UUIDs are derived from host and VM names so that regenerating gives identical files.
"""
import hashlib
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RUNSTATE = {"running": 1, "paused": 3, "shutoff": 5}

HOSTS = {
    "demo-kvm1": {
        "memory_kib": 64 * 1024 * 1024,
        "cpus": (2, 8, 2),  # sockets, cores, threads
        "vms": [
            ("web-01", "running", 2048, 2, "Public web server", "Linux"),
            ("web-02", "running", 2048, 2, "Public web server (standby)", "Linux"),
            ("db-01", "running", 8192, 4, "PostgreSQL primary", "Linux"),
            ("win10-desk", "paused", 4096, 2, "Accounting desktop", "Windows"),
            ("build-old", "shutoff", 1024, 1, "Retired build machine", "Linux"),
        ],
    },
    "demo-kvm2": {
        "memory_kib": 32 * 1024 * 1024,
        "cpus": (1, 8, 2),
        "vms": [
            ("mail-01", "running", 4096, 2, "Mail relay", "Linux"),
            ("winxp-legacy", "shutoff", 512, 1, "Legacy WinXP for the old scanner", "Windows"),
            ("ci-runner", "running", 4096, 4, "CI runner", "Linux"),
            ("web-01", "shutoff", 2048, 2, "Copy of web-01 for tests", "Linux"),
        ],
    },
    "demo-xen1": {
        "memory_kib": 16 * 1024 * 1024,
        "cpus": (1, 4, 2),
        "vms": [
            ("dns-pv", "running", 512, 1, "DNS resolver (Xen PV, pygrub)", "Linux"),
            ("ldap-pv", "running", 1024, 1, "Directory server (Xen PV)", "Linux"),
            ("backup-pv", "shutoff", 1024, 2, "Backup server (Xen PV)", "Linux"),
        ],
    },
}


def uuid_for(*parts):
    h = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return f"{h[0:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def mac_for(*parts):
    h = hashlib.sha256(("mac/" + "/".join(parts)).encode()).hexdigest()
    return "52:54:00:" + ":".join(h[i:i + 2] for i in (0, 2, 4))


def domain(host, name, state, mem_mib, vcpus, desc, os_name, pool_path, index):
    pv = host.startswith("demo-xen")
    uuid = uuid_for(host, name)
    disk_bus, disk_dev = ("xen", "xvda") if pv else ("virtio", "vda")
    if pv:
        os_xml = "    <bootloader>/usr/bin/pygrub</bootloader>\n    <os>\n      <type>xen</type>\n    </os>\n"
    else:
        os_xml = "    <os>\n      <type>hvm</type>\n      <boot dev='hd'/>\n      <boot dev='cdrom'/>\n    </os>\n"
    cdrom = "" if pv else (
        "      <disk type='file' device='cdrom'>\n"
        "        <target dev='sda' bus='sata'/>\n"
        "        <readonly/>\n"
        "      </disk>\n")
    state_xml = ""
    if state != "running":
        state_xml = f"    <test:runstate>{RUNSTATE[state]}</test:runstate>\n"
    return f"""  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>{name}</name>
    <uuid>{uuid}</uuid>
    <description>{desc}</description>
    <metadata>
      <uvmm:notes xmlns:uvmm='https://univention.de/uvmm/1'>
        <uvmm:description>{desc}</uvmm:description>
        <uvmm:contact>admin@example.com</uvmm:contact>
        <uvmm:os>{os_name}</uvmm:os>
      </uvmm:notes>
    </metadata>
    <memory unit='MiB'>{mem_mib}</memory>
    <currentMemory unit='MiB'>{mem_mib}</currentMemory>
    <vcpu>{vcpus}</vcpu>
{os_xml}    <features>
      <acpi/>
      <apic/>
    </features>
    <devices>
      <disk type='file' device='disk'>
        <driver name='qemu' type='qcow2'/>
        <source file='{pool_path}/{name}.qcow2'/>
        <target dev='{disk_dev}' bus='{disk_bus}'/>
      </disk>
{cdrom}      <interface type='network'>
        <mac address='{mac_for(host, name)}'/>
        <source network='default'/>
        <model type='{"netfront" if pv else "virtio"}'/>
      </interface>
      <graphics type='vnc' port='{5900 + index}' autoport='no' listen='127.0.0.1'/>
    </devices>
{state_xml}  </domain>
"""


def node(host, spec):
    pool_path = f"/var/lib/uvmm-demo/{host}/images"
    sockets, cores, threads = spec["cpus"]
    parts = ["<?xml version='1.0'?>\n",
             f"<!-- uvmm demo host {host}: written by demo/generate-demo-hosts.py -->\n",
             "<node>\n"]
    for i, (name, state, mem, vcpus, desc, os_name) in enumerate(spec["vms"]):
        parts.append(domain(host, name, state, mem, vcpus, desc, os_name, pool_path, i))
        bridge = "xenbr0" if host.startswith("demo-xen") else "br0"
    parts.append(f"""  <interface type='bridge' name='{bridge}'>
    <start mode='onboot'/>
    <bridge stp='off'>
      <interface type='ethernet' name='eth0'>
        <mac address='{mac_for(host, "eth0")}'/>
      </interface>
    </bridge>
  </interface>
""")
    parts.append(f"""  <network>
    <name>default</name>
    <uuid>{uuid_for(host, "net-default")}</uuid>
    <bridge name='virbr0'/>
    <forward mode='nat'/>
    <ip address='192.168.122.1' netmask='255.255.255.0'>
      <dhcp>
        <range start='192.168.122.2' end='192.168.122.254'/>
      </dhcp>
    </ip>
  </network>
  <pool type='dir'>
    <name>default</name>
    <uuid>{uuid_for(host, "pool-default")}</uuid>
    <capacity unit='bytes'>107374182400</capacity>
    <allocation unit='bytes'>0</allocation>
    <available unit='bytes'>107374182400</available>
    <target>
      <path>{pool_path}</path>
    </target>
""")
    for name, _state, _mem, _vcpus, _desc, _os in spec["vms"]:
        parts.append(f"""    <volume type='file'>
      <name>{name}.qcow2</name>
      <capacity unit='GiB'>20</capacity>
      <allocation unit='GiB'>3</allocation>
      <target>
        <path>{pool_path}/{name}.qcow2</path>
        <format type='qcow2'/>
      </target>
    </volume>
""")
    parts.append(f"""  </pool>
  <pool type='dir'>
    <name>iso</name>
    <uuid>{uuid_for(host, "pool-iso")}</uuid>
    <capacity unit='bytes'>107374182400</capacity>
    <allocation unit='bytes'>0</allocation>
    <available unit='bytes'>107374182400</available>
    <target>
      <path>/var/lib/uvmm-demo/{host}/iso</path>
    </target>
    <volume type='file'>
      <name>debian-12-netinst.iso</name>
      <capacity unit='MiB'>628</capacity>
      <allocation unit='MiB'>628</allocation>
      <target>
        <path>/var/lib/uvmm-demo/{host}/iso/debian-12-netinst.iso</path>
        <format type='raw'/>
      </target>
    </volume>
  </pool>
  <cpu>
    <mhz>2400</mhz>
    <model>x86_64</model>
    <active>{sockets * cores * threads}</active>
    <nodes>1</nodes>
    <sockets>{sockets}</sockets>
    <cores>{cores}</cores>
    <threads>{threads}</threads>
  </cpu>
  <memory>{spec["memory_kib"]}</memory>
</node>
""")
    return "".join(parts)


if __name__ == "__main__":
    out = os.path.join(HERE, "hosts")
    os.makedirs(out, exist_ok=True)
    for host, spec in HOSTS.items():
        with open(os.path.join(out, f"{host}.xml"), "w") as f:
            f.write(node(host, spec))
    print(f"wrote {len(HOSTS)} demo hosts to {out}")
