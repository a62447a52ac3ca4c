//! Showing changes stored for the next start of a running VM next to the live values:
//! "(next boot: …)" in tables, extra fields in `--json` output.

use crate::table::Table;
use crate::{kib, opt};
use serde_json::Value;
use uvmm_api::{Disk, Nic, Pending};

/// ` (next boot: TEXT)`, or nothing.
pub fn note(text: Option<String>) -> String {
    text.map(|t| format!(" (next boot: {t})"))
        .unwrap_or_default()
}

pub fn memory(p: Option<&Pending>) -> String {
    let Some(p) = p else { return String::new() };
    let text = match (p.memory_kib, p.max_memory_kib) {
        (None, None) => None,
        (cur, max) => Some(
            [cur.map(kib), max.map(|m| format!("max {}", kib(m)))]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
        ),
    };
    note(text)
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

/// How the next start's drive differs from the running one, in words.
fn disk_change(live: &Disk, next: &Disk) -> String {
    let mut parts = Vec::new();
    if live.device != next.device {
        parts.push(format!("device {}", next.device));
    }
    if live.source != next.source {
        parts.push(match &next.source {
            Some(s) => format!("source {s}"),
            None => "empty".into(),
        });
    }
    if live.format != next.format {
        parts.push(format!("format {}", opt(&next.format)));
    }
    if live.bus != next.bus {
        parts.push(format!("bus {}", opt(&next.bus)));
    }
    if live.boot_order != next.boot_order {
        parts.push(format!("boot {}", opt(&next.boot_order)));
    }
    if parts.is_empty() {
        parts.push("changed".into());
    }
    parts.join(", ")
}

/// The drives as a table: the running VM's, with what the next start changes (a column
/// that only appears when it does), then the drives only the next start has.
pub fn disk_table(live: &[Disk], p: Option<&Pending>, indent: &str) -> String {
    let next = p.and_then(|p| p.disks.as_ref());
    let headers: &[&'static str] = match (next.is_some(), indent.is_empty()) {
        (false, true) => &["TARGET", "DEVICE", "BUS", "FORMAT", "SOURCE", "BOOT"],
        (false, false) => &["  TARGET", "DEVICE", "BUS", "FORMAT", "SOURCE", "BOOT"],
        (true, true) => &[
            "TARGET",
            "DEVICE",
            "BUS",
            "FORMAT",
            "SOURCE",
            "BOOT",
            "NEXT BOOT",
        ],
        (true, false) => &[
            "  TARGET",
            "DEVICE",
            "BUS",
            "FORMAT",
            "SOURCE",
            "BOOT",
            "NEXT BOOT",
        ],
    };
    let mut t = Table::new(headers);
    let row = |d: &Disk| {
        vec![
            format!("{indent}{}", d.target),
            d.device.clone(),
            opt(&d.bus),
            opt(&d.format),
            d.source.clone().unwrap_or_else(|| "(empty)".into()),
            opt(&d.boot_order),
        ]
    };
    for d in live {
        let mut cells = row(d);
        if let Some(next) = next {
            cells.push(match next.iter().find(|n| n.target == d.target) {
                None => "removed".into(),
                Some(n) if n == d => String::new(),
                Some(n) => disk_change(d, n),
            });
        }
        t.row(cells);
    }
    for n in next
        .into_iter()
        .flatten()
        .filter(|n| !live.iter().any(|d| d.target == n.target))
    {
        let mut cells = row(n);
        cells.push("added".into());
        t.row(cells);
    }
    t.render()
}

/// `disk list --json`: the running VM's drives as before; when the next start changes
/// them, each gets `next_boot` (`unchanged`, `changed` with `next_boot_disk`, `removed`)
/// and the drives only the next start has follow with `next_boot: added`.
pub fn disks_json(live: &[Disk], p: Option<&Pending>) -> Value {
    let to_value = |d: &Disk| serde_json::to_value(d).unwrap_or(Value::Null);
    let Some(next) = p.and_then(|p| p.disks.as_ref()) else {
        return Value::Array(live.iter().map(to_value).collect());
    };
    let mut out = Vec::new();
    for d in live {
        let mut v = to_value(d);
        let (state, next_disk) = match next.iter().find(|n| n.target == d.target) {
            None => ("removed", None),
            Some(n) if n == d => ("unchanged", None),
            Some(n) => ("changed", Some(to_value(n))),
        };
        if let Some(obj) = v.as_object_mut() {
            obj.insert("next_boot".into(), state.into());
            if let Some(n) = next_disk {
                obj.insert("next_boot_disk".into(), n);
            }
        }
        out.push(v);
    }
    for n in next
        .iter()
        .filter(|n| !live.iter().any(|d| d.target == n.target))
    {
        let mut v = to_value(n);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("next_boot".into(), "added".into());
        }
        out.push(v);
    }
    Value::Array(out)
}

