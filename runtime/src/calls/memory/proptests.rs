//! Property tests of the in-process store: any sequence of claims, completions,
//! releases and clock steps gets the answers a plain reference model gives, and the
//! store never holds more completed calls or more bytes of bodies than its bounds.

use std::collections::{HashMap, VecDeque};

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

/// The time to live of the modelled store, in the manual clock's milliseconds.
pub(super) const TTL_MS: u64 = 100;

#[derive(Debug, Clone)]
enum Op {
    Claim { key: u128, fingerprint: u128 },
    Complete { ticket: Index, len: usize },
    Release { ticket: Index },
    Advance { ms: u64 },
}

fn ops(keys: u128, max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => (0..keys, 0..2u128).prop_map(|(key, fingerprint)| Op::Claim { key, fingerprint }),
        3 => (any::<Index>(), 0..=max_len).prop_map(|(ticket, len)| Op::Complete { ticket, len }),
        1 => any::<Index>().prop_map(|ticket| Op::Release { ticket }),
        1 => (1..TTL_MS * 3 / 2).prop_map(|ms| Op::Advance { ms }),
    ];
    prop::collection::vec(op, 1..80)
}

/// A claim's answer, comparable across the store and the model: a stored reply by
/// its length, `None` for the stand-in of a reply too large to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    Run,
    Running,
    Done(Option<usize>),
    Mismatch,
}

/// The store's rules, written as plainly as possible: one shard, a map per state, the
/// completed calls in completion order.
#[derive(Clone)]
pub(super) struct Model {
    capacity: usize,
    max_bytes: usize,
    pub(super) now: u64,
    next_token: u64,
    /// key -> (fingerprint, claimed at, token)
    pub(super) running: HashMap<u128, (u128, u64, u64)>,
    /// key -> (fingerprint, kept body length, token)
    pub(super) done: HashMap<u128, (u128, Option<usize>, u64)>,
    /// (key, token, expires at), oldest first
    order: VecDeque<(u128, u64, u64)>,
}

impl Model {
    pub(super) fn new(capacity: usize, max_bytes: usize) -> Self {
        let (running, done, order) = (HashMap::new(), HashMap::new(), VecDeque::new());
        Self { capacity, max_bytes, now: 0, next_token: 0, running, done, order }
    }

    pub(super) fn bytes(&self) -> usize {
        self.done.values().filter_map(|(_, len, _)| *len).sum()
    }

    fn drop_oldest(&mut self) {
        if let Some((key, token, _)) = self.order.pop_front()
            && self.done.get(&key).is_some_and(|done| done.2 == token)
        {
            self.done.remove(&key);
        }
    }

    pub(super) fn expire(&mut self) {
        while self.order.front().is_some_and(|oldest| oldest.2 <= self.now) {
            self.drop_oldest();
        }
    }

    pub(super) fn claim(&mut self, key: u128, fingerprint: u128) -> (Answer, Option<u64>) {
        self.expire();
        if let Some(&(theirs, len, _)) = self.done.get(&key) {
            return (if theirs == fingerprint { Answer::Done(len) } else { Answer::Mismatch }, None);
        }
        match self.running.get(&key) {
            Some(&(theirs, claimed, _)) if self.now - claimed < TTL_MS => {
                (if theirs == fingerprint { Answer::Running } else { Answer::Mismatch }, None)
            }
            _ => {
                self.next_token += 1;
                self.running.insert(key, (fingerprint, self.now, self.next_token));
                (Answer::Run, Some(self.next_token))
            }
        }
    }

    pub(super) fn finish(&mut self, key: u128, token: u64, len: Option<usize>) {
        self.expire();
        let Some(&(fingerprint, _, current)) = self.running.get(&key) else { return };
        if current != token {
            return;
        }
        self.running.remove(&key);
        if let Some(len) = len {
            let kept = (len <= self.max_bytes).then_some(len);
            self.done.insert(key, (fingerprint, kept, token));
            self.order.push_back((key, token, self.now + TTL_MS));
            while (self.done.len() > self.capacity || self.bytes() > self.max_bytes) && self.order.len() > 1 {
                self.drop_oldest();
            }
        }
    }
}

