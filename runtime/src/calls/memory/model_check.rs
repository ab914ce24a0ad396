//! Model-checked concurrency tests of the in-process store, under the shuttle model
//! checker (`RUSTFLAGS="--cfg shuttle" cargo test -p intercall --lib model_check`;
//! docs/RELIABILITY.md). Under `--cfg shuttle` the store's locks and atomics (and so
//! its manual clock) are shuttle's (`sync.rs`), so shuttle decides at every lock and
//! clock step which task goes next, and explores those schedules.
//!
//! Each scenario runs a few tasks that claim, wait for, complete and release calls,
//! move the clock past the time to live and fill the store past its capacity and byte
//! budget, and logs what every operation answered. A schedule passes when there is an
//! order of all the logged operations, keeping each task's own order, in which the
//! plain reference model of the property tests (`proptests::Model`) gives every
//! answer the store gave: a wait that found a running call gets exactly what that run
//! ended with (its reply, or nothing if it was released). A waiter that is never woken
//! leaves every task blocked, which shuttle reports as a deadlock.

use std::collections::HashMap;
use std::sync::Arc;

use super::proptests::{Answer, Model, TTL_MS, answer, body, call};
use super::*;

/// One operation a task made.
#[derive(Debug, Clone, Copy)]
enum Op {
    Claim {
        key: u128,
        fingerprint: u128,
    },
    /// Completes the task's latest claim with a reply of `len` bytes.
    Complete {
        len: usize,
    },
    /// Releases the task's latest claim.
    Release,
    Wait {
        key: u128,
        fingerprint: u128,
    },
    Advance {
        ms: u64,
    },
}

/// What the store answered: a claim's answer, what a wait got (a reply's length,
/// `Some(None)` for the stand-in of a reply too large to keep), or nothing to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    Claim(Answer),
    Wait(Option<Option<usize>>),
    Done,
}

/// An operation, its answer, and when it started and ended on a clock shared by the
/// tasks (one tick per event, in the schedule's order).
#[derive(Debug, Clone, Copy)]
struct Entry {
    op: Op,
    got: Got,
    start: u64,
    end: u64,
}

type Log = Vec<Entry>;

/// The shared event clock: shuttle runs one task at a time, so its order is the
/// schedule's.
static TICKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn tick() -> u64 {
    TICKS.fetch_add(1, Ordering::SeqCst)
}

/// A task's view of the store: it runs operations and logs their answers.
struct Task {
    store: Arc<MemoryCallStore>,
    ticket: Option<(u128, Ticket)>,
    log: Log,
    /// When the operation in progress started.
    started: u64,
}

impl Task {
    fn new(store: &Arc<MemoryCallStore>) -> Self {
        Self { store: Arc::clone(store), ticket: None, log: Vec::new(), started: 0 }
    }

    fn begin(&mut self) {
        self.started = tick();
    }

    fn record(&mut self, op: Op, got: Got) {
        self.log.push(Entry { op, got, start: self.started, end: tick() });
    }

    async fn claim(&mut self, key: u128, fingerprint: u128) -> Answer {
        self.begin();
        let claim = self.store.claim(&call(key), fingerprint).await.expect("in memory");
        let got = answer(&claim);
        if let Claim::Run(ticket) = claim {
            self.ticket = Some((key, ticket));
        }
        self.record(Op::Claim { key, fingerprint }, Got::Claim(got));
        got
    }

    async fn complete(&mut self, len: usize) {
        self.begin();
        let (key, ticket) = self.ticket.take().expect("a claim to complete");
        let reply = StoredReply { status: 200, body: body(len) };
        self.store.complete(&call(key), ticket, reply).await.expect("in memory");
        self.record(Op::Complete { len }, Got::Done);
    }

    async fn release(&mut self) {
        self.begin();
        let (key, ticket) = self.ticket.take().expect("a claim to release");
        self.store.release(&call(key), ticket).await.expect("in memory");
        self.record(Op::Release, Got::Done);
    }

    async fn wait(&mut self, key: u128, fingerprint: u128) -> Option<Option<usize>> {
        self.begin();
        let reply = self.store.wait(&call(key), fingerprint, None).await.expect("in memory");
        let got = reply.map(|reply| (reply != not_kept()).then_some(reply.body.len()));
        self.record(Op::Wait { key, fingerprint }, Got::Wait(got));
        got
    }

    fn advance(&mut self, ms: u64) {
        self.begin();
        self.store.advance(Duration::from_millis(ms));
        self.record(Op::Advance { ms }, Got::Done);
    }

    /// The task's log, once it has given up any claim it still holds (a trailing claim
    /// that ran: its owner must finish it, or its waiters would wait for ever).
    async fn end(mut self) -> Log {
        if self.ticket.is_some() {
            self.release().await;
        }
        self.log
    }

    /// A client's call: claim; run and complete (`len`) or release (`None`); or wait
    /// for the run that has the claim, and claim once more if it ended without a reply.
    async fn call(&mut self, key: u128, fingerprint: u128, len: Option<usize>) {
        for _ in 0..2 {
            match self.claim(key, fingerprint).await {
                Answer::Run => {
                    return match len {
                        Some(len) => self.complete(len).await,
                        None => self.release().await,
                    };
                }
                Answer::Running if self.wait(key, fingerprint).await.is_none() => continue,
                _ => return,
            }
        }
    }
}

