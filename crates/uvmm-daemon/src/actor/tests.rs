use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::TryRecvError;

fn runtime(core: usize, max: usize) -> Runtime {
    Runtime::new(PoolConfig {
        name: "actor test",
        core,
        max,
        stall: Duration::from_millis(50),
        idle_exit: Duration::from_millis(200),
    })
    .unwrap()
}

enum Msg {
    /// Record this number.
    Num(u32),
    /// Block until the receiver gets something.
    Block(mpsc::Receiver<()>),
    Stop,
}

/// Records what it receives, in order, and reports each to `seen`.
struct Recorder {
    rx: mpsc::Receiver<Msg>,
    id: usize,
    got: Vec<u32>,
    seen: mpsc::Sender<(usize, u32)>,
    running: Arc<AtomicUsize>,
}

impl Actor for Recorder {
    fn step(&mut self) -> Next {
        // Never on two threads at once.
        assert_eq!(self.running.fetch_add(1, Ordering::SeqCst), 0);
        let mut next = Next::More;
        for _ in 0..8 {
            match self.rx.try_recv() {
                Ok(Msg::Num(n)) => {
                    if let Some(last) = self.got.last() {
                        assert!(n > *last, "{n} after {last}");
                    }
                    self.got.push(n);
                    let _ = self.seen.send((self.id, n));
                }
                Ok(Msg::Block(r)) => {
                    let _ = r.recv();
                }
                Ok(Msg::Stop) | Err(TryRecvError::Disconnected) => {
                    next = Next::Done;
                    break;
                }
                Err(TryRecvError::Empty) => {
                    next = Next::Wait(None);
                    break;
                }
            }
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        next
    }
}

fn recorders(rt: &Runtime, n: usize) -> (Vec<Mailbox<Msg>>, mpsc::Receiver<(usize, u32)>) {
    let (seen, seen_rx) = mpsc::channel();
    let boxes = (0..n)
        .map(|id| {
            let (mb, rx) = rt.mailbox();
            rt.start(
                &mb,
                Box::new(Recorder {
                    rx,
                    id,
                    got: vec![],
                    seen: seen.clone(),
                    running: Arc::new(AtomicUsize::new(0)),
                }),
            );
            mb
        })
        .collect();
    (boxes, seen_rx)
}

#[test]
fn a_thousand_actors_on_a_few_threads_keep_their_order() {
    let rt = runtime(4, 64);
    let (boxes, seen) = recorders(&rt, 1_000);
    // Senders on several threads, each actor's numbers increasing.
    let boxes = Arc::new(boxes);
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let boxes = boxes.clone();
            std::thread::spawn(move || {
                for round in 0..20u32 {
                    for (i, mb) in boxes.iter().enumerate() {
                        if i % 4 == t {
                            mb.send(Msg::Num(round)).unwrap_or_else(|_| panic!("ended"));
                        }
                    }
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let mut count = vec![0u32; 1_000];
    for _ in 0..20_000 {
        let (id, n) = seen.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(n, count[id], "actor {id} out of order");
        count[id] += 1;
    }
    let stats = rt.pool_stats();
    assert!(stats.peak <= 16, "{stats:?}");
    for mb in boxes.iter() {
        mb.send(Msg::Stop).unwrap_or_else(|_| panic!("ended"));
    }
}

#[test]
fn a_blocked_actor_does_not_block_the_others() {
    let rt = runtime(2, 32);
    let (boxes, seen) = recorders(&rt, 10);
    // Actors 0..3 hang (more than the core threads).
    let mut releases = vec![];
    for mb in &boxes[..3] {
        let (tx, rx) = mpsc::channel();
        releases.push(tx);
        mb.send(Msg::Block(rx)).unwrap_or_else(|_| panic!("ended"));
    }
    // Behind the hang, the hung actors' own messages wait; the others' do not.
    for mb in &boxes {
        mb.send(Msg::Num(1)).unwrap_or_else(|_| panic!("ended"));
    }
    let mut got = std::collections::BTreeSet::new();
    while got.len() < 7 {
        let (id, _) = seen
            .recv_timeout(Duration::from_secs(10))
            .expect("the free actors ran");
        assert!(id >= 3, "a hung actor ran a message");
        got.insert(id);
    }
    assert!(rt.pool_stats().threads > 3);
    for r in releases {
        r.send(()).unwrap();
    }
    for _ in 0..3 {
        let (id, _) = seen.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(id < 3);
    }
}

/// Counts its steps; wants to run again `every` after each.
struct Ticker {
    rx: mpsc::Receiver<()>,
    every: Option<Duration>,
    steps: Arc<AtomicUsize>,
}

impl Actor for Ticker {
    fn step(&mut self) -> Next {
        while self.rx.try_recv().is_ok() {}
        self.steps.fetch_add(1, Ordering::SeqCst);
        Next::Wait(self.every.map(|d| Instant::now() + d))
    }
}

#[test]
fn the_timer_wakes_actors_and_an_idle_actor_costs_no_wakeups() {
    let rt = runtime(2, 4);
    let (ticking, idle) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (mb, rx) = rt.mailbox::<()>();
    rt.start(
        &mb,
        Box::new(Ticker {
            rx,
            every: Some(Duration::from_millis(100)),
            steps: ticking.clone(),
        }),
    );
    let (quiet, rx) = rt.mailbox::<()>();
    rt.start(
        &quiet,
        Box::new(Ticker {
            rx,
            every: None,
            steps: idle.clone(),
        }),
    );
    std::thread::sleep(Duration::from_millis(1_050));
    let ticks = ticking.load(Ordering::SeqCst);
    // About ten; the machine may be loaded, so only roughly.
    assert!((5..=12).contains(&ticks), "{ticks}");
    assert_eq!(
        idle.load(Ordering::SeqCst),
        1,
        "an idle actor ran without cause"
    );
    quiet.wake();
    let until = Instant::now() + Duration::from_secs(10);
    while idle.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < until, "a wake did not run the actor");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn deadlines_of_many_actors_fall_together() {
    let rt = runtime(2, 4);
    let t = Instant::now();
    let rounded: std::collections::BTreeSet<Instant> = (0..1_000u64)
        .map(|i| rt.timer().round(t + Duration::from_micros(i * 20)))
        .collect();
    // 20 ms of deadlines land on at most two granules, never before the deadline.
    assert!(rounded.len() <= 2, "{}", rounded.len());
    for i in 0..1_000u64 {
        let at = t + Duration::from_micros(i * 20);
        let r = rt.timer().round(at);
        assert!(r >= at && r < at + timer::GRANULE);
    }
}

#[test]
fn many_wakes_while_running_run_the_actor_again_once_they_are_handled() {
    let rt = runtime(2, 4);
    let steps = Arc::new(AtomicUsize::new(0));
    let (mb, rx) = rt.mailbox::<()>();
    rt.start(
        &mb,
        Box::new(Ticker {
            rx,
            every: None,
            steps: steps.clone(),
        }),
    );
    for _ in 0..10_000 {
        mb.send(()).unwrap_or_else(|_| panic!("ended"));
    }
    std::thread::sleep(Duration::from_millis(300));
    let n = steps.load(Ordering::SeqCst);
    // Coalesced: far fewer steps than messages, and the last message was seen.
    assert!((1..10_000).contains(&n), "{n}");
    let before = steps.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(steps.load(Ordering::SeqCst), before, "ran without cause");
}
