//! `/metrics` in the Prometheus text format (version 0.0.4), rendered from the cache.

use crate::cache::Cache;
use std::fmt::Write;
use uvmm_model::monitor::Level;
use uvmm_model::VmState;

/// Escape a label value: backslash, double quote and newline.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

pub fn render(cache: &Cache) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    f.header("uvmm_up", "uvmmd is running.", "gauge");
    f.sample("uvmm_up", &[], 1.0);

    f.header(
        "uvmm_host_up",
        "Whether the host is connected (1) or not (0).",
        "gauge",
    );
    for h in cache.hosts() {
        f.sample(
            "uvmm_host_up",
            &[("host", &h.id), ("uri", &h.uri)],
            if h.available() { 1.0 } else { 0.0 },
        );
    }

    f.header(
        "uvmm_host_vms",
        "Number of VMs on the host by state.",
        "gauge",
    );
    for h in cache.hosts() {
        for s in VmState::ALL {
            let n = h.vms().values().filter(|v| v.state == s).count();
            f.sample(
                "uvmm_host_vms",
                &[("host", &h.id), ("state", s.as_str())],
                n as f64,
            );
        }
    }

    type VmValue = fn(&crate::cache::VmEntry) -> f64;
    let vm_families: [(&str, &str, VmValue); 3] = [
        (
            "uvmm_vm_cpu_usage_percent",
            "CPU usage of the VM in percent of its vCPUs (smoothed).",
            |v| v.cpu_usage,
        ),
        (
            "uvmm_vm_memory_bytes",
            "Current memory of the VM in bytes.",
            |v| (v.memory_kib * 1024) as f64,
        ),
        ("uvmm_vm_vcpus", "Number of vCPUs of the VM.", |v| {
            v.vcpus as f64
        }),
    ];
    for (name, help, value) in vm_families {
        f.header(name, help, "gauge");
        for h in cache.hosts() {
            for v in h.vms().values() {
                f.sample(
                    name,
                    &[("host", &h.id), ("vm", &v.name), ("uuid", &v.uuid)],
                    value(v),
                );
            }
        }
    }
    f.header(
        "uvmm_vm_state",
        "The VM's state as a label (value 1).",
        "gauge",
    );
    for h in cache.hosts() {
        for v in h.vms().values() {
            f.sample(
                "uvmm_vm_state",
                &[
                    ("host", &h.id),
                    ("vm", &v.name),
                    ("uuid", &v.uuid),
                    ("state", v.state.as_str()),
                ],
                1.0,
            );
        }
    }

    type PoolValue = fn(&crate::cache::PoolEntry) -> f64;
    let pool_families: [(&str, &str, PoolValue); 6] = [
        (
            "uvmm_pool_capacity_bytes",
            "Size of the storage pool in bytes.",
            |p| p.info.capacity as f64,
        ),
        (
            "uvmm_pool_allocation_bytes",
            "Bytes of the pool in use.",
            |p| p.info.allocation as f64,
        ),
        (
            "uvmm_pool_available_bytes",
            "Free bytes of the pool.",
            |p| p.info.available as f64,
        ),
        (
            "uvmm_pool_provisioned_bytes",
            "Sum of the capacities of the pool's volumes (what sparse volumes can grow to).",
            |p| p.provisioned as f64,
        ),
        (
            "uvmm_pool_active",
            "Whether the pool is started (1) or not (0).",
            |p| if p.info.active { 1.0 } else { 0.0 },
        ),
        (
            "uvmm_pool_alert_level",
            "Monitoring verdict: 0 ok, 1 warning, 2 critical.",
            |p| match p.level {
                Level::Ok => 0.0,
                Level::Warning => 1.0,
                Level::Critical => 2.0,
            },
        ),
    ];
    for (name, help, value) in pool_families {
        f.header(name, help, "gauge");
        for h in cache.hosts() {
            for p in &h.pools {
                f.sample(
                    name,
                    &[("host", &h.id), ("pool", &p.info.def.name)],
                    value(p),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_shape() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut c = Cache::default();
        c.add_host(
            "test:///x.xml",
            "x",
            uvmm_api::HostOrigin::Cmdline,
            std::time::SystemTime::now(),
        );
        let text = render(&c);
        assert!(
            text.contains("uvmm_host_up{host=\"x\",uri=\"test:///x.xml\"} 0"),
            "{text}"
        );
        assert!(text.contains("uvmm_host_vms{host=\"x\",state=\"running\"} 0"));
        // Every sample line belongs to a family announced before it.
        let mut announced = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                announced.insert(rest.split_whitespace().next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(announced.contains(name), "{line}");
            }
        }
    }
}