/// Runs `tasks` on one store under shuttle and checks their logs against the model.
fn scenario(capacity: u64, max_bytes: u64, tasks: Vec<fn(Task) -> BoxedTask>) {
    let store = Arc::new(
        MemoryCallStore::new(capacity, Duration::from_millis(TTL_MS)).with_max_bytes(max_bytes).with_manual_clock(),
    );
    let handles: Vec<_> = tasks.into_iter().map(|task| shuttle::future::spawn(task(Task::new(&store)))).collect();
    let logs: Vec<Log> = shuttle::future::block_on(async {
        let mut logs = Vec::new();
        for handle in handles {
            logs.push(handle.await.expect("a task finished"));
        }
        logs
    });
    let model = Model::new(capacity as usize, max_bytes as usize);
    assert!(Replay::new(&logs).explains(model), "no order of these operations gives the model's answers:\n{logs:#?}");
}

type BoxedTask = std::pin::Pin<Box<dyn std::future::Future<Output = Log> + Send>>;

/// A search for an order of the logged operations that the model agrees with.
struct Replay<'a> {
    logs: &'a [Log],
}

/// The search's state along one order.
#[derive(Clone)]
struct Path {
    model: Model,
    at: Vec<usize>,
    /// Each task's latest claim, as the model's token.
    tokens: Vec<Option<(u128, u64)>>,
    /// How each finished run ended: its reply's length, or `None` (released).
    ended: HashMap<u64, Option<usize>>,
    /// Waits that found a run: (its token, what the wait got).
    pending: Vec<(u64, Option<Option<usize>>)>,
    /// A task whose wait found a run returned only after that run ended: its next
    /// operation comes after the run's completion or release.
    blocked: Vec<Option<u64>>,
}

impl<'a> Replay<'a> {
    fn new(logs: &'a [Log]) -> Self {
        Self { logs }
    }

    fn explains(&self, model: Model) -> bool {
        let tasks = self.logs.len();
        let path = Path {
            model,
            at: vec![0; tasks],
            tokens: vec![None; tasks],
            ended: HashMap::new(),
            pending: Vec::new(),
            blocked: vec![None; tasks],
        };
        self.search(path)
    }

    fn search(&self, path: Path) -> bool {
        if (0..self.logs.len()).all(|task| path.at[task] == self.logs[task].len()) {
            // A wait that found a run got what that run ended with.
            return path.pending.iter().all(|(token, got)| match path.ended.get(token) {
                Some(Some(len)) => *got == Some(Some(*len)),
                Some(None) => got.is_none(),
                None => false,
            });
        }
        (0..self.logs.len()).filter(|&task| self.may_go(&path, task)).any(|task| {
            let mut next = path.clone();
            self.step(&mut next, task) && self.search(next)
        })
    }

    /// Whether the task's next operation may come next: it has one, no operation that
    /// ended before it started is still to come (real-time order), and it is not
    /// waiting for a run's end.
    fn may_go(&self, path: &Path, task: usize) -> bool {
        let Some(next) = self.logs[task].get(path.at[task]) else { return false };
        let unblocked = path.blocked[task].is_none_or(|token| path.ended.contains_key(&token));
        let earlier = |other: usize| self.logs[other][path.at[other]..].first().is_some_and(|e| e.end < next.start);
        unblocked && !(0..self.logs.len()).any(earlier)
    }

    /// Applies the task's next operation to the model; false if it answers otherwise.
    fn step(&self, path: &mut Path, task: usize) -> bool {
        let Entry { op, got, .. } = self.logs[task][path.at[task]];
        path.at[task] += 1;
        path.blocked[task] = None;
        let model = &mut path.model;
        match op {
            Op::Claim { key, fingerprint } => {
                let (expected, token) = model.claim(key, fingerprint);
                if let Some(token) = token {
                    path.tokens[task] = Some((key, token));
                }
                got == Got::Claim(expected)
            }
            Op::Complete { .. } | Op::Release => {
                let (key, token) = path.tokens[task].take().expect("logged after a run");
                let len = match op {
                    Op::Complete { len } => Some(len),
                    _ => None,
                };
                model.finish(key, token, len);
                path.ended.insert(token, len);
                true
            }
            Op::Wait { key, fingerprint } => {
                model.expire();
                if let Some(&(theirs, kept, _)) = model.done.get(&key) {
                    return got == Got::Wait((theirs == fingerprint).then_some(kept));
                }
                match model.running.get(&key) {
                    Some(&(theirs, _, token)) if theirs == fingerprint => {
                        let Got::Wait(got) = got else { return false };
                        path.pending.push((token, got));
                        path.blocked[task] = Some(token);
                        true
                    }
                    _ => got == Got::Wait(None),
                }
            }
            Op::Advance { ms } => {
                model.now += ms;
                true
            }
        }
    }
}