pub(super) fn call(key: u128) -> CallKey {
    CallKey::new(uuid::Uuid::from_u128(key), "Model", "run", None)
}

/// `len` bytes without allocating them: the bounds count lengths, and the shared
/// static slice keeps large bodies cheap.
pub(super) fn body(len: usize) -> Bytes {
    static ZEROS: [u8; 4 << 20] = [0; 4 << 20];
    Bytes::from_static(&ZEROS[..len])
}

pub(super) fn answer(claim: &Claim) -> Answer {
    match claim {
        Claim::Run(_) => Answer::Run,
        Claim::Running => Answer::Running,
        Claim::Done(reply) if reply == &not_kept() => Answer::Done(None),
        Claim::Done(reply) => Answer::Done(Some(reply.body.len())),
        Claim::Mismatch => Answer::Mismatch,
    }
}

proptest! {
    /// One shard (a small capacity and budget): every answer is the model's, and the
    /// calls and bytes kept are the model's, within the bounds, after every step.
    #[test]
    fn the_store_answers_as_the_model_and_stays_within_its_bounds(
        capacity in 1..6usize,
        max_bytes in 1..64usize,
        ops in ops(6, 96),
    ) {
        let store = MemoryCallStore::new(capacity as u64, Duration::from_millis(TTL_MS))
            .with_max_bytes(max_bytes as u64)
            .with_manual_clock();
        prop_assert_eq!(store.shards.len(), 1);
        let mut model = Model::new(capacity, max_bytes);
        // (key, the store's ticket, the model's token)
        let mut tickets: Vec<(u128, Ticket, u64)> = Vec::new();
        for op in ops {
            match op {
                Op::Claim { key, fingerprint } => {
                    let claim = store.claim_now(&call(key), fingerprint);
                    let (expected, token) = model.claim(key, fingerprint);
                    prop_assert_eq!(answer(&claim), expected);
                    if let (Claim::Run(ticket), Some(token)) = (claim, token) {
                        tickets.push((key, ticket, token));
                    }
                }
                Op::Complete { ticket, len } if !tickets.is_empty() => {
                    let (key, ticket, token) = tickets[ticket.index(tickets.len())].clone();
                    store.finish(&call(key), &ticket, Some(StoredReply { status: 200, body: body(len) }));
                    model.finish(key, token, Some(len));
                }
                Op::Release { ticket } if !tickets.is_empty() => {
                    let (key, ticket, token) = tickets[ticket.index(tickets.len())].clone();
                    store.finish(&call(key), &ticket, None);
                    model.finish(key, token, None);
                }
                Op::Advance { ms } => {
                    store.advance(Duration::from_millis(ms));
                    model.now += ms;
                }
                Op::Complete { .. } | Op::Release { .. } => {}
            }
            model.expire();
            let (calls, bytes) = store.kept();
            prop_assert_eq!((calls, bytes), (model.done.len(), model.bytes()));
            prop_assert!(calls <= capacity && bytes <= max_bytes);
        }
    }

    /// Many shards, budgets from 1 to 80 MiB, replies up to 4 MiB: whatever completes,
    /// the bodies kept never add up to more than the budget.
    #[test]
    fn a_sharded_store_never_holds_more_bytes_than_its_budget(
        max_bytes in (1u64 << 20)..(80 << 20),
        lens in prop::collection::vec(0..(4usize << 20), 1..400),
    ) {
        let store = MemoryCallStore::new(64 * 1024, DEFAULT_TTL).with_max_bytes(max_bytes);
        for (n, len) in lens.into_iter().enumerate() {
            let key = call(n as u128);
            let Claim::Run(ticket) = store.claim_now(&key, 1) else { panic!("a fresh key runs") };
            store.finish(&key, &ticket, Some(StoredReply { status: 200, body: body(len) }));
            let (_, bytes) = store.kept();
            prop_assert!(bytes as u64 <= max_bytes, "{} bytes kept, budget {}", bytes, max_bytes);
        }
    }
}
