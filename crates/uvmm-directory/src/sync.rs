//! Following changes of one kind of entry (hosts, profiles, notes or groups).
//!
//! Each kind is a [`RawSet`]: its entries keyed by `entryUUID`, plus the syncrepl cookie of
//! the last refresh. Two ways to bring it up to date:
//! - **sync** (the server offers RFC 4533 content synchronisation, e.g. OpenLDAP with
//!   `syncprov`): a refreshOnly search with the cookie; the server sends only what changed
//!   and says what was deleted (delete phase) or what is still there (present phase).
//! - **poll**: list every entry's `entryUUID` and `entryCSN` (or `modifyTimestamp`), read
//!   in full only the entries whose stamp changed, drop the ones no longer listed.
//!
//! Both keep the same key (the `entryUUID` without dashes is the hex of the 16-byte sync
//! UUID), so a cached set can be refreshed either way.

use crate::ber::{
    entry_from_tag, hex, parse_sync_done, parse_sync_info, parse_sync_state, sync_request_control,
    unhex, SyncInfo, SyncStateKind, SYNC_DONE_OID, SYNC_STATE_OID,
};
use crate::conn::{result_error, search};
use crate::error::{Error, Result};
use crate::model::{norm_dn, RawEntry};
use ldap3::{Ldap, LdapResult, ResultEntry, Scope};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Result code of RFC 4533's e-syncRefreshRequired: the cookie is too old, start over.
const SYNC_REFRESH_REQUIRED: u32 = 4096;
/// noSuchObject: the search base does not exist (e.g. no profiles container yet).
const NO_SUCH_OBJECT: u32 = 32;
/// sizeLimitExceeded.
const SIZE_LIMIT_EXCEEDED: u32 = 4;
/// Above this many changed entries, polling reads the whole set in one search instead of
/// one base search per entry.
const POLL_FETCH_ONE_BY_ONE: usize = 16;

const STAMP_ATTRS: [&str; 3] = ["entryUUID", "entryCSN", "modifyTimestamp"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawSet {
    pub entries: BTreeMap<String, RawEntry>,
    /// Hex of the syncrepl cookie, when the last refresh was a sync refresh.
    pub cookie: Option<String>,
}

/// Which entries make up one kind.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub kind: &'static str,
    pub base: String,
    pub filter: String,
    pub attrs: Vec<String>,
}

impl Query {
    fn all_attrs(&self) -> Vec<&str> {
        let mut a: Vec<&str> = self.attrs.iter().map(String::as_str).collect();
        a.extend(STAMP_ATTRS);
        a
    }
}

/// The key of an entry: its `entryUUID` as hex, or its DN when the server has no
/// `entryUUID`.
pub(crate) fn entry_key(e: &RawEntry) -> String {
    match e.first("entryUUID") {
        Some(u) => u.replace('-', "").to_ascii_lowercase(),
        None => format!("dn:{}", norm_dn(&e.dn)),
    }
}

fn protocol(kind: &str, m: String) -> Error {
    Error::Protocol(format!("{kind}: {m}"))
}

fn entries_only(kind: &str, items: Vec<ResultEntry>) -> Result<Vec<RawEntry>> {
    items
        .into_iter()
        .filter(|r| !r.is_ref() && !r.is_intermediate())
        .map(|r| entry_from_tag(r.0).map_err(|m| protocol(kind, m)))
        .collect()
}

fn check(op: &str, res: &LdapResult) -> Result<bool> {
    match res.rc {
        0 => Ok(true),
        NO_SUCH_OBJECT => Ok(false),
        // A cut-off result would look like deletions; say what to change instead.
        SIZE_LIMIT_EXCEEDED => Err(Error::Result {
            op: op.to_string(),
            rc: res.rc,
            message: "the server's size limit cut the result short; let uvmm's bind DN read \
                      every entry (slapd: limits dn.exact=\"<bind DN>\" size=unlimited)"
                .into(),
        }),
        _ => Err(result_error(op, res)),
    }
}

