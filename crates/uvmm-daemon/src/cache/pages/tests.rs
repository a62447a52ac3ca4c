//! The name order must answer every page exactly as the plain scan does: tables of
//! patterns and changes, and random VM sets and queries.

use super::super::update::tests::*;
use super::super::*;
use std::time::{Instant, SystemTime};
use uvmm_api::{HostOrigin, VmQuery};
use uvmm_libvirt::{DomainSnapshot, DomainStats, HostInfo};
use uvmm_model::domain::Notes;

fn vm(
    uuid: &str,
    name: &str,
    desc: Option<&str>,
    contact: Option<&str>,
    state: VmState,
) -> DomainSnapshot {
    let mut s = snap(uuid, name, state);
    let desc = desc
        .map(|d| format!("<description>{d}</description>"))
        .unwrap_or_default();
    let contact = contact
        .map(|c| {
            format!(
                "<metadata><uvmm:notes xmlns:uvmm='https://univention.de/uvmm/1'>\
                 <uvmm:contact>{c}</uvmm:contact></uvmm:notes></metadata>"
            )
        })
        .unwrap_or_default();
    s.xml = format!(
        "<domain type='test'><name>{name}</name><uuid>{uuid}</uuid>{desc}{contact}</domain>"
    );
    s
}

fn uuid(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn all(_: &HostEntry, _: &str) -> bool {
    true
}

/// Index and scan agree on `q` (with and without a scope); returns the total.
fn agree(c: &Cache, q: &VmQuery) -> usize {
    let scoped = |h: &HostEntry, name: &str| h.id != "b" && !name.starts_with('w');
    for keep in [&all as &dyn Fn(&HostEntry, &str) -> bool, &scoped] {
        let fast = c.list_vms_where(q, keep);
        let scan = c.list_vms_scanned(q, keep);
        match (fast, scan) {
            (Ok(f), Ok(s)) => assert_eq!(f, s, "{q:?}"),
            (f, s) => assert_eq!(format!("{f:?}"), format!("{s:?}"), "{q:?}"),
        }
    }
    // Without a scope (`keep` None: the path of callers who see everything).
    let (fast, scan) = (c.list_vms(q), c.list_vms_scanned(q, &all));
    assert_eq!(format!("{fast:?}"), format!("{scan:?}"), "{q:?}");
    fast.map(|p| p.total).unwrap_or(usize::MAX)
}

/// Every pattern of the table, each sort direction and a few windows.
fn agree_on_table(c: &Cache) {
    let patterns = [
        None,
        Some(""),
        Some("*"),
        Some("web"),
        Some("WEB"),
        Some("*vm-1*"),
        Some("web-??"),
        Some("?"),
        Some("[wd]*"),
        Some("[!w]*"),
        Some("*[0-9]"),
        Some("x["),
        Some("["),
        Some("ärger"),
        Some("ÄRGER"),
        Some("k"),
        Some("istanbul"),
        Some("i̇"),
        Some("jane"),
        Some("*roe"),
        Some("d-"),
        Some("nobody"),
    ];
    for pattern in patterns {
        for sort in [None, Some("name"), Some("-name")] {
            for (offset, limit) in [
                (None, None),
                (Some(0), Some(2)),
                (Some(1), Some(3)),
                (Some(50), Some(5)),
            ] {
                for state in [None, Some("running")] {
                    agree(
                        c,
                        &VmQuery {
                            q: pattern.map(Into::into),
                            sort: sort.map(Into::into),
                            offset,
                            limit,
                            state: state.map(Into::into),
                            ..Default::default()
                        },
                    );
                }
            }
        }
    }
    for name in ["web-01", "nothing"] {
        agree(
            c,
            &VmQuery {
                name: Some(name.into()),
                ..Default::default()
            },
        );
    }
}

fn table_cache() -> Cache {
    let running = VmState::Running;
    let mut c = cache_with(vec![
        vm(&uuid(1), "web-01", Some("front"), Some("Jane Roe"), running),
        vm(&uuid(2), "Web-02", None, None, VmState::Shutoff),
        vm(&uuid(3), "db-01", Some("viel Ärger hier"), None, running),
        vm(
            &uuid(4),
            "\u{212a}elvin",
            None,
            Some("ops"),
            VmState::Paused,
        ),
        vm(&uuid(5), "İstanbul", Some("x[y"), None, running),
        vm(&uuid(6), "web", None, None, running),
        vm(&uuid(7), "WEB", None, None, running),
    ]);
    c.add_host("test:///b.xml", "b", HostOrigin::Runtime, SystemTime::now());
    c.host_synced(
        "test:///b.xml",
        HostInfo::default(),
        None,
        vec![
            vm(&uuid(1), "web-01", Some("copy"), None, VmState::Paused),
            vm(&uuid(8), "vm-10", None, Some("jane"), running),
            vm(&uuid(9), "web", None, None, VmState::Shutoff),
        ],
        SystemTime::now(),
    );
    c
}

#[test]
fn index_and_scan_agree_on_a_table_of_queries() {
    agree_on_table(&table_cache());
    assert_eq!(agree(&Cache::default(), &VmQuery::default()), 0);
}

/// The index is kept between pages: each change must reach the next one.
#[test]
fn index_follows_every_change() {
    let mut c = table_cache();
    let total = |c: &Cache, q: &str| {
        agree(
            c,
            &VmQuery {
                q: Some(q.into()),
                ..Default::default()
            },
        )
    };
    let running = |c: &Cache| {
        agree(
            c,
            &VmQuery {
                state: Some("running".into()),
                ..Default::default()
            },
        )
    };
    assert_eq!(total(&c, "web"), 6);
    assert_eq!(running(&c), 6);
    // A rename.
    c.vm_upsert(URI, vm(&uuid(2), "zeta", None, None, VmState::Shutoff));
    assert_eq!(total(&c, "web"), 5);
    assert_eq!(total(&c, "zeta"), 1);
    // A state change alone keeps the index; the state filter sees it.
    c.vm_upsert(URI, vm(&uuid(2), "zeta", None, None, VmState::Running));
    assert_eq!(running(&c), 7);
    // Statistics: a VM libvirt reports in another state is re-read, its figures change
    // in place.
    let stat = DomainStats {
        uuid: uuid(3),
        balloon_current_kib: Some(4096),
        ..DomainStats::default()
    };
    c.apply_stats(URI, &[stat], None, Instant::now(), false);
    agree_on_table(&c);
    // Notes: a new description, a new contact.
    c.vm_upsert(
        URI,
        vm(&uuid(6), "web", Some("zebra"), None, VmState::Running),
    );
    assert_eq!(total(&c, "zebra"), 1);
    c.vm_upsert(
        URI,
        vm(&uuid(6), "web", None, Some("Zorro"), VmState::Running),
    );
    assert_eq!(total(&c, "zebra"), 0);
    assert_eq!(total(&c, "zorro"), 1);
    // Directory notes over the definition's.
    let note = Notes {
        description: Some("from the directory".into()),
        ..Notes::default()
    };
    c.set_directory_notes(vec![(uuid(7), Some(note))]);
    assert_eq!(total(&c, "directory"), 1);
    c.set_directory_notes(vec![(uuid(7), None)]);
    assert_eq!(total(&c, "directory"), 0);
    // A VM added, a VM removed.
    c.vm_upsert(URI, vm(&uuid(10), "web-new", None, None, VmState::Running));
    assert_eq!(total(&c, "web"), 6);
    c.vm_remove(URI, &uuid(1));
    assert_eq!(total(&c, "web"), 5);
    // Hosts added and removed.
    c.add_host(
        "test:///0.xml",
        "aa",
        HostOrigin::Runtime,
        SystemTime::now(),
    );
    c.host_synced(
        "test:///0.xml",
        HostInfo::default(),
        None,
        vec![vm(&uuid(11), "web-01", None, None, VmState::Running)],
        SystemTime::now(),
    );
    assert_eq!(total(&c, "web"), 6);
    agree_on_table(&c);
    c.remove_host("test:///b.xml");
    assert_eq!(total(&c, "web"), 4);
    agree_on_table(&c);
    // A resync replacing the set.
    c.host_synced(
        URI,
        HostInfo::default(),
        None,
        vec![vm(&uuid(12), "omega", None, None, VmState::Shutoff)],
        SystemTime::now(),
    );
    assert_eq!(total(&c, "web"), 1);
    agree_on_table(&c);
}

/// xorshift64*: enough randomness for test data, and the seed in a failure message
/// replays the case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap_or(1)).unwrap_or(0)
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }

    fn text(&mut self, alphabet: &[&str], max: usize) -> String {
        (0..self.below(max + 1))
            .map(|_| self.pick(alphabet))
            .collect()
    }
}

