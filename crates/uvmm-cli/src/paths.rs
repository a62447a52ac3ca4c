//! Every path of uvmmd's API, built in one place: `uvmm`, `uvmm-restore` and `check_uvmm`
//! call these instead of writing `"/api/v1/..."` themselves. Path segments and query
//! values are percent-encoded here.

use crate::client::enc;
use uvmm_api::{Action, PoolCommand, VmQuery, API_PREFIX};

/// A query string built from the parameters that are given.
#[derive(Default)]
struct Query(Vec<String>);

impl Query {
    fn add(mut self, key: &str, value: Option<&str>) -> Query {
        if let Some(v) = value {
            self.0.push(format!("{key}={}", enc(v)));
        }
        self
    }

    fn flag(self, key: &str, on: bool) -> Query {
        self.add(key, on.then_some("true"))
    }

    fn on(self, path: String) -> String {
        if self.0.is_empty() {
            path
        } else {
            format!("{path}?{}", self.0.join("&"))
        }
    }
}

fn api(rest: &str) -> String {
    format!("{API_PREFIX}{rest}")
}

pub fn version() -> String {
    api("/version")
}

pub fn hosts() -> String {
    api("/hosts")
}

/// A host by id or URI.
pub fn host(id: &str) -> String {
    api(&format!("/hosts/{}", enc(id)))
}

/// A page of the VM list.
pub fn vms(q: &VmQuery) -> String {
    let (offset, limit) = (
        q.offset.map(|n| n.to_string()),
        q.limit.map(|n| n.to_string()),
    );
    Query::default()
        .add("host", q.host.as_deref())
        .add("state", q.state.as_deref())
        .add("q", q.q.as_deref())
        .add("name", q.name.as_deref())
        .add("sort", q.sort.as_deref())
        .add("offset", offset.as_deref())
        .add("limit", limit.as_deref())
        .on(api("/vms"))
}

/// `POST` here creates a VM.
pub fn new_vm() -> String {
    api("/vms")
}

fn vm_path(uuid: &str, rest: &str) -> String {
    api(&format!("/vms/{}{rest}", enc(uuid)))
}

/// One VM (`host`: when its UUID exists on several hosts).
pub fn vm(uuid: &str, host: Option<&str>) -> String {
    Query::default().add("host", host).on(vm_path(uuid, ""))
}

/// `DELETE` a VM; `volumes` is `none`, `all` or paths.
pub fn vm_delete(uuid: &str, host: Option<&str>, volumes: &str) -> String {
    Query::default()
        .add("host", host)
        .add("volumes", Some(volumes))
        .on(vm_path(uuid, ""))
}

/// A lifecycle action; `wait: false` lets a long one (suspend) answer with its task.
pub fn vm_action(uuid: &str, action: Action, host: Option<&str>, wait: bool) -> String {
    Query::default()
        .add("host", host)
        .add("wait", (!wait).then_some("false"))
        .on(vm_path(uuid, &format!("/{}", action.as_str())))
}

/// `POST` a migration; `wait: false` answers with its task.
pub fn vm_migrate(uuid: &str, host: Option<&str>, wait: bool) -> String {
    Query::default()
        .add("host", host)
        .add("wait", (!wait).then_some("false"))
        .on(vm_path(uuid, "/migrate"))
}

/// `POST` an evacuation of a host; `wait: false` answers with its task.
pub fn host_evacuate(host: &str, wait: bool) -> String {
    Query::default()
        .add("wait", (!wait).then_some("false"))
        .on(format!("{}/evacuate", self::host(host)))
}

/// `POST` a failover of a VM whose host is down.
pub fn vm_failover(uuid: &str, host: Option<&str>) -> String {
    Query::default()
        .add("host", host)
        .on(vm_path(uuid, "/failover"))
}

/// A VM's snapshots (`GET` the list, `POST` a new one; `wait: false` may answer with a task).
pub fn vm_snapshots(uuid: &str, host: Option<&str>, wait: bool) -> String {
    Query::default()
        .add("host", host)
        .add("wait", (!wait).then_some("false"))
        .on(vm_path(uuid, "/snapshots"))
}