/// Sync refresh (refreshOnly with the cookie of the last one).
pub(crate) async fn refresh_sync(
    ldap: &mut Ldap,
    limit: Duration,
    q: &Query,
    old: &RawSet,
) -> Result<RawSet> {
    let cookie = old.cookie.as_deref().and_then(unhex);
    let (items, res) = search(
        ldap,
        limit,
        &q.base,
        Scope::Subtree,
        &q.filter,
        &q.all_attrs(),
        vec![sync_request_control(cookie.as_deref())],
    )
    .await?;
    if res.rc == SYNC_REFRESH_REQUIRED && cookie.is_some() {
        tracing::info!("directory {}: the server wants a full refresh", q.kind);
        let fresh = RawSet::default();
        return Box::pin(refresh_sync(ldap, limit, q, &fresh)).await;
    }
    if !check(&format!("sync refresh of {}", q.kind), &res)? {
        return Ok(RawSet::default());
    }
    let mut new_cookie: Option<Vec<u8>> = None;
    let mut upserts: BTreeMap<String, RawEntry> = BTreeMap::new();
    let mut present: BTreeSet<String> = BTreeSet::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let mut delete_phase = false;
    for item in items {
        if item.is_ref() {
            continue;
        }
        if item.is_intermediate() {
            let info = parse_sync_info(item.0).map_err(|m| protocol(q.kind, m))?;
            match info {
                None => {}
                Some(SyncInfo::NewCookie(c)) => new_cookie = Some(c),
                Some(SyncInfo::RefreshDelete { cookie, .. }) => {
                    delete_phase = true;
                    new_cookie = cookie.or(new_cookie);
                }
                Some(SyncInfo::RefreshPresent { cookie, .. }) => {
                    new_cookie = cookie.or(new_cookie);
                }
                Some(SyncInfo::SyncIdSet {
                    cookie,
                    refresh_deletes,
                    uuids,
                }) => {
                    let keys = uuids.iter().map(|u| hex(u));
                    if refresh_deletes {
                        deleted.extend(keys);
                    } else {
                        present.extend(keys);
                    }
                    new_cookie = cookie.or(new_cookie);
                }
            }
            continue;
        }
        let state = item
            .1
            .iter()
            .find(|c| c.1.ctype == SYNC_STATE_OID)
            .and_then(|c| c.1.val.as_deref())
            .map(parse_sync_state)
            .transpose()
            .map_err(|m| protocol(q.kind, m))?;
        let entry = entry_from_tag(item.0).map_err(|m| protocol(q.kind, m))?;
        match state {
            Some(s) => {
                let key = hex(&s.entry_uuid);
                if let Some(c) = s.cookie {
                    new_cookie = Some(c);
                }
                match s.state {
                    SyncStateKind::Add | SyncStateKind::Modify => {
                        present.insert(key.clone());
                        upserts.insert(key, entry);
                    }
                    SyncStateKind::Present => {
                        present.insert(key);
                    }
                    SyncStateKind::Delete => {
                        deleted.insert(key);
                    }
                }
            }
            None => {
                return Err(protocol(
                    q.kind,
                    format!("entry {} came without a sync state", entry.dn),
                ))
            }
        }
    }
    let done = res
        .ctrls
        .iter()
        .find(|c| c.1.ctype == SYNC_DONE_OID)
        .and_then(|c| c.1.val.as_deref())
        .map(parse_sync_done)
        .transpose()
        .map_err(|m| protocol(q.kind, m))?
        .unwrap_or_default();
    if let Some(c) = done.cookie {
        new_cookie = Some(c);
    }
    let received = Received {
        upserts,
        present,
        deleted,
        deletes_named: done.refresh_deletes || delete_phase,
    };
    Ok(RawSet {
        entries: apply_sync(&old.entries, cookie.is_some(), received),
        cookie: new_cookie.map(|c| hex(&c)).or_else(|| old.cookie.clone()),
    })
}

/// What one sync refresh sent.
#[derive(Debug, Default)]
pub(crate) struct Received {
    /// Entries sent in full (added or modified).
    pub upserts: BTreeMap<String, RawEntry>,
    /// Keys named as present (unchanged).
    pub present: BTreeSet<String>,
    /// Keys named as deleted.
    pub deleted: BTreeSet<String>,
    /// The server used the delete phase (refreshDeletes): unnamed entries are unchanged.
    /// Otherwise the present phase: unnamed entries are gone.
    pub deletes_named: bool,
}