const LETTERS: &[&str] = &[
    "a", "A", "b", "ä", "Ä", "k", "\u{212a}", "-", "1", "İ", "ß", " ", "σ", "Σ",
];
const GLOB: &[&str] = &["*", "*", "?", "[ab]", "[!a]", "[0-9]", "["];

fn random_host(rng: &mut Rng, next_uuid: &mut usize) -> Vec<DomainSnapshot> {
    let states = [VmState::Running, VmState::Shutoff, VmState::Paused];
    let mut names = std::collections::HashSet::new();
    (0..rng.below(12))
        .filter_map(|_| {
            let name = format!(
                "{}{}",
                rng.pick(&["w", "W", "v", "ä"]),
                rng.text(LETTERS, 5)
            );
            // libvirt keeps names unique per host.
            names.insert(name.clone()).then_some(())?;
            let desc = (rng.below(3) == 0).then(|| rng.text(LETTERS, 6));
            let contact = (rng.below(4) == 0).then(|| rng.text(LETTERS, 4));
            *next_uuid += 1;
            let state = states[rng.below(states.len())];
            Some(vm(
                &uuid(*next_uuid),
                &name,
                desc.as_deref(),
                contact.as_deref(),
                state,
            ))
        })
        .collect()
}

fn random_query(rng: &mut Rng) -> VmQuery {
    let mut alphabet = LETTERS.to_vec();
    alphabet.extend_from_slice(GLOB);
    VmQuery {
        q: (rng.below(5) != 0).then(|| rng.text(&alphabet, 4)),
        sort: [None, Some("name"), Some("-name")][rng.below(3)].map(Into::into),
        offset: (rng.below(2) == 0).then(|| rng.below(8)),
        limit: (rng.below(2) == 0).then(|| rng.below(8)),
        state: [None, Some("running"), Some("paused")][rng.below(3)].map(Into::into),
        ..Default::default()
    }
}

