//! `uvmm events`: follow the daemon's event stream. A stream that ends because uvmmd
//! stopped is a failure (exit 1), never a silent success; with `--follow` the command
//! reconnects with back-off instead and tells the reader that events were missed.

use std::io::Write;
use std::time::Duration;
use uvmm_api::Event;
use uvmm_cli::client::{Client, ClientError, StreamEnd};

/// First wait before reconnecting; doubles up to `RECONNECT_MAX`.
const RECONNECT_MIN: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// One line per event for people.
pub fn event_line(e: &Event) -> String {
    let kind = serde_json::to_value(e.kind)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let subject = match (&e.name, &e.pool) {
        (Some(n), _) => format!("{n}@{}", e.host_id),
        (None, Some(p)) => format!("pool {p}@{}", e.host_id),
        (None, None) => e.host_id.clone(),
    };
    let mut line = format!("{} {:<16} {}", e.time, kind, subject);
    match (e.previous_state, e.state) {
        (Some(p), Some(s)) if p != s => line.push_str(&format!(" {p} -> {s}")),
        (_, Some(s)) => line.push_str(&format!(" {s}")),
        _ => {}
    }
    // Pool alerts carry their new level (ok, warning, critical).
    if let (Some(level), uvmm_api::EventKind::PoolAlert) = (e.level, e.kind) {
        line.push_str(&format!(" {}", level.as_str()));
    }
    if let Some(m) = &e.message {
        line.push_str(&format!(" ({m})"));
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
            .stream_events("/api/v1/events", |data| {
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
    use uvmm_api::{EventKind, Level, VmState};

    fn ev(kind: EventKind) -> Event {
        Event {
            seq: 1,
            time: "T".into(),
            kind,
            host: "qemu:///system".into(),
            host_id: "kvm1".into(),
            uuid: None,
            name: None,
            state: None,
            previous_state: None,
            available: Some(true),
            message: None,
            vm: None,
            pool: None,
            level: None,
        }
    }

    #[test]
    fn event_lines() {
        let mut alert = ev(EventKind::PoolAlert);
        alert.pool = Some("default".into());
        alert.level = Some(Level::Critical);
        alert.message = Some("92.0% used".into());
        let mut back = alert.clone();
        back.level = Some(Level::Ok);
        back.message = Some("back within thresholds".into());
        let mut started = ev(EventKind::VmState);
        started.name = Some("web".into());
        started.previous_state = Some(VmState::Shutoff);
        started.state = Some(VmState::Running);
        let mut pool_added = ev(EventKind::PoolChanged);
        pool_added.pool = Some("iso".into());
        pool_added.level = Some(Level::Ok);
        pool_added.message = Some("pool added".into());
        let table = [
            (
                alert,
                "T pool_alert       pool default@kvm1 critical (92.0% used)",
            ),
            (
                back,
                "T pool_alert       pool default@kvm1 ok (back within thresholds)",
            ),
            (started, "T vm_state         web@kvm1 shutoff -> running"),
            (pool_added, "T pool_changed     pool iso@kvm1 (pool added)"),
            (ev(EventKind::HostConnected), "T host_connected   kvm1"),
        ];
        for (e, want) in table {
            assert_eq!(event_line(&e), want);
        }
    }
}