/// One snapshot (`DELETE`), or with `revert` its revert (`POST`); both are tasks
/// (`wait: false` answers with the task).
pub fn vm_snapshot(uuid: &str, name: &str, host: Option<&str>, revert: bool, wait: bool) -> String {
    let rest = format!(
        "/snapshots/{}{}",
        enc(name),
        if revert { "/revert" } else { "" }
    );
    Query::default()
        .add("host", host)
        .add("wait", (!wait).then_some("false"))
        .on(vm_path(uuid, &rest))
}

/// `POST` a clone; `wait: false` answers with its task.
pub fn vm_clone(uuid: &str, host: Option<&str>, wait: bool) -> String {
    Query::default()
        .add("host", host)
        .add("wait", (!wait).then_some("false"))
        .on(vm_path(uuid, "/clone"))
}

/// `POST` a new name for a shut-off VM.
pub fn vm_rename(uuid: &str, host: Option<&str>) -> String {
    Query::default()
        .add("host", host)
        .on(vm_path(uuid, "/rename"))
}

pub fn vm_xml(uuid: &str, host: Option<&str>, inactive: bool) -> String {
    Query::default()
        .add("host", host)
        .flag("inactive", inactive)
        .on(vm_path(uuid, "/xml"))
}

/// `POST` here adds a drive.
pub fn vm_disks(uuid: &str, host: Option<&str>) -> String {
    Query::default()
        .add("host", host)
        .on(vm_path(uuid, "/disks"))
}

/// `DELETE` a drive.
pub fn vm_disk(
    uuid: &str,
    target: &str,
    host: Option<&str>,
    delete_volume: bool,
    live: bool,
) -> String {
    Query::default()
        .add("host", host)
        .flag("delete_volume", delete_volume)
        .flag("live", live)
        .on(vm_path(uuid, &format!("/disks/{}", enc(target))))
}

pub fn vm_disk_boot(uuid: &str, target: &str, host: Option<&str>) -> String {
    Query::default()
        .add("host", host)
        .on(vm_path(uuid, &format!("/disks/{}/boot", enc(target))))
}

pub fn vm_disk_media(uuid: &str, target: &str, host: Option<&str>) -> String {
    Query::default()
        .add("host", host)
        .on(vm_path(uuid, &format!("/disks/{}/media", enc(target))))
}

/// `POST` here adds a network interface.
pub fn vm_nics(uuid: &str, host: Option<&str>) -> String {
    Query::default()
        .add("host", host)
        .on(vm_path(uuid, "/nics"))
}

pub fn vm_nic(uuid: &str, mac: &str, host: Option<&str>, live: bool) -> String {
    Query::default()
        .add("host", host)
        .flag("live", live)
        .on(vm_path(uuid, &format!("/nics/{}", enc(mac))))
}

pub fn directory() -> String {
    api("/directory")
}

pub fn profiles() -> String {
    api("/profiles")
}

pub fn profile(name: &str) -> String {
    api(&format!("/profiles/{}", enc(name)))
}

pub fn events() -> String {
    api("/events")
}

/// Backed-up VMs, those whose name matches `pattern` (a glob).
pub fn backups(pattern: Option<&str>) -> String {
    Query::default().add("q", pattern).on(api("/backups"))
}

/// A backed-up VM by name or UUID.
pub fn backup(vm: &str) -> String {
    api(&format!("/backups/{}", enc(vm)))
}

pub fn backup_version(vm: &str, version: u32) -> String {
    api(&format!("/backups/{}/versions/{version}", enc(vm)))
}

pub fn backup_diff(vm: &str, from: u32, to: u32) -> String {
    api(&format!("/backups/{}/diff?from={from}&to={to}", enc(vm)))
}

pub fn backups_prune() -> String {
    api("/backups/prune")
}

pub fn restore() -> String {
    api("/restore")
}

/// The pools of every host, or of one.
pub fn pools(host: Option<&str>) -> String {
    Query::default().add("host", host).on(api("/pools"))
}

/// `POST` here creates a pool on `host`.
pub fn host_pools(host: &str) -> String {
    api(&format!("/hosts/{}/pools", enc(host)))
}

fn pool_path(host: &str, pool: &str, rest: &str) -> String {
    api(&format!("/hosts/{}/pools/{}{rest}", enc(host), enc(pool)))
}

