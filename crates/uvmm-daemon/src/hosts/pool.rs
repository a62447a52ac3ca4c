//! The bounded pool for backup I/O: the backup check every host does after (re)connecting
//! runs here instead of on a thread per host. With 2,500 hosts connecting at start a
//! thread each meant 2,500 threads competing for two cores and one disk; a few threads
//! keep the disk busy and the number of threads independent of the number of hosts.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

type Task = Box<dyn FnOnce() + Send + 'static>;

/// Threads of the pool: enough to overlap libvirt round trips to remote hosts with disk
/// writes, few enough to stay out of the way of the host workers.
pub const THREADS: usize = 8;

struct Pool {
    tx: Mutex<Sender<Task>>,
}

fn pool() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..THREADS {
            let rx = rx.clone();
            match std::thread::Builder::new()
                .name(format!("backup io {i}"))
                .spawn(move || serve(&rx))
            {
                Ok(_) => started += 1,
                Err(e) => tracing::error!("cannot start a backup I/O thread: {e}"),
            }
        }
        (started > 0).then(|| Pool { tx: Mutex::new(tx) })
    })
    .as_ref()
}

fn serve(rx: &Mutex<Receiver<Task>>) {
    loop {
        // The lock is held only while waiting for the next task, not while running it.
        let task = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        match task {
            Ok(task) => task(),
            Err(_) => return,
        }
    }
}

/// Queue `task` on the pool; `Err` gives it back when no pool thread could be started.
pub fn submit(task: Task) -> Result<(), Task> {
    let Some(pool) = pool() else {
        return Err(task);
    };
    pool.tx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(task)
        .map_err(|e| e.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn many_tasks_run_on_few_threads() {
        let names = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = channel();
        for _ in 0..200 {
            let (names, done, tx) = (names.clone(), done.clone(), tx.clone());
            submit(Box::new(move || {
                let name = std::thread::current().name().unwrap_or("").to_string();
                names.lock().unwrap().insert(name);
                done.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(());
            }))
            .unwrap_or_else(|_| panic!("no pool"));
        }
        for _ in 0..200 {
            rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 200);
        let names = names.lock().unwrap();
        assert!(names.len() <= THREADS, "{names:?}");
        assert!(
            names.iter().all(|n| n.starts_with("backup io ")),
            "{names:?}"
        );
    }
}
