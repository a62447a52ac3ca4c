//! Login attempts per user name and per address, with lockout and exponential back-off.
//!
//! Each key (the user name as typed, lower-cased; the client address, IPv6 by its /64)
//! counts failures. The first `free` failures cost nothing; each one after that locks the
//! key for `lockout_min · 2^(n-1)`, at most `lockout_max`. A key with no failure for
//! `forget_after` starts afresh. A success clears the user's count (not the address's: an
//! attacker with one valid account must not reset the counter of the address they guess
//! from). Unknown user names are counted like known ones, so a lockout says nothing about
//! whether an account exists.
//!
//! Pure: every call takes `now`, so tests run on a virtual clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Failures per user name before the first lockout.
    pub user_free_failures: u32,
    /// Failures per address before the first lockout (higher: several people may share
    /// an address behind NAT).
    pub address_free_failures: u32,
    pub lockout_min: Duration,
    pub lockout_max: Duration,
    pub forget_after: Duration,
    /// Keys remembered per kind; beyond, the stalest are forgotten (bounded memory when
    /// someone sprays random user names).
    pub max_entries: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            user_free_failures: 5,
            address_free_failures: 20,
            lockout_min: Duration::from_secs(2),
            lockout_max: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(15 * 60),
            max_entries: 10_000,
        }
    }
}

/// Which key is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitedBy {
    User,
    Address,
}

/// A refused attempt: try again after `retry_after` (the `Retry-After` header, `429`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins; try again in {} s", retry_after.as_secs().max(1))]
pub struct Limited {
    pub retry_after: Duration,
    pub by: LimitedBy,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug)]
struct Table<K> {
    free: u32,
    entries: HashMap<K, Entry>,
}

impl<K: std::hash::Hash + Eq + Clone> Table<K> {
    fn new(free: u32) -> Self {
        Table {
            free,
            entries: HashMap::new(),
        }
    }

    fn locked(&self, key: &K, now: Instant) -> Option<Duration> {
        let until = self.entries.get(key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    fn fail(&mut self, key: &K, now: Instant, s: &RateLimitSettings) {
        if !self.entries.contains_key(key) && self.entries.len() >= s.max_entries {
            self.forget_stale(now, s);
            if self.entries.len() >= s.max_entries {
                // Still full: forget the entry whose last failure is oldest. A locked key
                // is only forgotten when every other key is younger.
                if let Some(old) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_failure)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&old);
                }
            }
        }
        let e = self.entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        if now.saturating_duration_since(e.last_failure) > s.forget_after {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        if e.failures > self.free {
            let n = (e.failures - self.free - 1).min(30);
            let lock = s
                .lockout_min
                .checked_mul(1u32 << n)
                .unwrap_or(s.lockout_max)
                .min(s.lockout_max);
            e.locked_until = Some(now + lock);
        }
    }

    fn forget_stale(&mut self, now: Instant, s: &RateLimitSettings) {
        self.entries.retain(|_, e| {
            now.saturating_duration_since(e.last_failure) <= s.forget_after
                || e.locked_until.is_some_and(|u| u > now)
        });
    }
}

/// The limiter of one daemon: one table of user names, one of addresses.
#[derive(Debug)]
pub struct LoginLimiter {
    settings: RateLimitSettings,
    users: Table<String>,
    addrs: Table<IpAddr>,
}

/// The key of an address: IPv4 as it is, IPv6 by its /64 (one host usually has a whole
/// /64), an IPv4-mapped IPv6 address as the IPv4 address.
pub fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

fn user_key(user: &str) -> String {
    user.trim().to_lowercase()
}

impl LoginLimiter {
    pub fn new(settings: RateLimitSettings) -> Self {
        LoginLimiter {
            users: Table::new(settings.user_free_failures),
            addrs: Table::new(settings.address_free_failures),
            settings,
        }
    }

    /// Before checking a password: refuse if the user name or the address is locked.
    pub fn check(&self, user: &str, addr: Option<IpAddr>, now: Instant) -> Result<(), Limited> {
        if let Some(a) = addr {
            if let Some(d) = self.addrs.locked(&address_key(a), now) {
                return Err(Limited {
                    retry_after: d,
                    by: LimitedBy::Address,
                });
            }
        }
        match self.users.locked(&user_key(user), now) {
            Some(d) => Err(Limited {
                retry_after: d,
                by: LimitedBy::User,
            }),
            None => Ok(()),
        }
    }

    pub fn record_failure(&mut self, user: &str, addr: Option<IpAddr>, now: Instant) {
        let s = self.settings.clone();
        self.users.fail(&user_key(user), now, &s);
        if let Some(a) = addr {
            self.addrs.fail(&address_key(a), now, &s);
        }
    }