fn nic_key(n: &Nic) -> String {
    n.mac.clone().unwrap_or_default()
}

/// The network interfaces, with what the next start changes.
pub fn nic_table(live: &[Nic], p: Option<&Pending>) -> String {
    let next = p.and_then(|p| p.nics.as_ref());
    let mut t = if next.is_some() {
        Table::new(&["  MAC", "TYPE", "SOURCE", "MODEL", "NEXT BOOT"])
    } else {
        Table::new(&["  MAC", "TYPE", "SOURCE", "MODEL"])
    };
    let row = |n: &Nic| {
        vec![
            format!("  {}", opt(&n.mac)),
            n.kind.clone(),
            opt(&n.source),
            opt(&n.model),
        ]
    };
    let same = |a: &Nic, b: &Nic| {
        a.kind == b.kind
            && a.source == b.source
            && a.model == b.model
            && a.boot_order == b.boot_order
    };
    for n in live {
        let mut cells = row(n);
        if let Some(next) = next {
            cells.push(match next.iter().find(|x| nic_key(x) == nic_key(n)) {
                None => "removed".into(),
                Some(x) if same(x, n) => String::new(),
                Some(x) => format!(
                    "{} {}, model {}, boot {}",
                    x.kind,
                    or_dash(x.source.as_deref().unwrap_or("")),
                    opt(&x.model),
                    opt(&x.boot_order)
                ),
            });
        }
        t.row(cells);
    }
    for x in next
        .into_iter()
        .flatten()
        .filter(|x| !live.iter().any(|n| nic_key(n) == nic_key(x)))
    {
        let mut cells = row(x);
        cells.push("added".into());
        t.row(cells);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cd(target: &str, source: Option<&str>) -> Disk {
        Disk {
            device: "cdrom".into(),
            kind: "file".into(),
            target: target.into(),
            bus: Some("sata".into()),
            source: source.map(str::to_string),
            ..Disk::default()
        }
    }

    #[test]
    fn next_boot_columns_and_json() {
        let live = vec![cd("sda", Some("/iso/a.iso")), cd("sdb", None)];
        assert!(!disk_table(&live, None, "").contains("NEXT BOOT"));
        let mut sda = live[0].clone();
        sda.boot_order = Some(1);
        let p = Pending {
            disks: Some(vec![sda, cd("sdc", None)]),
            ..Pending::default()
        };
        let t = disk_table(&live, Some(&p), "");
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].ends_with("NEXT BOOT"), "{t}");
        assert!(
            lines[1].starts_with("sda") && lines[1].ends_with("boot 1"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("sdb") && lines[2].ends_with("removed"),
            "{t}"
        );
        assert!(
            lines[3].starts_with("sdc") && lines[3].ends_with("added"),
            "{t}"
        );
        let j = disks_json(&live, Some(&p));
        assert_eq!(j[0]["next_boot"], "changed");
        assert_eq!(j[0]["next_boot_disk"]["boot_order"], 1);
        assert_eq!(j[1]["next_boot"], "removed");
        assert_eq!(j[2]["next_boot"], "added");
        assert_eq!(j[2]["target"], "sdc");
        // Without pending drives, the JSON is what it always was.
        assert_eq!(
            disks_json(&live, None),
            serde_json::to_value(&live).unwrap()
        );
        assert_eq!(
            memory(Some(&Pending {
                memory_kib: Some(2 << 20),
                max_memory_kib: Some(2 << 20),
                ..Pending::default()
            })),
            " (next boot: 2 GiB, max 2 GiB)"
        );
        assert_eq!(memory(None), "");
    }
}