/// How many schedules each scenario explores: random ones, and PCT ones (schedules
/// with a few forced preemptions, where concurrency bugs of small depth show).
const RANDOM_SCHEDULES: usize = 3_000;
const PCT_SCHEDULES: usize = 3_000;

fn check(test: impl Fn() + Send + Sync + 'static) {
    let test = Arc::new(test);
    let random = Arc::clone(&test);
    shuttle::check_random(move || random(), RANDOM_SCHEDULES);
    shuttle::check_pct(move || test(), PCT_SCHEDULES, 3);
}

/// Three duplicates of one call at once: exactly one runs, the others wait and get
/// its reply; a duplicate after it is a replay.
#[test]
fn one_call_runs_once_and_its_duplicates_get_its_reply() {
    check(|| {
        scenario(
            4,
            64,
            vec![
                |mut t| {
                    Box::pin(async move {
                        t.call(1, 1, Some(4)).await;
                        t.end().await
                    })
                },
                |mut t| {
                    Box::pin(async move {
                        t.call(1, 1, Some(4)).await;
                        t.claim(1, 1).await;
                        t.end().await
                    })
                },
                |mut t| {
                    Box::pin(async move {
                        t.call(1, 1, Some(4)).await;
                        t.end().await
                    })
                },
            ],
        )
    });
}

/// A run that is released wakes its waiters with nothing, and the call can run again;
/// a waiter never sees the released run's (absent) reply as a result.
#[test]
fn a_released_run_wakes_its_waiters_and_frees_the_call() {
    check(|| {
        scenario(
            4,
            64,
            vec![
                |mut t| {
                    Box::pin(async move {
                        t.call(1, 1, None).await;
                        t.end().await
                    })
                },
                |mut t| {
                    Box::pin(async move {
                        t.call(1, 1, Some(4)).await;
                        t.end().await
                    })
                },
                |mut t| {
                    Box::pin(async move {
                        t.wait(1, 1).await;
                        t.end().await
                    })
                },
            ],
        )
    });
}

/// Expiry, eviction and the byte budget racing claims and waits: a one-call store, a
/// reply over the budget (kept as run, without its body), the clock moved past the
/// time to live, and a call id reused with another body.
#[test]
fn expiry_and_eviction_race_claims_and_waits_as_the_model_says() {
    check(|| {
        scenario(
            1,
            64,
            vec![
                |mut t| {
                    Box::pin(async move {
                        t.call(1, 1, Some(4)).await;
                        t.claim(1, 1).await;
                        t.end().await
                    })
                },
                |mut t| {
                    Box::pin(async move {
                        t.call(2, 1, Some(80)).await;
                        t.wait(1, 1).await;
                        t.end().await
                    })
                },
                |mut t| {
                    Box::pin(async move {
                        t.advance(TTL_MS);
                        t.call(1, 2, Some(8)).await;
                        t.end().await
                    })
                },
            ],
        )
    });
}

/// A claim that outlives the time to live can be claimed again while its run goes on:
/// the stale run's completion stores nothing, but still wakes the waiters of its run.
#[test]
fn a_run_that_outlives_its_claim_cannot_overwrite_the_new_one() {
    check(|| {
        scenario(
            4,
            64,
            vec![
                |mut t| {
                    Box::pin(async move {
                        t.call(1, 1, Some(4)).await;
                        t.end().await
                    })
                },
                |mut t| {
                    Box::pin(async move {
                        t.wait(1, 1).await;
                        t.advance(TTL_MS);
                        t.call(1, 1, Some(6)).await;
                        t.end().await
                    })
                },
                |mut t| {
                    Box::pin(async move {
                        t.wait(1, 1).await;
                        t.claim(1, 1).await;
                        t.end().await
                    })
                },
            ],
        )
    });
}

/// A claim older than the time to live can be claimed again while its run goes on;
/// the first run's late completion stores nothing over the second.
#[test]
fn a_claim_past_its_time_to_live_can_be_claimed_again() {
    check(|| {
        scenario(
            4,
            64,
            vec![
                |mut t| {
                    Box::pin(async move {
                        if t.claim(1, 1).await == Answer::Run {
                            t.advance(TTL_MS);
                            t.complete(4).await;
                        }
                        t.end().await
                    })
                },
                |mut t| {
                    Box::pin(async move {
                        t.call(1, 1, Some(6)).await;
                        t.end().await
                    })
                },
                |mut t| {
                    Box::pin(async move {
                        t.wait(1, 1).await;
                        t.claim(1, 1).await;
                        t.end().await
                    })
                },
            ],
        )
    });
}

/// The checker itself: a log the model cannot explain is refused.
#[test]
fn the_replay_refuses_an_answer_the_model_never_gives() {
    let run = Entry { op: Op::Claim { key: 1, fingerprint: 1 }, got: Got::Claim(Answer::Run), start: 0, end: 1 };
    let logs = vec![vec![run], vec![Entry { start: 2, end: 3, ..run }]];
    assert!(!Replay::new(&logs).explains(Model::new(4, 64)), "two runs of one call");
}
