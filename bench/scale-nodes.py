#!/usr/bin/env python3
# Node files of the in-process test-driver scenarios (bench/scale.sh, bench/memory.sh):
# DIR/hosts/host-N.xml for HOSTS hosts with VMS domains each, every other one running.
# Usage: scale-nodes.py DIR HOSTS VMS
import os, sys
w, hosts, vms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{w}/hosts")
for h in range(hosts):
    doms = []
    for v in range(vms):
        n = h * vms + v
        u = f"5ca1ab1e-{h:04x}-4000-8000-{n:012x}"
        state = "" if v % 2 == 0 else "<test:runstate>5</test:runstate>"
        doms.append(f"""<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
<name>vm-{h:04}-{v:02}</name><uuid>{u}</uuid><description>scale VM {n}</description>
<memory unit='MiB'>1024</memory><vcpu>1</vcpu><os><type>hvm</type></os>
<devices><disk type='file' device='disk'><source file='/var/lib/scale/{n}.qcow2'/>
<target dev='vda' bus='virtio'/></disk><interface type='network'><mac address='52:54:00:{(n>>16)&255:02x}:{(n>>8)&255:02x}:{n&255:02x}'/>
<source network='default'/></interface></devices>{state}</domain>""")
    with open(f"{w}/hosts/host-{h:04}.xml", "w") as f:
        f.write("<node>" + "".join(doms) + "<cpu><mhz>2400</mhz><active>8</active><nodes>1</nodes><sockets>1</sockets><cores>8</cores><threads>1</threads></cpu><memory>67108864</memory></node>")
