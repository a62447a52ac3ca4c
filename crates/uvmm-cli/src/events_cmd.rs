//! `uvmm events`: follow the daemon's event stream. A stream that ends because uvmmd
//! stopped is a failure (exit 1), never a silent success; with `--follow` the command
//! reconnects with back-off instead and tells the reader that events were missed.

use std::io::Write;
use std::time::Duration;
use uvmm_api::{Change, Event};
use uvmm_cli::client::{Client, ClientError, StreamEnd};

/// First wait before reconnecting; doubles up to `RECONNECT_MAX`.
const RECONNECT_MIN: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// One line per event for people.
pub fn event_line(e: &Event) -> String {
    let kind = serde_json::to_value(e.kind())
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let subject = match &e.change {
        Change::PoolAlert { pool, .. } | Change::PoolChanged { pool, .. } => {
            format!("pool {pool}@{}", e.host_id)
        }
        Change::TaskProgress { task } | Change::TaskDone { task } => {
            format!("task {} {}@{}", task.id, task.target, e.host_id)
        }
        // Who did what, and how it ended (the whole record is in the JSON output).
        Change::Audit { record } => {
            let who = &record["who"];
            let who = who["user"]
                .as_str()
                .or_else(|| who["token"].as_str())
                .or_else(|| who["kind"].as_str())
                .unwrap_or("?");
            format!(
                "{who} {} {}",
                record["what"]["operation"].as_str().unwrap_or("?"),
                record["result"]["status"]
            )
        }
        _ => match e.vm() {
            Some((_, name)) => format!("{name}@{}", e.host_id),
            None => e.host_id.clone(),
        },
    };
    let mut line = format!("{} {:<16} {}", e.time, kind, subject);
    match &e.change {
        Change::VmState { vm, previous_state } | Change::VmChanged { vm, previous_state }
            if *previous_state != vm.state =>
        {
            line.push_str(&format!(" {previous_state} -> {}", vm.state))
        }
        Change::VmAdded { vm } | Change::VmState { vm, .. } | Change::VmChanged { vm, .. } => {
            line.push_str(&format!(" {}", vm.state))
        }
        Change::VmRemoved { state, .. } => line.push_str(&format!(" {state}")),
        // Pool alerts carry their new level (ok, warning, critical).
        Change::PoolAlert { level, .. } => line.push_str(&format!(" {}", level.as_str())),
        Change::TaskProgress { task } | Change::TaskDone { task } => {
            line.push_str(&format!(" {}", crate::task_cmd::progress_words(task)))
        }
        _ => {}
    }
    match &e.change {
        Change::DirectoryState { online, message } => line.push_str(&format!(
            " {} ({message})",
            if *online { "online" } else { "degraded" }
        )),
        Change::HostUnavailable { message }
        | Change::PoolAlert { message, .. }
        | Change::PoolChanged { message, .. } => line.push_str(&format!(" ({message})")),
        _ => {}
    }
    line
}

/// Whether the stream that ended had been open.
enum Lost {
    Open,
    NotOpen,
}

/// What a reader is told when events may have been missed (JSON: one object, like the
/// daemon's own `resync` notice).
fn missed_notice(json: bool, why: &str) -> String {
    if json {
        serde_json::json!({ "kind": "resync", "reason": why }).to_string()
    } else {
        format!("resync: {why}: events in between were missed; reload what you show")
    }
}

pub async fn run(
    c: &Client,
    json: bool,
    count: Option<usize>,
    follow: bool,
) -> Result<(), ClientError> {
    let mut seen = 0usize;
    let mut delay = RECONNECT_MIN;
    loop {
        let mut got_any = false;
        let result = c
            .stream_events(&uvmm_cli::paths::events(), |data| {
                got_any = true;
                match serde_json::from_str::<Event>(data) {
                    Ok(e) if json => {
                        println!("{}", serde_json::to_string(&e).unwrap_or_default())
                    }
                    Ok(e) => println!("{}", event_line(&e)),
                    // resync notices are not full events; pass them on as they are.
                    Err(_) => println!("{data}"),
                }
                let _ = std::io::stdout().flush();
                seen += 1;
                count.is_none_or(|n| seen < n)
            })
            .await;
        let (result_kind, why) = match result {
            Ok(StreamEnd::Stopped) => return Ok(()),
            Ok(StreamEnd::Closed) => (
                Lost::Open,
                "uvmmd closed the event stream (it stopped or restarted)".to_string(),
            ),
            Err(e @ (ClientError::Connect { .. } | ClientError::Http(_))) => {
                if !follow {
                    return Err(e);
                }
                (Lost::NotOpen, e.to_string())
            }
            Err(e) => return Err(e),
        };
        if !follow {
            return Err(ClientError::Failed(format!(
                "{why}; use --follow to reconnect"
            )));
        }
        // A stream that was open and is gone: what happens until the reconnection is
        // lost, so the reader must reload (said once per loss, not per retry).
        if got_any || matches!(result_kind, Lost::Open) {
            delay = RECONNECT_MIN;
            println!(
                "{}",
                missed_notice(json, "the connection to uvmmd was lost")
            );
            let _ = std::io::stdout().flush();
        }
        eprintln!("uvmm: {why}; reconnecting in {:.1} s", delay.as_secs_f64());
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uvmm_api::{Level, VmState, VmSummary};

    fn ev(change: Change) -> Event {
        Event {
            seq: 1,
            time: "T".into(),
            host: "qemu:///system".into(),
            host_id: "kvm1".into(),
            available: Some(true),
            change,
        }
    }

    fn vm(name: &str, state: VmState) -> VmSummary {
        let mut v: VmSummary = serde_json::from_value(serde_json::json!({
            "name": name, "uuid": "4dea22b3-1d52-d8f3-2516-782e98ab3fa0",
            "host": "qemu:///system", "host_id": "kvm1", "state": "running",
            "reason": "booted", "suspended": false, "available": true, "persistent": true,
            "autostart": false, "memory_kib": 1024, "max_memory_kib": 1024, "vcpus": 1,
            "cpu_usage": 0.0, "vnc_port": null, "description": null, "os_type": "hvm",
            "domain_type": "kvm"
        }))
        .unwrap();
        v.state = state;
        v
    }

    #[test]
    fn event_lines() {
        let alert = |level, message: &str| Change::PoolAlert {
            pool: "default".into(),
            level,
            message: message.into(),
        };
        let table = [
            (
                ev(alert(Level::Critical, "92.0% used")),
                "T pool_alert       pool default@kvm1 critical (92.0% used)",
            ),
            (
                ev(alert(Level::Ok, "back within thresholds")),
                "T pool_alert       pool default@kvm1 ok (back within thresholds)",
            ),
            (
                ev(Change::VmState {
                    vm: vm("web", VmState::Running),
                    previous_state: VmState::Shutoff,
                }),
                "T vm_state         web@kvm1 shutoff -> running",
            ),
            (
                ev(Change::PoolChanged {
                    pool: "iso".into(),
                    level: Level::Ok,
                    message: "pool added".into(),
                }),
                "T pool_changed     pool iso@kvm1 (pool added)",
            ),
            (ev(Change::HostConnected), "T host_connected   kvm1"),
        ];
        for (e, want) in table {
            assert_eq!(event_line(&e), want);
        }
    }
}
