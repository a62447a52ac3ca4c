//! Finding hosts and VMs, and pages of the VM list (filters, sort, paging).

use super::listing::{f64_key, prefix_key, ListRow};
use super::pages::{keeps, Filter, Keep, NameIndex};
use super::*;
use uvmm_api::{VmPage, VmQuery, VmSummary};
use uvmm_model::state::ParseEnumError;
use uvmm_model::uuid::UuidError;

/// What finding a host or VM, or listing VMs, can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    BadUuid(#[from] UuidError),
    #[error(transparent)]
    BadState(#[from] ParseEnumError),
    #[error(
        "unknown sort key '{0}' (expected name, host, state, memory, vcpus or cpu, optionally prefixed with '-')"
    )]
    BadSort(String),
    #[error("no host '{0}'")]
    NoHost(String),
    #[error("{what}")]
    NoVm { what: String },
    /// The UUID is defined on several hosts and no host was given.
    #[error("UUID {uuid} exists on {} hosts; choose one with host=", .candidates.len())]
    Ambiguous {
        uuid: String,
        candidates: Vec<VmSummary>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Name,
    Host,
    State,
    Memory,
    Vcpus,
    Cpu,
}

fn parse_sort(s: &str) -> Result<(SortKey, bool), LookupError> {
    let (desc, key) = match s.strip_prefix('-') {
        Some(k) => (true, k),
        None => (false, s),
    };
    let key = match key {
        "name" => SortKey::Name,
        "host" => SortKey::Host,
        "state" => SortKey::State,
        "memory" => SortKey::Memory,
        "vcpus" => SortKey::Vcpus,
        "cpu" => SortKey::Cpu,
        other => return Err(LookupError::BadSort(other.to_string())),
    };
    Ok((key, desc))
}

impl Cache {
    pub fn hosts(&self) -> impl Iterator<Item = &HostEntry> {
        self.hosts.values()
    }

    pub fn host(&self, uri: &str) -> Option<&HostEntry> {
        self.hosts.get(uri)
    }

    /// Find a host by id or URI.
    pub fn resolve_host(&self, id_or_uri: &str) -> Result<&HostEntry, LookupError> {
        self.hosts
            .get(id_or_uri)
            .or_else(|| self.ids.get(id_or_uri).and_then(|u| self.hosts.get(u)))
            .ok_or_else(|| LookupError::NoHost(id_or_uri.to_string()))
    }

    /// Who uses an image: `name@host-id` of the VMs (on every host for shared pools).
    pub fn users_of(&self, host_uri: &str, path: &str, shared: bool) -> Vec<String> {
        let mut users: Vec<String> = self
            .hosts
            .values()
            .filter(|h| shared || h.uri == host_uri)
            .flat_map(|h| {
                h.vms
                    .values()
                    .filter(|v| v.disk_sources().any(|s| s == path))
                    .map(move |v| format!("{}@{}", v.name, h.id))
            })
            .collect();
        users.sort();
        users
    }

    /// All VMs with a UUID (normally one; several when the same definition exists on
    /// several hosts).
    pub fn find_uuid(&self, uuid: &str) -> Vec<(&HostEntry, &VmEntry)> {
        self.hosts
            .values()
            .filter_map(|h| h.vms.get(uuid).map(|v| (h, v)))
            .collect()
    }

    /// Resolve `uuid` (optionally on one host) to exactly one VM.
    pub fn resolve_vm(
        &self,
        uuid: &str,
        host: Option<&str>,
    ) -> Result<(&HostEntry, &VmEntry), LookupError> {
        let uuid = uvmm_model::uuid::normalize_uuid(uuid)?;
        if let Some(h) = host {
            let h = self.resolve_host(h)?;
            return h
                .vms
                .get(&uuid)
                .map(|v| (h, v))
                .ok_or_else(|| LookupError::NoVm {
                    what: format!("no VM {uuid} on host {}", h.id),
                });
        }
        let mut found = self.find_uuid(&uuid);
        match found.len() {
            0 => Err(LookupError::NoVm {
                what: format!("no VM with UUID {uuid}"),
            }),
            1 => Ok(found.remove(0)),
            _ => Err(LookupError::Ambiguous {
                uuid: uuid.clone(),
                candidates: found.iter().map(|(h, v)| vm_summary(h, v)).collect(),
            }),
        }
    }

