//! Pool monitoring: thresholds on used space, free space and overcommitment, and what they
//! say about a pool. Shared by uvmmd (events, metrics) and check_uvmm (Nagios plugin).

use crate::units::{format_bytes, parse_size};
use serde::{Deserialize, Serialize};

/// How bad a pool's state is, in Nagios order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Ok,
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

/// One threshold: a percentage of used capacity, or a minimum of free bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// Alert when used/capacity reaches this percentage.
    UsedPercent(f64),
    /// Alert when available bytes fall below this (Nagios range `N:`).
    MinFree(u64),
}

impl Threshold {
    /// `80%`, `80`, `20GiB:` (at least 20 GiB free), `10737418240:`.
    pub fn parse(s: &str) -> Result<Threshold, String> {
        let s = s.trim();
        if let Some(free) = s.strip_suffix(':') {
            return parse_size(free)
                .map(Threshold::MinFree)
                .map_err(|e| format!("threshold '{s}': {e}"));
        }
        let n = s.strip_suffix('%').unwrap_or(s);
        match n.parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(Threshold::UsedPercent(p)),
            _ => Err(format!(
                "threshold '{s}': expected a percentage (80%) or a minimum of free space (20GiB:)"
            )),
        }
    }

    fn hit(&self, u: &Usage) -> bool {
        match *self {
            Threshold::UsedPercent(p) => u.capacity > 0 && u.used_percent() >= p,
            Threshold::MinFree(min) => u.available < min,
        }
    }

    /// The threshold as a value for Nagios perfdata of the used bytes.
    pub fn as_used_bytes(&self, capacity: u64) -> u64 {
        match *self {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "perfdata: a percentage (0-100) of a capacity is within 0..=capacity, and a byte off does not matter"
            )]
            Threshold::UsedPercent(p) => (capacity as f64 * p / 100.0) as u64,
            Threshold::MinFree(min) => capacity.saturating_sub(min),
        }
    }
}

/// Thresholds for one pool; unset ones are not checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    pub warning: Vec<Threshold>,
    pub critical: Vec<Threshold>,
    /// Alert when provisioned/capacity exceeds this ratio (sparse images can all grow).
    pub overcommit_warning: Option<f64>,
    pub overcommit_critical: Option<f64>,
}

impl Thresholds {
    /// The daemon's default: warn at 80 %, critical at 90 %, warn at overcommit 1.5.
    pub fn standard() -> Thresholds {
        Thresholds {
            warning: vec![Threshold::UsedPercent(80.0)],
            critical: vec![Threshold::UsedPercent(90.0)],
            overcommit_warning: Some(1.5),
            overcommit_critical: None,
        }
    }

    /// Refuse thresholds that can never order themselves: a warning that comes after the
    /// critical level (`-w 90% -c 80%`) would turn a filling pool CRITICAL without a
    /// WARNING first, which is almost certainly a typing error.
    pub fn check(&self) -> Result<(), String> {
        let percent = |list: &[Threshold]| {
            list.iter().find_map(|t| match *t {
                Threshold::UsedPercent(p) => Some(p),
                Threshold::MinFree(_) => None,
            })
        };
        let free = |list: &[Threshold]| {
            list.iter().find_map(|t| match *t {
                Threshold::MinFree(b) => Some(b),
                Threshold::UsedPercent(_) => None,
            })
        };
        if let (Some(w), Some(c)) = (percent(&self.warning), percent(&self.critical)) {
            if w > c {
                return Err(format!(
                    "the warning threshold {w}% used is above the critical one {c}%"
                ));
            }
        }
        if let (Some(w), Some(c)) = (free(&self.warning), free(&self.critical)) {
            if w < c {
                return Err(format!(
                    "the warning threshold of {} free is below the critical one of {} free",
                    format_bytes(w),
                    format_bytes(c)
                ));
            }
        }
        for r in [self.overcommit_warning, self.overcommit_critical]
            .into_iter()
            .flatten()
        {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!("overcommit ratio {r}: expected a number above 0"));
            }
        }
        if let (Some(w), Some(c)) = (self.overcommit_warning, self.overcommit_critical) {
            if w > c {
                return Err(format!(
                    "the overcommit warning ratio {w} is above the critical one {c}"
                ));
            }
        }
        Ok(())
    }
}

/// The figures of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
    /// Sum of the capacities of its volumes: what sparse volumes can grow to.
    pub provisioned: u64,
}

impl Usage {
    pub fn used_percent(&self) -> f64 {
        if self.capacity == 0 {
            return 0.0;
        }
        self.allocation as f64 * 100.0 / self.capacity as f64
    }

    pub fn overcommit(&self) -> f64 {
        if self.capacity == 0 {
            return 0.0;
        }
        self.provisioned as f64 / self.capacity as f64
    }
}

