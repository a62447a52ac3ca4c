//! The event stream (`GET /api/v1/events`): one [`Event`] per change, a tagged enum in
//! Rust ([`Change`], tag `kind`). On the wire every event keeps the one flat shape it has
//! always had (`seq`, `time`, `kind`, `host`, `host_id`, `uuid`, `name`, `state`,
//! `previous_state`, `available`, `message`, `vm`, and `pool`/`level` for pool events), so
//! clients built against it (`uvmm events --json`, the web UI) read it unchanged; task
//! events add `task`.

use crate::{Level, Task, VmState, VmSummary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What changed (the `kind` of an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    HostAdded,
    HostRemoved,
    HostConnected,
    HostUnavailable,
    VmAdded,
    VmRemoved,
    /// State (or managed-save flag) changed.
    VmState,
    /// Definition or availability changed, state did not.
    VmChanged,
    /// A storage pool crossed a monitoring threshold (up or down): `level`, `message`.
    PoolAlert,
    /// A pool was added, removed, started or stopped.
    PoolChanged,
    /// A task reports how far it has come (`task`).
    TaskProgress,
    /// A task has ended (`task`, with its `result` or `error`).
    TaskDone,
    /// Directory mode: the directory became unreachable (`available: false`, uvmmd serves
    /// from its cache; `message` says why) or answers again (`available: true`). `host` is
    /// the directory's URI, `host_id` is `directory`.
    DirectoryState,
    /// An audit record was written (`audit`: the record as in the audit log). Only for
    /// callers with an unrestricted admin grant; `host` is `uvmmd`, `host_id` `audit`.
    Audit,
    /// The client missed events (it was too slow); reload the full state.
    Resync,
}

/// One change of one host, numbered and stamped by the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "EventWire", try_from = "EventWire")]
pub struct Event {
    /// Increases by one per event; gaps mean missed events.
    pub seq: u64,
    /// RFC 3339 time the daemon saw the change.
    pub time: String,
    /// Host URI.
    pub host: String,
    pub host_id: String,
    /// Whether the host was connected then (unknown for task events).
    pub available: Option<bool>,
    pub change: Change,
}

/// What changed, with what each kind of change carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    HostAdded,
    HostRemoved,
    HostConnected,
    HostUnavailable {
        message: String,
    },
    VmAdded {
        vm: VmSummary,
    },
    VmRemoved {
        uuid: String,
        name: String,
        state: VmState,
    },
    VmState {
        vm: VmSummary,
        previous_state: VmState,
    },
    VmChanged {
        vm: VmSummary,
        previous_state: VmState,
    },
    PoolAlert {
        pool: String,
        level: Level,
        message: String,
    },
    PoolChanged {
        pool: String,
        level: Level,
        message: String,
    },
    TaskProgress {
        task: Box<Task>,
    },
    TaskDone {
        task: Box<Task>,
    },
    DirectoryState {
        online: bool,
        message: String,
    },
    Audit {
        record: serde_json::Value,
    },
}

impl Change {
    pub fn kind(&self) -> EventKind {
        match self {
            Change::HostAdded => EventKind::HostAdded,
            Change::HostRemoved => EventKind::HostRemoved,
            Change::HostConnected => EventKind::HostConnected,
            Change::HostUnavailable { .. } => EventKind::HostUnavailable,
            Change::VmAdded { .. } => EventKind::VmAdded,
            Change::VmRemoved { .. } => EventKind::VmRemoved,
            Change::VmState { .. } => EventKind::VmState,
            Change::VmChanged { .. } => EventKind::VmChanged,
            Change::PoolAlert { .. } => EventKind::PoolAlert,
            Change::PoolChanged { .. } => EventKind::PoolChanged,
            Change::TaskProgress { .. } => EventKind::TaskProgress,
            Change::TaskDone { .. } => EventKind::TaskDone,
            Change::DirectoryState { .. } => EventKind::DirectoryState,
            Change::Audit { .. } => EventKind::Audit,
        }
    }
}

impl Event {
    /// An event before the daemon's bus numbers and stamps it.
    pub fn new(host: &str, host_id: &str, available: Option<bool>, change: Change) -> Event {
        Event {
            seq: 0,
            time: String::new(),
            host: host.to_string(),
            host_id: host_id.to_string(),
            available,
            change,
        }
    }

    pub fn kind(&self) -> EventKind {
        self.change.kind()
    }

