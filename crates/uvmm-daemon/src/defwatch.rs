//! Definition changes that come without a libvirt event.
//!
//! `virsh setmaxmem --config`, `setvcpus --config` or `attach-disk --config` change a VM's
//! persistent definition and libvirt sends no event for it. libvirt offers nothing cheaper
//! to notice that than the definition itself: no version counter, and the bulk statistics
//! describe the running configuration (for a shut-off VM only memory and vCPUs, not
//! devices). So each host worker compares a hash of every persistent VM's inactive XML
//! with the one it saw last, once per `reconcile_interval`, spread evenly over it: one
//! `virDomainGetXMLDesc` per VM per interval, in small slices, never all at once.
//!
//! This module only keeps the hashes and the schedule; the worker reads the XML and acts.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What a comparison found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The definition is the one seen last.
    Same,
    /// It changed since it was seen last.
    Changed,
    /// Never seen on this connection.
    New,
}

/// The share of the interval a cycle spreads its checks over, so a cycle ends (and the
/// next one can start) before the interval is up even with the worker's coarse wake-ups.
pub const SPREAD: f64 = 0.8;

#[derive(Debug, Default)]
pub struct DefWatch {
    /// Hash of each persistent VM's inactive XML, as last read on this connection.
    known: HashMap<String, u64>,
    /// The baseline of the connection (read by the backup resync) has arrived. Until then
    /// a sweep could only learn hashes, and a change made in between would become the
    /// baseline unnoticed; the resync itself records what changed before it.
    ready: bool,
    /// VMs still to check in this cycle.
    queue: VecDeque<String>,
    cycle_start: Option<Instant>,
    cycle_len: usize,
}

impl DefWatch {
    /// A new connection: nothing is known any more.
    pub fn reset(&mut self) {
        *self = DefWatch::default();
    }

    /// The hashes read right after connecting. What was seen since (events, jobs) is
    /// newer and stays.
    pub fn set_baseline(&mut self, hashes: impl IntoIterator<Item = (String, u64)>) {
        for (uuid, h) in hashes {
            self.known.entry(uuid).or_insert(h);
        }
        self.ready = true;
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Remember `hash` as the definition of `uuid` and say how it compares.
    pub fn observe(&mut self, uuid: &str, hash: u64) -> Seen {
        match self.known.insert(uuid.to_string(), hash) {
            None => Seen::New,
            Some(old) if old == hash => Seen::Same,
            Some(_) => Seen::Changed,
        }
    }

    /// The VM is gone.
    pub fn forget(&mut self, uuid: &str) {
        self.known.remove(uuid);
    }

    /// The VMs to compare now. A cycle takes the persistent VMs (`persistent` is asked once
    /// per cycle) and hands them out evenly over `SPREAD` of `interval`; the next cycle
    /// starts once that share has passed, so each VM is compared about once per interval.
    pub fn due(
        &mut self,
        now: Instant,
        interval: Duration,
        persistent: impl FnOnce() -> Vec<String>,
    ) -> Vec<String> {
        if !self.ready {
            return vec![];
        }
        let spread = interval.mul_f64(SPREAD);
        let start_new = match self.cycle_start {
            None => true,
            Some(t) => self.queue.is_empty() && now >= t + spread,
        };
        if start_new {
            self.queue = persistent().into();
            self.cycle_len = self.queue.len();
            self.cycle_start = Some(now);
        }
        let Some(start) = self.cycle_start else {
            return vec![];
        };
        let share = if spread.is_zero() {
            1.0
        } else {
            (now.saturating_duration_since(start).as_secs_f64() / spread.as_secs_f64()).min(1.0)
        };
        // At least one per call while any are left, so a cycle never stalls.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "share is within 0..=1, so this is within 0..=cycle_len"
        )]
        let target = ((self.cycle_len as f64 * share).ceil() as usize).max(1);
        let done = self.cycle_len - self.queue.len();
        let n = target.saturating_sub(done).min(self.queue.len());
        self.queue.drain(..n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vms(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("vm{i}")).collect()
    }

