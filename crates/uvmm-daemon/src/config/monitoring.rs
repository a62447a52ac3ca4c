//! `[monitoring]`: pool thresholds and the pool refresh interval.

use super::{ConfigError, MonitoringFile};
use std::time::Duration;
use uvmm_model::monitor::{Threshold, Thresholds};

/// Pool monitoring: how often pools are read and the thresholds for each.
#[derive(Debug, Clone)]
pub struct Monitoring {
    pub pool_interval: Duration,
    pub default: Thresholds,
    /// (host id or URI, pool name, thresholds)
    pub pools: Vec<(Option<String>, String, Thresholds)>,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            pool_interval: Duration::from_secs(60),
            default: Thresholds::standard(),
            pools: vec![],
        }
    }
}

impl Monitoring {
    /// How often pools are refreshed: when their figures are three quarters of
    /// `pool_interval` old, so a refresh (which takes a moment) lands before they are
    /// older than promised.
    pub fn refresh_period(&self) -> Duration {
        (self.pool_interval * 3 / 4).max(Duration::from_millis(100))
    }

    pub fn for_pool(&self, host_id: &str, uri: &str, pool: &str) -> Thresholds {
        self.pools
            .iter()
            .find(|(h, p, _)| p == pool && h.as_deref().is_none_or(|h| h == host_id || h == uri))
            .map(|(_, _, t)| t.clone())
            .unwrap_or_else(|| self.default.clone())
    }
}

pub(super) fn thresholds(
    list: &Option<Vec<String>>,
    default: &[Threshold],
) -> Result<Vec<Threshold>, ConfigError> {
    match list {
        None => Ok(default.to_vec()),
        Some(l) => l
            .iter()
            .map(|s| Threshold::parse(s).map_err(ConfigError::Invalid))
            .collect(),
    }
}

pub(super) fn ratio(v: Option<f64>, default: Option<f64>) -> Result<Option<f64>, ConfigError> {
    match v {
        None => Ok(default),
        Some(r) if r > 0.0 && r.is_finite() => Ok(Some(r)),
        Some(r) => Err(ConfigError::Invalid(format!(
            "overcommit ratio {r} must be positive"
        ))),
    }
}

pub(super) fn monitoring(m: Option<MonitoringFile>) -> Result<Monitoring, ConfigError> {
    let Some(m) = m else {
        return Ok(Monitoring::default());
    };
    let std = Thresholds::standard();
    let default = Thresholds {
        warning: thresholds(&m.warning, &std.warning)?,
        critical: thresholds(&m.critical, &std.critical)?,
        overcommit_warning: ratio(m.overcommit_warning, std.overcommit_warning)?,
        overcommit_critical: ratio(m.overcommit_critical, std.overcommit_critical)?,
    };
    default
        .check()
        .map_err(|e| ConfigError::Invalid(format!("[monitoring]: {e}")))?;
    let mut pools = Vec::new();
    for p in &m.pools {
        let t = Thresholds {
            warning: thresholds(&p.warning, &default.warning)?,
            critical: thresholds(&p.critical, &default.critical)?,
            overcommit_warning: ratio(p.overcommit_warning, default.overcommit_warning)?,
            overcommit_critical: ratio(p.overcommit_critical, default.overcommit_critical)?,
        };
        t.check()
            .map_err(|e| ConfigError::Invalid(format!("[[monitoring.pools]] {}: {e}", p.name)))?;
        pools.push((p.host.clone(), p.name.clone(), t));
    }
    let pool_interval = match m.pool_interval_secs {
        None => Duration::from_secs(60),
        Some(0) => {
            return Err(ConfigError::Invalid(
                "pool_interval_secs must be at least 1".into(),
            ))
        }
        Some(s) => Duration::from_secs(s),
    };
    Ok(Monitoring {
        pool_interval,
        default,
        pools,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::args;
    use super::super::*;
    use uvmm_model::monitor::Threshold;

    #[test]
    fn monitoring_config() {
        let file: FileConfig = toml::from_str(
            "[monitoring]\npool_interval_secs = 5\nwarning = [\"70%\", \"20GiB:\"]\n[[monitoring.pool]]\nname = \"big\"\nhost = \"kvm1\"\ncritical = [\"95%\"]\n",
        )
        .unwrap();
        let s = merge(args(&[]), file).unwrap();
        let m = &s.monitoring;
        assert_eq!(m.pool_interval, Duration::from_secs(5));
        assert_eq!(
            m.default.warning,
            vec![Threshold::UsedPercent(70.0), Threshold::MinFree(20 << 30)]
        );
        assert_eq!(m.default.critical, vec![Threshold::UsedPercent(90.0)]);
        assert_eq!(
            m.for_pool("kvm1", "qemu:///system", "big").critical,
            vec![Threshold::UsedPercent(95.0)]
        );
        // The override inherits what it does not set; other hosts get the default.
        assert_eq!(m.for_pool("kvm1", "x", "big").warning, m.default.warning);
        assert_eq!(
            m.for_pool("kvm2", "x", "big").critical,
            vec![Threshold::UsedPercent(90.0)]
        );
        for bad in [
            "[monitoring]\nwarning = [\"lots\"]",
            "[monitoring]\novercommit_warning = -1.0",
            "[monitoring]\npool_interval_secs = 0",
            "[monitoring]\ncolour = 1",
            "[monitoring]\nwarning = [\"95%\"]\ncritical = [\"90%\"]",
            "[monitoring]\n[[monitoring.pool]]\nname = \"big\"\nwarning = [\"5GiB:\"]\ncritical = [\"10GiB:\"]",
        ] {
            let parsed = toml::from_str::<FileConfig>(bad);
            assert!(
                parsed.is_err() || merge(args(&[]), parsed.unwrap()).is_err(),
                "{bad}"
            );
        }
    }
}
