//! What uvmmd's definition watch costs per VM: one `virDomainGetXMLDesc(INACTIVE|SECURE)`
//! and a hash of the answer, for every persistent VM of a host (docs/performance.md).
//!
//!   cargo run --release -p uvmm-libvirt --example definition_cost -- URI [N] [LIBVIRTD_PID]
//!
//! With N, domains named `defcost-*` are defined first until the host has N persistent
//! domains (and are left there). With the pid of the libvirtd serving URI, its CPU time
//! is measured too. Prints wall time and CPU time per VM, next to `virDomainGetInfo` per
//! VM (the cheapest per-VM call) as a baseline measured in the same run, and the watch as
//! it runs now: per slice one listing of the persistent domains, then one XML read per VM.

use std::sync::Arc;
use std::time::{Duration, Instant};
use uvmm_libvirt::{Connector, LibvirtConnector};

fn cpu_self() -> Duration {
    // SAFETY: an all-zero rusage is a valid value of that plain C struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    // The kernel's times are not negative, and microseconds are below a million.
    let tv = |t: libc::timeval| {
        let micros = u32::try_from(t.tv_usec).unwrap_or(0);
        Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), micros * 1000)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// utime + stime of a process, from /proc (clock ticks of 10 ms).
fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn domain_xml(kind: &str, i: usize) -> String {
    format!(
        "<domain type='{kind}'><name>defcost-{i}</name><memory unit='MiB'>128</memory>\
         <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><features><acpi/><apic/></features>\
         <devices><disk type='file' device='disk'><source file='/var/lib/defcost/{i}.img'/>\
         <target dev='vda' bus='virtio'/></disk><interface type='network'>\
         <source network='default'/><model type='virtio'/></interface>\
         <graphics type='vnc' autoport='yes'/></devices></domain>"
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let uri = args
        .get(1)
        .expect("usage: definition_cost URI [N] [LIBVIRTD_PID]");
    let want: Option<usize> = args.get(2).and_then(|n| n.parse().ok());
    let daemon: Option<u32> = args.get(3).and_then(|p| p.parse().ok());
    let hv = LibvirtConnector::default()
        .connect(uri, Arc::new(|_| {}))
        .expect("connect");
    let kind = if uri.starts_with("test") {
        "test"
    } else {
        "qemu"
    };
    let mut persistent: Vec<String> = hv
        .list_domains()
        .expect("list")
        .into_iter()
        .filter(|d| d.persistent)
        .map(|d| d.uuid)
        .collect();
    if let Some(n) = want {
        let mut i = 0;
        while persistent.len() < n {
            match hv.define(&domain_xml(kind, i)) {
                Ok(uuid) => persistent.push(uuid),
                Err(e) if e.kind == uvmm_libvirt::ErrorKind::Exists => {}
                Err(e) => panic!("define: {e}"),
            }
            i += 1;
        }
    }
    let n = persistent.len();
    println!("{uri}: {n} persistent domains");

    // The baseline: virDomainGetInfo on domain handles looked up beforehand, the
    // cheapest per-VM round trip. The watch itself calls what uvmmd calls.
    let conn = virt::connect::Connect::open(Some(uri)).expect("connect for the baseline");
    let handles: Vec<virt::domain::Domain> = persistent
        .iter()
        .map(|u| conn.lookup_domain_by_uuid_string(u).expect("lookup"))
        .collect();
    type Call<'a> = Box<dyn Fn(usize) -> usize + 'a>;
    let calls: [(&str, Call); 2] = [
        (
            "virDomainGetInfo (baseline)",
            Box::new(|i: usize| {
                std::hint::black_box(handles[i].info().expect("info"));
                0
            }),
        ),
        (
            "definition check: lookup + GetXMLDesc(INACTIVE|SECURE) + hash",
            Box::new(|i: usize| {
                let xml = hv.domain_xml(&persistent[i], true, true).expect("xml");
                std::hint::black_box(fnv(&xml));
                xml.len()
            }),
        ),
    ];
    // What the watch does since: per slice (a twelfth of the VMs, one 5-s tick of a
    // 60-s interval), one listing of the persistent domains and one XML read per VM.
    {
        let slice = n.div_ceil(12).max(1);
        let (c0, d0, t0) = (cpu_self(), daemon.and_then(cpu_of), Instant::now());
        let mut bytes = 0;
        for _ in 0..3 {
            for chunk in persistent.chunks(slice) {
                for (_, xml) in hv.persistent_definitions(chunk).expect("definitions") {
                    std::hint::black_box(fnv(&xml));
                    bytes += xml.len();
                }
            }
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / (3 * n.max(1)) as f64;
        let server = match (d0, daemon.and_then(cpu_of)) {
            (Some(a), Some(b)) => format!(", libvirtd CPU {:.0} us", per(b - a)),
            _ => String::new(),
        };
        println!(
            "definition check in slices of {slice}: listing + GetXMLDesc + hash: {:.0} us wall, \
             client CPU {:.0} us{server} per VM ({} bytes/VM)",
            per(t0.elapsed()),
            per(cpu_self() - c0),
            bytes / (3 * n.max(1))
        );
    }
    for (what, call) in &calls {
        let (c0, d0, t0) = (cpu_self(), daemon.and_then(cpu_of), Instant::now());
        let mut bytes = 0;
        for _ in 0..3 {
            for i in 0..n {
                bytes += call(i);
            }
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / (3 * n.max(1)) as f64;
        let wall = per(t0.elapsed());
        let cpu = per(cpu_self() - c0);
        let server = match (d0, daemon.and_then(cpu_of)) {
            (Some(a), Some(b)) => format!(", libvirtd CPU {:.0} us", per(b - a)),
            _ => String::new(),
        };
        println!(
            "{what}: {wall:.0} us wall, client CPU {cpu:.0} us{server} per VM ({} bytes/VM)",
            bytes / (3 * n.max(1))
        );
    }
}