/// Evaluate a pool: the worst level and the reasons, in words.
pub fn evaluate(u: &Usage, t: &Thresholds) -> (Level, Vec<String>) {
    let mut level = Level::Ok;
    let mut reasons = Vec::new();
    let describe = |th: &Threshold| match *th {
        Threshold::UsedPercent(p) => format!(
            "{:.1}% used ({} of {}), threshold {p}%",
            u.used_percent(),
            format_bytes(u.allocation),
            format_bytes(u.capacity)
        ),
        Threshold::MinFree(min) => format!(
            "{} free, below {}",
            format_bytes(u.available),
            format_bytes(min)
        ),
    };
    if let Some(th) = t.critical.iter().find(|th| th.hit(u)) {
        level = Level::Critical;
        reasons.push(describe(th));
    } else if let Some(th) = t.warning.iter().find(|th| th.hit(u)) {
        level = Level::Warning;
        reasons.push(describe(th));
    }
    let oc = u.overcommit();
    let over = |limit: Option<f64>| limit.is_some_and(|l| u.capacity > 0 && oc > l);
    let oc_level = if over(t.overcommit_critical) {
        Level::Critical
    } else if over(t.overcommit_warning) {
        Level::Warning
    } else {
        Level::Ok
    };
    if oc_level > Level::Ok {
        reasons.push(format!(
            "overcommitted {oc:.2}x: volumes may grow to {} on {}",
            format_bytes(u.provisioned),
            format_bytes(u.capacity)
        ));
        level = level.max(oc_level);
    }
    (level, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn usage(alloc_gib: u64, prov_gib: u64) -> Usage {
        Usage {
            capacity: 100 * GIB,
            allocation: alloc_gib * GIB,
            available: (100 - alloc_gib) * GIB,
            provisioned: prov_gib * GIB,
        }
    }

    #[test]
    fn parse_thresholds() {
        assert_eq!(Threshold::parse("80%"), Ok(Threshold::UsedPercent(80.0)));
        assert_eq!(Threshold::parse("85"), Ok(Threshold::UsedPercent(85.0)));
        assert_eq!(Threshold::parse("20GiB:"), Ok(Threshold::MinFree(20 * GIB)));
        for bad in ["", "120%", "-5", "lots:", "x%"] {
            assert!(Threshold::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn evaluation_table() {
        let std = Thresholds::standard();
        let free = Thresholds {
            warning: vec![Threshold::MinFree(30 * GIB)],
            critical: vec![Threshold::MinFree(10 * GIB)],
            ..Thresholds::default()
        };
        let table: [(Usage, &Thresholds, Level); 8] = [
            (usage(10, 50), &std, Level::Ok),
            (usage(80, 50), &std, Level::Warning),
            (usage(95, 50), &std, Level::Critical),
            (usage(10, 151), &std, Level::Warning),
            (usage(95, 151), &std, Level::Critical),
            (usage(60, 0), &free, Level::Ok),
            (usage(75, 0), &free, Level::Warning),
            (usage(95, 0), &free, Level::Critical),
        ];
        for (u, t, want) in table {
            let (level, reasons) = evaluate(&u, t);
            assert_eq!(level, want, "{u:?}: {reasons:?}");
            assert_eq!(reasons.is_empty(), want == Level::Ok, "{reasons:?}");
        }
        let (_, r) = evaluate(&usage(10, 151), &std);
        assert!(r[0].contains("overcommitted 1.51x"), "{r:?}");
        // An empty or unknown-size pool never alerts on percentages.
        assert_eq!(evaluate(&Usage::default(), &std).0, Level::Ok);
    }

    #[test]
    fn threshold_order_table() {
        let p = Threshold::UsedPercent;
        let f = Threshold::MinFree;
        let t = |w: Vec<Threshold>, c: Vec<Threshold>, ow: Option<f64>, oc: Option<f64>| {
            Thresholds {
                warning: w,
                critical: c,
                overcommit_warning: ow,
                overcommit_critical: oc,
            }
            .check()
        };
        let ok = [
            t(vec![p(80.0)], vec![p(90.0)], None, None),
            t(vec![p(90.0)], vec![p(90.0)], None, None),
            t(vec![f(20 << 30)], vec![f(10 << 30)], None, None),
            t(
                vec![p(80.0), f(5 << 30)],
                vec![p(95.0), f(1 << 30)],
                Some(1.5),
                Some(2.0),
            ),
            t(vec![p(80.0)], vec![], None, Some(2.0)),
            t(vec![], vec![], None, None),
        ];
        for (i, r) in ok.iter().enumerate() {
            assert!(r.is_ok(), "case {i}: {r:?}");
        }
        let bad = [
            (
                t(vec![p(90.0)], vec![p(80.0)], None, None),
                "above the critical",
            ),
            (
                t(vec![f(1 << 30)], vec![f(10 << 30)], None, None),
                "below the critical",
            ),
            (
                t(vec![], vec![], Some(3.0), Some(2.0)),
                "overcommit warning",
            ),
            (t(vec![], vec![], Some(0.0), None), "above 0"),
            (t(vec![], vec![], None, Some(f64::NAN)), "above 0"),
        ];
        for (i, (r, want)) in bad.iter().enumerate() {
            let e = r.as_ref().expect_err(&format!("case {i} must be refused"));
            assert!(e.contains(want), "case {i}: {e}");
        }
    }
}