    /// The VM a VM event is about: (UUID, name).
    pub fn vm(&self) -> Option<(&str, &str)> {
        match &self.change {
            Change::VmAdded { vm } | Change::VmState { vm, .. } | Change::VmChanged { vm, .. } => {
                Some((&vm.uuid, &vm.name))
            }
            Change::VmRemoved { uuid, name, .. } => Some((uuid, name)),
            _ => None,
        }
    }
}

/// An event as it is sent: one flat object for every kind (the document's `Event`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Event)]
pub struct EventWire {
    /// Increases by one per event; gaps mean missed events.
    pub seq: u64,
    /// RFC 3339 time the daemon saw the change.
    pub time: String,
    pub kind: EventKind,
    /// Host URI.
    pub host: String,
    pub host_id: String,
    #[schema(format = "uuid")]
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub state: Option<VmState>,
    pub previous_state: Option<VmState>,
    pub available: Option<bool>,
    pub message: Option<String>,
    /// The VM after the change (VM events except removal).
    pub vm: Option<VmSummary>,
    /// Pool events: the pool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Pool alerts: the new level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Task events: the task as it is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Box<Task>>,
    /// Audit events: the audit record (admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub audit: Option<serde_json::Value>,
}

impl From<Event> for EventWire {
    fn from(e: Event) -> EventWire {
        let kind = e.kind();
        let mut w = EventWire {
            seq: e.seq,
            time: e.time,
            kind,
            host: e.host,
            host_id: e.host_id,
            uuid: None,
            name: None,
            state: None,
            previous_state: None,
            available: e.available,
            message: None,
            vm: None,
            pool: None,
            level: None,
            task: None,
            audit: None,
        };
        match e.change {
            Change::HostAdded | Change::HostRemoved | Change::HostConnected => {}
            Change::HostUnavailable { message } => w.message = Some(message),
            Change::VmAdded { vm } => {
                (w.uuid, w.name, w.state) =
                    (Some(vm.uuid.clone()), Some(vm.name.clone()), Some(vm.state));
                w.vm = Some(vm);
            }
            Change::VmRemoved { uuid, name, state } => {
                (w.uuid, w.name, w.state) = (Some(uuid), Some(name), Some(state));
                w.previous_state = Some(state);
            }
            Change::VmState { vm, previous_state } | Change::VmChanged { vm, previous_state } => {
                (w.uuid, w.name, w.state) =
                    (Some(vm.uuid.clone()), Some(vm.name.clone()), Some(vm.state));
                w.previous_state = Some(previous_state);
                w.vm = Some(vm);
            }
            Change::PoolAlert {
                pool,
                level,
                message,
            }
            | Change::PoolChanged {
                pool,
                level,
                message,
            } => {
                (w.pool, w.level, w.message) = (Some(pool), Some(level), Some(message));
            }
            Change::TaskProgress { task } | Change::TaskDone { task } => w.task = Some(task),
            Change::DirectoryState { online, message } => {
                (w.available, w.message) = (Some(online), Some(message));
            }
            Change::Audit { record } => w.audit = Some(record),
        }
        w
    }
}

impl TryFrom<EventWire> for Event {
    type Error = String;

    fn try_from(w: EventWire) -> Result<Event, String> {
        let missing = |field: &str| format!("a {:?} event without {field}", w.kind);
        let vm = || w.vm.clone().ok_or_else(|| missing("vm"));
        let previous = || w.previous_state.ok_or_else(|| missing("previous_state"));
        let pool = || {
            Ok::<_, String>((
                w.pool.clone().ok_or_else(|| missing("pool"))?,
                w.level.ok_or_else(|| missing("level"))?,
                w.message.clone().unwrap_or_default(),
            ))
        };
        let task = || w.task.clone().ok_or_else(|| missing("task"));
        let change = match w.kind {
            EventKind::HostAdded => Change::HostAdded,
            EventKind::HostRemoved => Change::HostRemoved,
            EventKind::HostConnected => Change::HostConnected,
            EventKind::HostUnavailable => Change::HostUnavailable {
                message: w.message.clone().unwrap_or_default(),
            },
            EventKind::VmAdded => Change::VmAdded { vm: vm()? },
            EventKind::VmRemoved => Change::VmRemoved {
                uuid: w.uuid.clone().ok_or_else(|| missing("uuid"))?,
                name: w.name.clone().unwrap_or_default(),
                state: w.state.ok_or_else(|| missing("state"))?,
            },
            EventKind::VmState => Change::VmState {
                vm: vm()?,
                previous_state: previous()?,
            },
            EventKind::VmChanged => Change::VmChanged {
                vm: vm()?,
                previous_state: previous()?,
            },
            EventKind::PoolAlert => {
                let (pool, level, message) = pool()?;
                Change::PoolAlert {
                    pool,
                    level,
                    message,
                }
            }
            EventKind::PoolChanged => {
                let (pool, level, message) = pool()?;
                Change::PoolChanged {
                    pool,
                    level,
                    message,
                }
            }
            EventKind::TaskProgress => Change::TaskProgress { task: task()? },
            EventKind::TaskDone => Change::TaskDone { task: task()? },
            EventKind::DirectoryState => Change::DirectoryState {
                online: w.available.ok_or_else(|| missing("available"))?,
                message: w.message.clone().unwrap_or_default(),
            },
            EventKind::Audit => Change::Audit {
                record: w.audit.clone().ok_or_else(|| missing("audit"))?,
            },
            EventKind::Resync => return Err("a resync notice is not an event".into()),
        };
        Ok(Event {
            seq: w.seq,
            time: w.time,
            host: w.host,
            host_id: w.host_id,
            available: w.available,
            change,
        })
    }
}