    pub fn list_vms(&self, q: &VmQuery) -> Result<VmPage, LookupError> {
        self.list(q, None)
    }

    /// `list_vms` of the VMs `keep` (host, VM name) lets through: what a caller with a
    /// limited scope may see, filtered before counting and paging.
    pub fn list_vms_where(
        &self,
        q: &VmQuery,
        keep: &dyn Fn(&HostEntry, &str) -> bool,
    ) -> Result<VmPage, LookupError> {
        self.list(q, Some(keep))
    }

    /// `keep`: `None` for a caller who sees everything, so a page need not ask per VM.
    fn list(&self, q: &VmQuery, keep: Keep) -> Result<VmPage, LookupError> {
        let p = Parsed::new(self, q)?;
        if p.key == SortKey::Name && p.only_host.is_none() {
            return Ok(self.page_by_name(q, &p, keep));
        }
        Ok(self.scan(q, &p, keep))
    }

    /// `list_vms_where` without the name order: every host's rows scanned, selected and
    /// sorted. What the name order must agree with (tests, the benchmark's baseline).
    pub fn list_vms_scanned(
        &self,
        q: &VmQuery,
        keep: &dyn Fn(&HostEntry, &str) -> bool,
    ) -> Result<VmPage, LookupError> {
        Ok(self.scan(q, &Parsed::new(self, q)?, Some(keep)))
    }

    fn scan(&self, q: &VmQuery, p: &Parsed, keep: Keep) -> VmPage {
        let Parsed {
            key,
            desc,
            only_host,
            ..
        } = *p;
        let filter = p.filter(q, keep);
        // Other sort keys and one host's VMs: a scan of the hosts' dense listing rows
        // (see `listing.rs`), selected and sorted per request. Each row carries
        // its primary sort key, so comparisons touch only this vector.
        type Row<'a> = (u128, &'a HostEntry, &'a ListRows, &'a ListRow);
        let mut rows: Vec<Row> = Vec::new();
        for h in self
            .hosts
            .values()
            .filter(|h| only_host.is_none_or(|u| u == h.uri))
        {
            let host_key = prefix_key(&h.id);
            let lr = h.rows();
            rows.extend(
                lr.rows
                    .iter()
                    .filter(|r| keeps(&filter, h, lr, r))
                    .map(|r| {
                        let k = match key {
                            SortKey::Name => r.name_prefix,
                            SortKey::Host => host_key,
                            SortKey::State => r.state as u128,
                            SortKey::Memory => u128::from(r.memory_kib),
                            SortKey::Vcpus => u128::from(r.vcpus),
                            SortKey::Cpu => f64_key(r.cpu_usage),
                        };
                        (k, h, lr, r)
                    }),
            );
        }
        // The row key orders like the primary key wherever the keys differ; ties fall
        // back to the full key, then a stable secondary order that keeps pages consistent
        // between requests.
        let cmp = |(ka, ha, la, a): &Row, (kb, hb, lb, b): &Row| {
            let k = if desc { kb.cmp(ka) } else { ka.cmp(kb) };
            k.then_with(|| {
                let primary = match key {
                    SortKey::Name => la.name_key(a).cmp(lb.name_key(b)),
                    SortKey::Host => ha.id.cmp(&hb.id),
                    _ => std::cmp::Ordering::Equal,
                };
                if desc {
                    primary.reverse()
                } else {
                    primary
                }
            })
            .then_with(|| a.name_prefix.cmp(&b.name_prefix))
            .then_with(|| la.name_key(a).cmp(lb.name_key(b)))
            .then_with(|| la.name(a).cmp(lb.name(b)))
            .then_with(|| ha.id.cmp(&hb.id))
        };
        let total = rows.len();
        let offset = q.offset.unwrap_or(0);
        // A page needs only its first offset+limit rows in order: select those, sort them.
        let wanted = q
            .limit
            .map(|l| offset.saturating_add(l))
            .unwrap_or(usize::MAX);
        if wanted < rows.len() {
            rows.select_nth_unstable_by(wanted, cmp);
            rows.truncate(wanted);
        }
        rows.sort_by(cmp);
        let items = rows
            .into_iter()
            .skip(offset)
            .take(q.limit.unwrap_or(usize::MAX))
            .filter_map(|(_, h, lr, r)| h.vms.get(lr.uuid(r)).map(|v| vm_summary(h, v)))
            .collect();
        page_of(q, total, items)
    }

    /// The fast path of pages: the cache's name order (`pages.rs`), built on first use.
    fn page_by_name(&self, q: &VmQuery, p: &Parsed, keep: Keep) -> VmPage {
        let hosts: Vec<&HostEntry> = self.hosts.values().collect();
        let index = self.pages.get_or_init(|| NameIndex::build(&hosts));
        let filter = p.filter(q, keep);
        let offset = q.offset.unwrap_or(0);
        let (total, hits) = index.page(&hosts, &filter, p.desc, offset, q.limit);
        let items = hits
            .into_iter()
            .filter_map(|(hi, ri)| {
                let h = hosts[hi];
                let lr = h.rows();
                h.vms.get(lr.uuid(&lr.rows[ri])).map(|v| vm_summary(h, v))
            })
            .collect();
        page_of(q, total, items)
    }
}