/// RFC 4533 section 3.4 applied to the old content. Pure, tested as a table.
pub(crate) fn apply_sync(
    old: &BTreeMap<String, RawEntry>,
    had_cookie: bool,
    r: Received,
) -> BTreeMap<String, RawEntry> {
    let mut entries = if !had_cookie {
        // A first refresh sends every entry: the old content (if any) is irrelevant.
        BTreeMap::new()
    } else if r.deletes_named {
        let mut e = old.clone();
        e.retain(|k, _| !r.deleted.contains(k));
        e
    } else {
        let mut e = old.clone();
        e.retain(|k, _| {
            (r.present.contains(k) || r.upserts.contains_key(k)) && !r.deleted.contains(k)
        });
        e
    };
    entries.extend(r.upserts);
    entries
}

/// Poll refresh: list stamps, read only what changed.
pub(crate) async fn refresh_poll(
    ldap: &mut Ldap,
    limit: Duration,
    q: &Query,
    old: &RawSet,
) -> Result<RawSet> {
    let op = format!("listing of {}", q.kind);
    let (items, res) = search(
        ldap,
        limit,
        &q.base,
        Scope::Subtree,
        &q.filter,
        &STAMP_ATTRS,
        Vec::new(),
    )
    .await?;
    if !check(&op, &res)? {
        return Ok(RawSet::default());
    }
    let listed = entries_only(q.kind, items)?;
    let changed: Vec<&RawEntry> = listed
        .iter()
        .filter(|e| {
            let stamp = e.stamp();
            stamp.is_none() || old.entries.get(&entry_key(e)).and_then(|o| o.stamp()) != stamp
        })
        .collect();
    let mut fetched: BTreeMap<String, RawEntry> = BTreeMap::new();
    if changed.len() > POLL_FETCH_ONE_BY_ONE {
        let (items, res) = search(
            ldap,
            limit,
            &q.base,
            Scope::Subtree,
            &q.filter,
            &q.all_attrs(),
            Vec::new(),
        )
        .await?;
        if check(&format!("read of {}", q.kind), &res)? {
            for e in entries_only(q.kind, items)? {
                fetched.insert(entry_key(&e), e);
            }
        }
    } else {
        for e in changed {
            let (items, res) = search(
                ldap,
                limit,
                &e.dn,
                Scope::Base,
                &q.filter,
                &q.all_attrs(),
                Vec::new(),
            )
            .await?;
            // Gone (or no longer matching) between the listing and now: leave it out.
            if check(&format!("read of {}", e.dn), &res)? {
                for e in entries_only(q.kind, items)? {
                    fetched.insert(entry_key(&e), e);
                }
            }
        }
    }
    let mut entries = BTreeMap::new();
    for e in &listed {
        let key = entry_key(e);
        if let Some(full) = fetched.remove(&key) {
            entries.insert(key, full);
        } else if let Some(o) = old.entries.get(&key) {
            if o.stamp().is_some() && o.stamp() == e.stamp() {
                entries.insert(key, o.clone());
            }
        }
    }
    Ok(RawSet {
        entries,
        cookie: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[&str]) -> BTreeMap<String, RawEntry> {
        keys.iter()
            .map(|k| (k.to_string(), RawEntry::new(format!("cn={k}"))))
            .collect()
    }
    fn keys(m: &BTreeMap<String, RawEntry>) -> Vec<&str> {
        m.keys().map(String::as_str).collect()
    }
    fn names(k: &[&str]) -> BTreeSet<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sync_results_applied() {
        let old = set(&["a", "b", "c"]);
        type Case = (&'static str, bool, Received, Vec<&'static str>);
        let table: Vec<Case> = vec![
            (
                "first refresh: exactly what was sent",
                false,
                Received {
                    upserts: set(&["x"]),
                    ..Default::default()
                },
                vec!["x"],
            ),
            (
                "delete phase, nothing named: unchanged",
                true,
                Received {
                    deletes_named: true,
                    ..Default::default()
                },
                vec!["a", "b", "c"],
            ),
            (
                "delete phase: named deletions go, additions come",
                true,
                Received {
                    deletes_named: true,
                    deleted: names(&["b"]),
                    upserts: set(&["d"]),
                    ..Default::default()
                },
                vec!["a", "c", "d"],
            ),
            (
                "present phase: what is not named is gone",
                true,
                Received {
                    present: names(&["a"]),
                    upserts: set(&["c"]),
                    ..Default::default()
                },
                vec!["a", "c"],
            ),
            (
                "present phase, nothing at all: everything is gone",
                true,
                Received::default(),
                vec![],
            ),
        ];
        for (name, had_cookie, r, want) in table {
            let got = apply_sync(&old, had_cookie, r);
            assert_eq!(keys(&got), want, "{name}");
        }
    }
}