#[test]
fn index_equals_scan_on_random_vm_sets_and_queries() {
    for seed in 1..=60u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut c = Cache::default();
        let mut next_uuid = 0;
        let mut hosts = Vec::new();
        for _ in 0..6 {
            // A change: a host added (or resynchronised), or one removed.
            let h = rng.below(4);
            let uri = format!("test:///h{h}.xml");
            if rng.below(5) == 0 {
                c.remove_host(&uri);
                hosts.retain(|u| *u != uri);
            } else {
                if !hosts.contains(&uri) {
                    c.add_host(
                        &uri,
                        &format!("h{}", rng.below(4) + h * 10),
                        HostOrigin::Runtime,
                        SystemTime::now(),
                    );
                    hosts.push(uri.clone());
                }
                let vms = random_host(&mut rng, &mut next_uuid);
                c.host_synced(&uri, HostInfo::default(), None, vms, SystemTime::now());
            }
            for _ in 0..40 {
                let q = random_query(&mut rng);
                // The query is in the failure message; the seeds replay it.
                agree(&c, &q);
            }
        }
    }
}

/// CPU per page request at 2,500 hosts × 10 VMs (the names and descriptions of
/// bench/scale.sh), the name order against the scan it replaces, in the same run:
/// `cargo test --release -p uvmm-daemon --lib pages_cpu -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark: prints figures"]
fn pages_cpu_at_25000_vms() {
    let (hosts, per_host) = (2500, 10);
    let mut c = Cache::default();
    for h in 0..hosts {
        let uri = format!("test:///scale/host-{h:04}.xml");
        c.add_host(
            &uri,
            &format!("host-{h:04}"),
            HostOrigin::Runtime,
            SystemTime::now(),
        );
        let vms = (0..per_host)
            .map(|v| {
                let n = h * per_host + v;
                let state = [VmState::Shutoff, VmState::Running][v % 2];
                vm(
                    &uuid(n),
                    &format!("vm-{h:04}-{v:02}"),
                    Some(&format!("scale VM {n}")),
                    None,
                    state,
                )
            })
            .collect();
        c.host_synced(&uri, HostInfo::default(), None, vms, SystemTime::now());
    }
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let query = |q: Option<&str>, sort: Option<&str>, state: Option<&str>| VmQuery {
        q: q.map(Into::into),
        sort: sort.map(Into::into),
        state: state.map(Into::into),
        limit: Some(50),
        ..Default::default()
    };
    let t = Instant::now();
    let first = c.list_vms(&query(Some("*vm-1*"), None, None)).unwrap();
    println!(
        "name order built by the first page: {:.1} ms (total {}), load {}",
        t.elapsed().as_secs_f64() * 1e3,
        first.total,
        load().trim()
    );
    let cases = [
        (
            "q=*vm-1*&limit=50 (the scale page)",
            query(Some("*vm-1*"), None, None),
        ),
        (
            "q=*vm-1*&sort=-name&limit=50",
            query(Some("*vm-1*"), Some("-name"), None),
        ),
        (
            "q=vm-2499-0&limit=50 (one host's VMs)",
            query(Some("vm-2499-0"), None, None),
        ),
        ("q=nothing&limit=50", query(Some("nothing"), None, None)),
        (
            "q=*vm-1?-0*&limit=50 (?)",
            query(Some("*vm-1?-0*"), None, None),
        ),
        (
            "q=*[7]*&limit=50 (no literal)",
            query(Some("*[7]*"), None, None),
        ),
        ("state=running&limit=50", query(None, None, Some("running"))),
        ("limit=50", query(None, None, None)),
    ];
    // Percent, as an index into 200 sorted samples.
    let percentile = |xs: &mut Vec<f64>, p: usize| {
        xs.sort_by(f64::total_cmp);
        xs[(xs.len() - 1) * p / 100]
    };
    println!(
        "| query | scan p50 µs | scan p99 µs | index p50 µs | index p99 µs | ratio (p50) | load |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (label, q) in cases {
        let (mut scan, mut index) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            let t = Instant::now();
            let a = c.list_vms_scanned(&q, &all).unwrap();
            scan.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            let b = c.list_vms(&q).unwrap();
            index.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(a, b, "{label}");
        }
        let (s50, i50) = (percentile(&mut scan, 50), percentile(&mut index, 50));
        println!(
            "| {label} | {s50:.0} | {:.0} | {i50:.0} | {:.0} | {:.1}× | {} |",
            percentile(&mut scan, 99),
            percentile(&mut index, 99),
            s50 / i50,
            load().split(' ').next().unwrap_or_default()
        );
    }
}
