//! Fan-out of change events to every `/api/v1/events` subscriber.

use crate::cache::rfc3339;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::broadcast;
use uvmm_api::Event;

/// Events a subscriber may fall behind before it is told to resynchronise. Large enough
/// for the VmAdded burst of a full resync of a big host.
const CAPACITY: usize = 65_536;

pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    seq: AtomicU64,
}

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        EventBus {
            tx,
            seq: AtomicU64::new(0),
        }
    }
}

impl EventBus {
    /// Number and stamp the events and send them. Callers publish while holding the cache
    /// lock, so sequence numbers follow the order of cache changes.
    pub fn publish(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let time = rfc3339(SystemTime::now());
        for mut e in events {
            e.seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
            e.time = time.clone();
            tracing::debug!(seq = e.seq, kind = ?e.kind(), host = %e.host, vm = ?e.vm(), "event");
            // No subscriber is fine.
            let _ = self.tx.send(Arc::new(e));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Open event streams (each `/api/v1/events` client holds one receiver).
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    pub fn last_seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }
}