    #[test]
    fn observations() {
        let mut w = DefWatch::default();
        w.set_baseline([("a".to_string(), 1), ("b".to_string(), 2)]);
        // (uuid, hash, expected)
        let table = [
            ("a", 1, Seen::Same),
            ("a", 3, Seen::Changed),
            ("a", 3, Seen::Same),
            ("c", 9, Seen::New),
            ("c", 9, Seen::Same),
        ];
        for (uuid, h, want) in table {
            assert_eq!(w.observe(uuid, h), want, "{uuid} {h}");
        }
        // A late baseline does not overwrite what was seen since.
        w.set_baseline([("a".to_string(), 1)]);
        assert_eq!(w.observe("a", 3), Seen::Same);
        w.forget("a");
        assert_eq!(w.observe("a", 3), Seen::New);
        w.reset();
        assert!(!w.is_ready());
    }

    #[test]
    fn nothing_is_due_before_the_baseline() {
        let mut w = DefWatch::default();
        let t0 = Instant::now();
        assert!(w.due(t0, Duration::from_secs(60), || vms(10)).is_empty());
    }

    #[test]
    fn checks_are_spread_over_the_interval_and_cover_every_vm() {
        let interval = Duration::from_secs(60);
        // (VMs, seconds between calls) -> every VM once per cycle, no call takes much
        // more than its share.
        for (n, step) in [
            (10usize, 5u64),
            (1000, 5),
            (3, 1),
            (0, 5),
            (10_000, 5),
            (10, 12),
        ] {
            let mut w = DefWatch::default();
            w.set_baseline([]);
            let t0 = Instant::now();
            let mut seen: Vec<String> = Vec::new();
            let mut biggest = 0;
            let (mut t, mut last) = (0, 0);
            // Until the first cycle is complete.
            while seen.len() < n && t <= 60 {
                let got = w.due(t0 + Duration::from_secs(t), interval, || vms(n));
                biggest = biggest.max(got.len());
                seen.extend(got);
                last = t;
                t += step;
            }
            assert_eq!(seen.len(), n, "{n} VMs every {step} s");
            assert!(
                last as f64 <= 60.0 * SPREAD + step as f64,
                "{n}: cycle took {last} s"
            );
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), n, "each VM once");
            // Even slices: one call covers about step/(SPREAD*interval) of the VMs.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a small positive count"
            )]
            let share = (n as f64 * step as f64 / (60.0 * SPREAD)).ceil() as usize + 1;
            assert!(biggest <= share.max(1), "{n}: slice of {biggest} > {share}");
        }
    }

    #[test]
    fn ticks_as_coarse_as_the_free_part_of_the_interval_still_read_each_vm_once_per_interval() {
        // The idle host's tick (`hosts::serve`): (1 - SPREAD) of the interval.
        let interval = Duration::from_secs(60);
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "12 s"
        )]
        let step = (60.0 * (1.0 - SPREAD)).round() as u64;
        let mut w = DefWatch::default();
        w.set_baseline([]);
        let t0 = Instant::now();
        let mut reads = 0;
        for t in (0..600).step_by(usize::try_from(step).unwrap()) {
            reads += w
                .due(t0 + Duration::from_secs(t), interval, || vms(10))
                .len();
        }
        // Ten intervals: each of the 10 VMs about ten times (not once per 72 s).
        assert!((95..=105).contains(&reads), "{reads}");
    }

    #[test]
    fn a_new_cycle_starts_after_the_spread_and_sees_new_vms() {
        let interval = Duration::from_secs(10);
        let mut w = DefWatch::default();
        w.set_baseline([]);
        let t0 = Instant::now();
        assert_eq!(w.due(t0, interval, || vms(2)).len(), 1, "the cycle starts");
        assert_eq!(
            w.due(t0 + interval, interval, || vms(2)).len(),
            1,
            "the rest"
        );
        // Queue empty, but the spread has not passed since the cycle started: nothing.
        assert!(w
            .due(t0 + Duration::from_secs(7), interval, || vms(3))
            .is_empty());
        // A new cycle, with the VM that appeared meanwhile.
        let mut next = w.due(t0 + Duration::from_secs(8), interval, || vms(3));
        next.extend(w.due(t0 + Duration::from_secs(16), interval, || vms(3)));
        assert_eq!(next, vms(3));
    }
}