/// The answer for `q`: `items` of `total` matches, with the window asked for.
fn page_of(q: &VmQuery, total: usize, items: Vec<VmSummary>) -> VmPage {
    VmPage {
        total,
        offset: q.offset.unwrap_or(0),
        limit: q.limit,
        items,
    }
}

/// A query's parameters, checked.
struct Parsed<'a> {
    state: Option<VmState>,
    key: SortKey,
    desc: bool,
    pattern: Option<uvmm_model::glob::Pattern>,
    only_host: Option<&'a str>,
}

impl<'a> Parsed<'a> {
    fn filter<'f>(&'f self, q: &'f VmQuery, keep: Keep<'f>) -> Filter<'f> {
        Filter {
            state: self.state,
            name: q.name.as_deref(),
            pattern: self.pattern.as_ref(),
            keep,
        }
    }

    fn new(cache: &'a Cache, q: &VmQuery) -> Result<Parsed<'a>, LookupError> {
        let state = q
            .state
            .as_deref()
            .map(|s| s.parse::<VmState>())
            .transpose()?;
        let (key, desc) = parse_sort(q.sort.as_deref().unwrap_or("name"))?;
        let only_host = q
            .host
            .as_deref()
            .map(|h| cache.resolve_host(h).map(|e| e.uri.as_str()))
            .transpose()?;
        Ok(Parsed {
            state,
            key,
            desc,
            pattern: q.q.as_deref().map(uvmm_model::glob::Pattern::new),
            only_host,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::update::tests::*;
    use super::*;
    use std::time::SystemTime;
    use uvmm_libvirt::{DomainStats, HostInfo};

    #[test]
    fn list_filters_sorts_and_pages() {
        let mut c = cache_with(vec![
            snap(U1, "web-01", VmState::Running),
            snap(U2, "db-01", VmState::Shutoff),
            snap(U3, "Web-02", VmState::Running),
        ]);
        c.add_host("test:///b.xml", "b", HostOrigin::Runtime, SystemTime::now());
        c.host_synced(
            "test:///b.xml",
            HostInfo::default(),
            None,
            vec![snap(U1, "web-01", VmState::Paused)],
            SystemTime::now(),
        );
        let names = |q: VmQuery| -> Vec<String> {
            c.list_vms(&q)
                .unwrap()
                .items
                .into_iter()
                .map(|v| format!("{}@{}", v.name, v.host_id))
                .collect()
        };
        assert_eq!(
            names(VmQuery::default()),
            vec!["db-01@a", "web-01@a", "web-01@b", "Web-02@a"]
        );
        assert_eq!(
            names(VmQuery {
                q: Some("web*".into()),
                ..Default::default()
            }),
            vec!["web-01@a", "web-01@b", "Web-02@a"]
        );
        assert_eq!(
            names(VmQuery {
                q: Some("d-db".into()),
                ..Default::default()
            }),
            vec!["db-01@a"]
        );
        assert_eq!(
            names(VmQuery {
                state: Some("running".into()),
                ..Default::default()
            }),
            vec!["web-01@a", "Web-02@a"]
        );
        assert_eq!(
            names(VmQuery {
                host: Some("b".into()),
                ..Default::default()
            }),
            vec!["web-01@b"]
        );
        assert_eq!(
            names(VmQuery {
                host: Some("test:///b.xml".into()),
                ..Default::default()
            }),
            vec!["web-01@b"]
        );
        assert_eq!(
            names(VmQuery {
                name: Some("web-01".into()),
                ..Default::default()
            }),
            vec!["web-01@a", "web-01@b"]
        );
        assert_eq!(
            names(VmQuery {
                sort: Some("-name".into()),
                limit: Some(3),
                ..Default::default()
            }),
            vec!["Web-02@a", "web-01@a", "web-01@b"]
        );
        let page = c
            .list_vms(&VmQuery {
                offset: Some(3),
                limit: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!((page.total, page.items.len()), (4, 1));

        for bad in [
            VmQuery {
                state: Some("runing".into()),
                ..Default::default()
            },
            VmQuery {
                sort: Some("size".into()),
                ..Default::default()
            },
        ] {
            assert!(
                matches!(
                    c.list_vms(&bad),
                    Err(LookupError::BadState(_) | LookupError::BadSort(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            c.list_vms(&VmQuery {
                host: Some("zzz".into()),
                ..Default::default()
            }),
            Err(LookupError::NoHost(_))
        ));
    }

    /// The listing rows are built once and then kept: every kind of change must reach
    /// them (a list is taken before each change so the rows exist when it happens).
    #[test]
    fn listings_follow_every_change_after_the_rows_exist() {
        let mut c = cache_with(vec![
            snap(U1, "alpha", VmState::Running),
            snap(U2, "beta", VmState::Shutoff),
        ]);
        let list = |c: &Cache, sort: &str| -> Vec<String> {
            c.list_vms(&VmQuery {
                sort: Some(sort.into()),
                ..Default::default()
            })
            .unwrap()
            .items
            .into_iter()
            .map(|v| format!("{}:{}:{}:{}", v.name, v.state, v.memory_kib, v.vcpus))
            .collect()
        };
        assert_eq!(
            list(&c, "name"),
            ["alpha:running:1024:2", "beta:shutoff:1024:2"]
        );
        // Statistics change figures in place.
        let t0 = Instant::now();
        let stat = DomainStats {
            uuid: U1.into(),
            state: Some(VmState::Running),
            cpu_time_ns: Some(0),
            balloon_current_kib: Some(4096),
            vcpus_current: Some(4),
            ..DomainStats::default()
        };
        c.apply_stats(URI, &[stat], None, t0, false);
        assert_eq!(
            list(&c, "-memory"),
            ["alpha:running:4096:4", "beta:shutoff:1024:2"]
        );
        assert_eq!(list(&c, "vcpus")[0], "beta:shutoff:1024:2");
        // A state change, a rename and a new description through upsert.
        c.vm_upsert(URI, snap(U2, "aardvark", VmState::Running));
        assert_eq!(
            list(&c, "name"),
            ["aardvark:running:1024:2", "alpha:running:4096:4"]
        );
        let by_desc = |c: &Cache, q: &str| {
            c.list_vms(&VmQuery {
                q: Some(q.into()),
                ..Default::default()
            })
            .unwrap()
            .total
        };
        assert_eq!(by_desc(&c, "d-aardvark"), 1);
        assert_eq!(by_desc(&c, "d-beta"), 0);
        // A new VM, a removed VM.
        c.vm_upsert(URI, snap(U3, "zulu", VmState::Paused));
        assert_eq!(list(&c, "-name")[0], "zulu:paused:1024:2");
        c.vm_remove(URI, U1);
        assert_eq!(
            list(&c, "name"),
            ["aardvark:running:1024:2", "zulu:paused:1024:2"]
        );
        // A full resync replaces the set.
        c.host_synced(
            URI,
            HostInfo::default(),
            None,
            vec![snap(U1, "omega", VmState::Shutoff)],
            SystemTime::now(),
        );
        assert_eq!(list(&c, "name"), ["omega:shutoff:1024:2"]);
        // Losing the host zeroes CPU figures; the listing shows the VM still.
        c.host_unavailable(URI, "gone", None, SystemTime::now());
        assert_eq!(list(&c, "cpu"), ["omega:shutoff:1024:2"]);
    }

    #[test]
    fn search_covers_name_description_and_contact() {
        let mut with_contact = snap(U1, "alpha", VmState::Running);
        with_contact.xml = format!(
            "<domain type='test'><name>alpha</name><uuid>{U1}</uuid><metadata>\
             <uvmm:notes xmlns:uvmm='https://univention.de/uvmm/1'>\
             <uvmm:contact>Jane Roe</uvmm:contact></uvmm:notes></metadata></domain>"
        );
        let c = cache_with(vec![with_contact, snap(U2, "beta", VmState::Shutoff)]);
        let search = |q: &str| -> Vec<String> {
            c.list_vms(&VmQuery {
                q: Some(q.into()),
                ..Default::default()
            })
            .unwrap()
            .items
            .into_iter()
            .map(|v| v.name)
            .collect()
        };
        assert_eq!(search("jane"), ["alpha"]);
        assert_eq!(search("*roe"), ["alpha"]);
        assert_eq!(search("d-beta"), ["beta"]);
        assert_eq!(search("alp"), ["alpha"]);
        assert!(search("nobody").is_empty());
    }

    #[test]
    fn resolve_vm_cases() {
        let mut c = cache_with(vec![snap(U1, "a", VmState::Running)]);
        assert!(c.resolve_vm(U1, None).is_ok());
        assert!(c.resolve_vm(&U1.replace('-', ""), None).is_ok());
        assert!(matches!(
            c.resolve_vm("nope", None),
            Err(LookupError::BadUuid(_))
        ));
        assert!(matches!(
            c.resolve_vm(U2, None),
            Err(LookupError::NoVm { .. })
        ));
        c.add_host("test:///b.xml", "b", HostOrigin::Runtime, SystemTime::now());
        c.host_synced(
            "test:///b.xml",
            HostInfo::default(),
            None,
            vec![snap(U1, "a", VmState::Shutoff)],
            SystemTime::now(),
        );
        assert!(matches!(
            c.resolve_vm(U1, None),
            Err(LookupError::Ambiguous { .. })
        ));
        assert_eq!(c.resolve_vm(U1, Some("b")).unwrap().0.id, "b");
    }

    #[test]
    fn free_ids() {
        let mut c = Cache::default();
        assert_eq!(c.free_id("default"), "default");
        c.add_host(
            "test:///default",
            "default",
            HostOrigin::Cmdline,
            SystemTime::now(),
        );
        assert_eq!(c.free_id("default"), "default-2");
    }
}