pub fn pool(host: &str, pool: &str) -> String {
    pool_path(host, pool, "")
}

/// `DELETE` a pool (and its storage).
pub fn pool_delete(host: &str, pool: &str, delete_storage: bool) -> String {
    Query::default()
        .flag("delete_storage", delete_storage)
        .on(pool_path(host, pool, ""))
}

pub fn pool_command(host: &str, pool: &str, command: PoolCommand) -> String {
    pool_path(host, pool, &format!("/{}", command.as_str()))
}

/// `POST` here creates a volume.
pub fn volumes(host: &str, pool: &str) -> String {
    pool_path(host, pool, "/volumes")
}

pub fn volume(host: &str, pool: &str, volume: &str) -> String {
    pool_path(host, pool, &format!("/volumes/{}", enc(volume)))
}

/// Clone a volume; `wait: false` answers with the task at once.
pub fn volume_clone(host: &str, pool: &str, volume: &str, wait: bool) -> String {
    Query::default()
        .add("wait", (!wait).then_some("false"))
        .on(pool_path(
            host,
            pool,
            &format!("/volumes/{}/clone", enc(volume)),
        ))
}

pub fn volume_resize(host: &str, pool: &str, volume: &str) -> String {
    pool_path(host, pool, &format!("/volumes/{}/resize", enc(volume)))
}

pub fn tasks() -> String {
    api("/tasks")
}

pub fn task(id: &str) -> String {
    api(&format!("/tasks/{}", enc(id)))
}

pub fn metrics() -> String {
    "/metrics".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_and_queries_carry_what_is_given() {
        let table = [
            (
                host("test:///default"),
                "/api/v1/hosts/test%3A%2F%2F%2Fdefault",
            ),
            (vm("u-1", Some("kvm 1")), "/api/v1/vms/u-1?host=kvm%201"),
            (vm("u-1", None), "/api/v1/vms/u-1"),
            (
                vm_action("u", Action::Suspend, Some("h"), false),
                "/api/v1/vms/u/suspend?host=h&wait=false",
            ),
            (
                vm_action("u", Action::Start, None, true),
                "/api/v1/vms/u/start",
            ),
            (
                vms(&VmQuery {
                    name: Some("web 1".into()),
                    host: Some("h".into()),
                    ..VmQuery::default()
                }),
                "/api/v1/vms?host=h&name=web%201",
            ),
            (vms(&VmQuery::default()), "/api/v1/vms"),
            (
                vm_disk("u", "vda", None, true, false),
                "/api/v1/vms/u/disks/vda?delete_volume=true",
            ),
            (
                vm_disk("u", "vdb", Some("h"), false, true),
                "/api/v1/vms/u/disks/vdb?host=h&live=true",
            ),
            (
                vm_nic("u", "52:54:00:00:00:01", None, true),
                "/api/v1/vms/u/nics/52%3A54%3A00%3A00%3A00%3A01?live=true",
            ),
            (
                vm_migrate("u", Some("h"), false),
                "/api/v1/vms/u/migrate?host=h&wait=false",
            ),
            (
                vm_snapshot("u", "s1", None, true, true),
                "/api/v1/vms/u/snapshots/s1/revert",
            ),
            (
                vm_snapshot("u", "s 1", Some("h"), false, false),
                "/api/v1/vms/u/snapshots/s%201?host=h&wait=false",
            ),
            (host_evacuate("h1", true), "/api/v1/hosts/h1/evacuate"),
            (
                volume_clone("h", "default", "a.img", false),
                "/api/v1/hosts/h/pools/default/volumes/a.img/clone?wait=false",
            ),
            (
                pool_command("h", "p", PoolCommand::Refresh),
                "/api/v1/hosts/h/pools/p/refresh",
            ),
            (backups(Some("*web*")), "/api/v1/backups?q=%2Aweb%2A"),
            (
                backup_diff("web", 1, 2),
                "/api/v1/backups/web/diff?from=1&to=2",
            ),
            (task("t"), "/api/v1/tasks/t"),
        ];
        for (got, want) in table {
            assert_eq!(got, want);
        }
    }
}