    pub fn record_success(&mut self, user: &str) {
        self.users.entries.remove(&user_key(user));
    }

    /// An administrator's way out of a lockout (e.g. `uvmm login unlock NAME` later).
    pub fn clear_user(&mut self, user: &str) -> bool {
        self.users.entries.remove(&user_key(user)).is_some()
    }

    /// Drop what no longer matters (call now and then; `fail` also does when full).
    pub fn forget_stale(&mut self, now: Instant) {
        let s = self.settings.clone();
        self.users.forget_stale(now, &s);
        self.addrs.forget_stale(now, &s);
    }

    pub fn entries(&self) -> (usize, usize) {
        (self.users.entries.len(), self.addrs.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RateLimitSettings {
        RateLimitSettings {
            user_free_failures: 3,
            address_free_failures: 5,
            lockout_min: Duration::from_secs(2),
            lockout_max: Duration::from_secs(60),
            forget_after: Duration::from_secs(600),
            max_entries: 100,
        }
    }

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)));

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let mut l = LoginLimiter::new(settings());
        let t0 = Instant::now();
        let mut now = t0;
        // (failure number, lock after it in seconds: 0 = not locked)
        let expected = [0, 0, 0, 2, 4, 8, 16, 32, 60, 60];
        for (i, want) in expected.iter().enumerate() {
            assert!(l.check("alice", None, now).is_ok(), "attempt {}", i + 1);
            l.record_failure("alice", None, now);
            match l.check("alice", None, now) {
                Ok(()) => assert_eq!(*want, 0, "failure {}", i + 1),
                Err(e) => {
                    assert_eq!(e.by, LimitedBy::User);
                    assert_eq!(
                        e.retry_after,
                        Duration::from_secs(*want),
                        "failure {}",
                        i + 1
                    );
                    // Still locked a moment before the end, free at the end.
                    assert!(l
                        .check(
                            "alice",
                            None,
                            now + e.retry_after - Duration::from_millis(1)
                        )
                        .is_err());
                    now += e.retry_after;
                }
            }
        }
        // Other users are not affected, and the user name ignores case.
        assert!(l.check("bob", None, now).is_ok());
        l.record_failure("ALICE", None, now);
        assert!(l.check("alice", None, now).is_err());
    }

    #[test]
    fn success_clears_the_user_but_not_the_address() {
        let mut l = LoginLimiter::new(settings());
        let now = Instant::now();
        for i in 0..5 {
            l.record_failure(&format!("u{i}"), A, now);
        }
        assert!(l.check("fresh", A, now).is_ok());
        l.record_failure("mallory", A, now);
        assert_eq!(
            l.check("anyone", A, now).unwrap_err().by,
            LimitedBy::Address
        );
        assert!(l.check("anyone", B, now).is_ok());
        l.record_failure("alice", B, now);
        l.record_failure("alice", B, now);
        l.record_failure("alice", B, now);
        l.record_failure("alice", B, now);
        assert!(l.check("alice", B, now).is_err());
        l.record_success("alice");
        assert!(l.check("alice", None, now).is_ok());
        assert!(l.check("x", A, now).is_err(), "address stays locked");
    }

    #[test]
    fn failures_are_forgotten() {
        let mut l = LoginLimiter::new(settings());
        let t0 = Instant::now();
        for _ in 0..3 {
            l.record_failure("alice", None, t0);
        }
        let later = t0 + Duration::from_secs(601);
        l.record_failure("alice", None, later);
        assert!(l.check("alice", None, later).is_ok(), "count restarted");
        l.forget_stale(later + Duration::from_secs(601));
        assert_eq!(l.entries(), (0, 0));
    }

    #[test]
    fn bounded_memory() {
        let mut l = LoginLimiter::new(settings());
        let t0 = Instant::now();
        for i in 0..1000u32 {
            l.record_failure(
                &format!("spray{i}"),
                None,
                t0 + Duration::from_millis(i.into()),
            );
        }
        assert!(l.entries().0 <= 100);
    }

    #[test]
    fn address_keys() {
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            address_key(v6("2001:db8:1:2:3:4:5:6")),
            v6("2001:db8:1:2::")
        );
        assert_eq!(address_key(v6("::ffff:192.0.2.7")), v6("192.0.2.7"));
        assert_eq!(address_key(v6("192.0.2.7")), v6("192.0.2.7"));
        let mut l = LoginLimiter::new(settings());
        let now = Instant::now();
        for i in 0..6 {
            l.record_failure("x", Some(v6(&format!("2001:db8::{i}"))), now);
        }
        assert!(l.check("y", Some(v6("2001:db8::ffff")), now).is_err());
    }
}