/// The `data:` of a `resync` message of the event stream: the client was too slow and
/// missed `missed` events; it must reload the full state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResyncNotice {
    /// Always `resync`.
    pub kind: EventKind,
    pub missed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vm() -> VmSummary {
        serde_json::from_value(json!({
            "name": "web", "uuid": "4dea22b3-1d52-d8f3-2516-782e98ab3fa0",
            "host": "test:///default", "host_id": "default", "state": "running",
            "reason": "booted", "suspended": false, "available": true, "persistent": true,
            "autostart": false, "memory_kib": 1024, "max_memory_kib": 1024, "vcpus": 1,
            "cpu_usage": 0.0, "vnc_port": null, "description": null, "os_type": "hvm",
            "domain_type": "kvm"
        }))
        .unwrap()
    }

    /// The JSON of every kind is the flat object it has always been: every key of the
    /// old `Event` is there (null when it does not apply), `pool`/`level` only for pool
    /// events; and it reads back into the same event.
    #[test]
    fn events_keep_their_wire_shape_and_read_back() {
        let base = |change| Event {
            seq: 7,
            time: "T".into(),
            host: "test:///default".into(),
            host_id: "default".into(),
            available: Some(true),
            change,
        };
        let table = [
            (
                base(Change::HostConnected),
                json!({"kind": "host_connected", "uuid": null, "vm": null, "message": null}),
            ),
            (
                base(Change::HostUnavailable {
                    message: "gone".into(),
                }),
                json!({"kind": "host_unavailable", "message": "gone", "state": null}),
            ),
            (
                base(Change::VmState {
                    vm: vm(),
                    previous_state: VmState::Shutoff,
                }),
                json!({"kind": "vm_state", "uuid": "4dea22b3-1d52-d8f3-2516-782e98ab3fa0", "name": "web",
                       "state": "running", "previous_state": "shutoff", "available": true}),
            ),
            (
                base(Change::VmRemoved {
                    uuid: "u".into(),
                    name: "web".into(),
                    state: VmState::Shutoff,
                }),
                json!({"kind": "vm_removed", "uuid": "u", "state": "shutoff", "previous_state": "shutoff", "vm": null}),
            ),
            (
                base(Change::PoolAlert {
                    pool: "default".into(),
                    level: Level::Critical,
                    message: "92%".into(),
                }),
                json!({"kind": "pool_alert", "pool": "default", "level": "critical", "message": "92%", "name": null}),
            ),
        ];
        let keys = [
            "seq",
            "time",
            "kind",
            "host",
            "host_id",
            "uuid",
            "name",
            "state",
            "previous_state",
            "available",
            "message",
            "vm",
        ];
        for (event, want) in table {
            let got = serde_json::to_value(&event).unwrap();
            for k in keys {
                assert!(got.get(k).is_some(), "{k} missing in {got}");
            }
            for (k, v) in want.as_object().unwrap() {
                assert_eq!(&got[k], v, "{k} of {got}");
            }
            let is_pool = matches!(event.kind(), EventKind::PoolAlert | EventKind::PoolChanged);
            assert_eq!(got.get("pool").is_some(), is_pool, "{got}");
            assert!(got.get("task").is_none());
            let back: Event = serde_json::from_value(got).unwrap();
            assert_eq!(back, event);
        }
        // A resync notice is not an event.
        assert!(serde_json::from_value::<Event>(json!({"kind": "resync", "missed": 3})).is_err());
    }
}
