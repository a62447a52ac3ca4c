//! The event stream (Server-Sent Events).

use super::AppState;
use crate::caller::Caller;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use std::convert::Infallible;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use uvmm_api::*;

fn sse_of(ev: &Event) -> SseEvent {
    let kind = serde_json::to_value(ev.kind())
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    SseEvent::default()
        .event(kind)
        .id(ev.seq.to_string())
        .json_data(ev)
        .unwrap_or_else(|_| SseEvent::default().comment("unserialisable event"))
}

/// Server-Sent Events: one `data:` JSON object per change (see `Event`).
#[utoipa::path(get, path = "/api/v1/events",
    responses((status = 200, content_type = "text/event-stream", body = EventWire)))]
pub(super) async fn events(
    State(s): State<AppState>,
    caller: Caller,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = s.ops.shared.bus.subscribe();
    let all = caller.unrestricted(uvmm_auth::Permission::Read);
    // Audit records name users, addresses and refused attempts: admins only, as the
    // audit log itself.
    let audit = caller.unrestricted(uvmm_auth::Permission::Audit);
    let mut shutdown = s.shutdown.clone();
    let shared = s.ops.shared.clone();
    let hello = stream::once(async { Ok(SseEvent::default().comment("subscribed")) });
    // Only what the caller may see. `seq` counts the events of all callers, so a scoped
    // caller sees gaps where others' events were: a gap is not a lost event (only a
    // `resync` event says that).
    let changes = BroadcastStream::new(rx)
        .filter(move |item| {
            let keep = match item {
                Ok(ev) if ev.kind() == EventKind::Audit => audit,
                Ok(ev) if !all => sees(&caller, &shared, ev),
                _ => true,
            };
            std::future::ready(keep)
        })
        .map(|item| {
            Ok(match item {
                Ok(ev) => sse_of(&ev),
                Err(BroadcastStreamRecvError::Lagged(n)) => SseEvent::default()
                    .event("resync")
                    .json_data(ResyncNotice {
                        kind: EventKind::Resync,
                        missed: n,
                    })
                    .unwrap_or_else(|_| SseEvent::default().comment("unserialisable event")),
            })
        });
    let stream = hello.chain(changes).take_until(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Whether a caller with a limited scope sees an event: VM events by the VM, task events
/// as the task list shows tasks (by the task's VM, or host), the rest by the host.
fn sees(caller: &Caller, shared: &crate::hosts::shared::Shared, ev: &Event) -> bool {
    let vm = match &ev.change {
        Change::TaskProgress { task } | Change::TaskDone { task } => {
            return super::tasks::task_visible(caller, &shared.read(), task)
        }
        _ => ev.vm().map(|(_, name)| name),
    };
    caller.sees(&ev.host_id, &ev.host, vm)
}
