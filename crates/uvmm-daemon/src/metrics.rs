//! `/metrics` in the Prometheus text format (version 0.0.4), rendered from the cache.

use crate::cache::Cache;
use std::fmt::Write;
use std::time::SystemTime;
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

/// The directory connection (directory mode only; nothing in standalone mode).
pub fn render_directory(out: &mut String, s: &uvmm_api::DirectoryStatus) {
    if s.mode != "directory" {
        return;
    }
    let mut f = Family { out };
    f.header(
        "uvmm_directory_online",
        "Whether the last directory refresh reached the directory (1) or uvmmd runs degraded on its cache (0).",
        "gauge",
    );
    f.sample(
        "uvmm_directory_online",
        &[],
        if s.online { 1.0 } else { 0.0 },
    );
    f.header(
        "uvmm_directory_pending_writes",
        "Note edits queued while the directory is down.",
        "gauge",
    );
    let pending = u32::try_from(s.pending_writes).unwrap_or(u32::MAX);
    f.sample("uvmm_directory_pending_writes", &[], f64::from(pending));
    if let Some(t) = s.state_time {
        f.header(
            "uvmm_directory_state_timestamp_seconds",
            "Unix time of the directory state in use.",
            "gauge",
        );
        // Unix seconds fit an f64 exactly for hundreds of millions of years.
        #[allow(clippy::cast_precision_loss, reason = "exact below 2^53")]
        f.sample("uvmm_directory_state_timestamp_seconds", &[], t as f64);
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
            f64::from(v.vcpus)
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
    // How current the pool figures are: libvirt reports them as of its last refresh.
    // Only active pools that were refreshed have a time; alert on the age, e.g.
    // `uvmm_pool_figures_age_seconds > uvmm_pool_figures_max_age_seconds`.
    type PoolFigure = fn(&crate::cache::PoolEntry, SystemTime) -> Option<f64>;
    let freshness: [(&str, &str, PoolFigure); 3] = [
        (
            "uvmm_pool_refresh_timestamp_seconds",
            "When libvirt last re-read the pool's storage for these figures (Unix time).",
            |p, _| {
                p.freshness
                    .refreshed_at
                    .filter(|_| p.info.active)
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs_f64().floor())
            },
        ),
        (
            "uvmm_pool_figures_age_seconds",
            "Age of the pool's figures in seconds.",
            |p, now| {
                p.freshness
                    .refreshed_at
                    .filter(|_| p.info.active)
                    .map(|t| now.duration_since(t).unwrap_or_default().as_secs() as f64)
            },
        ),
        (
            "uvmm_pool_figures_max_age_seconds",
            "The age uvmmd refreshes pool figures before (pool_interval_secs).",
            |p, _| p.info.active.then_some(p.max_age.as_secs() as f64),
        ),
    ];
    let now = SystemTime::now();
    for (name, help, value) in freshness {
        f.header(name, help, "gauge");
        for h in cache.hosts() {
            for p in &h.pools {
                if let Some(v) = value(p, now) {
                    f.sample(name, &[("host", &h.id), ("pool", &p.info.def.name)], v);
                }
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
        // A pool refreshed 5 s ago: its figures' age, time and promised maximum.
        let refreshed = SystemTime::now() - std::time::Duration::from_secs(5);
        let pool = uvmm_libvirt::PoolInfo {
            def: uvmm_model::storage::PoolDef {
                name: "p".into(),
                ..Default::default()
            },
            active: true,
            ..Default::default()
        };
        let fresh = crate::cache::PoolFreshness {
            refreshed_at: Some(refreshed),
            error: None,
        };
        c.pools_updated(
            "test:///x.xml",
            vec![(pool, vec![], fresh)],
            std::time::Duration::from_secs(60),
            &|_, _, _| uvmm_model::monitor::Thresholds::standard(),
        );
        let text = render(&c);
        for line in [
            "uvmm_pool_figures_age_seconds{host=\"x\",pool=\"p\"} 5",
            "uvmm_pool_figures_max_age_seconds{host=\"x\",pool=\"p\"} 60",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        let stamp = refreshed
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(text.contains(&format!(
            "uvmm_pool_refresh_timestamp_seconds{{host=\"x\",pool=\"p\"}} {stamp}"
        )));
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
