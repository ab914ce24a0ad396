//! The Redis store's one pub/sub connection, shared by every duplicate that waits on
//! the store: a channel is subscribed while someone waits on it, and its messages wake
//! that channel's waiters.
//!
//! One task owns the connection and the map of channels to waiters, and handles the
//! waiters' subscriptions in the order they come, so the `SUBSCRIBE` and `UNSUBSCRIBE`
//! of one channel never cross on the wire. When the connection breaks, the task marks
//! the subscriber down and wakes every waiter: they re-read their call, and poll it
//! while the subscriber is down. It reconnects at most every [`RECONNECT`], subscribes
//! again to every channel still waited on, and wakes every waiter once more, so a
//! completion published while it was down is read then.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

/// The least time between two attempts to connect the subscriber.
const RECONNECT: Duration = Duration::from_millis(500);

/// The subscriber of one store (and its clones); its task ends when it is dropped.
pub(super) struct Subscriber {
    commands: mpsc::UnboundedSender<Command>,
    /// Connected, with every waited-on channel subscribed.
    live: Arc<AtomicBool>,
}

enum Command {
    Subscribe { channel: String, reply: oneshot::Sender<Arc<Notify>> },
    Unsubscribe { channel: String },
}

/// One waiter's interest in one channel, given up when dropped.
pub(super) struct Subscription {
    channel: String,
    /// Woken by the channel's messages and by the connection breaking or coming back.
    notify: Arc<Notify>,
    /// Whether the task answered in time: without it, `notify` is the waiter's own and
    /// nothing wakes it.
    answered: bool,
    commands: mpsc::UnboundedSender<Command>,
    live: Arc<AtomicBool>,
}

impl Subscriber {
    /// Starts the subscriber's task on the current runtime. It connects on the first
    /// subscription, not before.
    pub(super) fn start(client: redis::Client, op_timeout: Duration) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        let live = Arc::new(AtomicBool::new(false));
        tokio::spawn(run(client, op_timeout, receiver, Arc::clone(&live)));
        Self { commands, live }
    }

    /// Subscribes to `channel`, waiting at most `within` for the subscription to be in
    /// place; past that, the subscription polls (see [`Subscription::is_live`]).
    pub(super) async fn subscribe(&self, channel: String, within: Duration) -> Subscription {
        let (reply, answer) = oneshot::channel();
        // Made before the command is sent: however this future ends, the subscription's
        // drop sends the matching `Unsubscribe`.
        let mut subscription = Subscription {
            channel: channel.clone(),
            notify: Arc::new(Notify::new()),
            answered: false,
            commands: self.commands.clone(),
            live: Arc::clone(&self.live),
        };
        if self.commands.send(Command::Subscribe { channel, reply }).is_ok()
            && let Ok(Ok(notify)) = tokio::time::timeout(within, answer).await
        {
            subscription.notify = notify;
            subscription.answered = true;
        }
        subscription
    }
}

impl Subscription {
    /// What wakes this waiter; register it (`enable`) before reading the call, so that
    /// a message between the read and the wait is not missed.
    pub(super) fn notify(&self) -> &Notify {
        &self.notify
    }

    /// Whether a completion on the channel wakes this waiter; when not, it polls.
    /// Read after registering for [`notify`](Self::notify): the connection breaking
    /// later wakes the waiter.
    pub(super) fn is_live(&self) -> bool {
        self.answered && self.live.load(Ordering::SeqCst)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Unsubscribe { channel: std::mem::take(&mut self.channel) });
    }
}

/// A channel's waiters: how many, and what wakes them.
struct Channel {
    waiters: usize,
    notify: Arc<Notify>,
}

/// The subscriber's task: owns the connection and the channels.
async fn run(
    client: redis::Client,
    op_timeout: Duration,
    mut commands: mpsc::UnboundedReceiver<Command>,
    live: Arc<AtomicBool>,
) {
    let mut state =
        State { client, op_timeout, live, channels: HashMap::new(), sink: None, next_attempt: Instant::now() };
    let mut stream: Option<PubSubStream> = None;
    loop {
        let reconnect = state.sink.is_none() && !state.channels.is_empty();
        tokio::select! {
            command = commands.recv() => match command {
                // Every handle on the store is gone.
                None => return,
                Some(Command::Subscribe { channel, reply }) => {
                    let notify = state.subscribe(channel, &mut stream).await;
                    let _ = reply.send(notify);
                }
                Some(Command::Unsubscribe { channel }) => state.unsubscribe(channel, &mut stream).await,
            },
            message = next_message(&mut stream) => match message {
                Some(message) => {
                    if let Some(channel) = state.channels.get(message.get_channel_name()) {
                        channel.notify.notify_waiters();
                    }
                }
                None => state.broken(&mut stream),
            },
            () = tokio::time::sleep_until(state.next_attempt), if reconnect => state.connect(&mut stream).await,
        }
    }
}

async fn next_message(stream: &mut Option<PubSubStream>) -> Option<redis::Msg> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

struct State {
    client: redis::Client,
    op_timeout: Duration,
    live: Arc<AtomicBool>,
    channels: HashMap<String, Channel>,
    /// `Some` while connected.
    sink: Option<PubSubSink>,
    next_attempt: Instant,
}

impl State {
    async fn subscribe(&mut self, channel: String, stream: &mut Option<PubSubStream>) -> Arc<Notify> {
        let entry =
            self.channels.entry(channel.clone()).or_insert_with(|| Channel { waiters: 0, notify: Arc::default() });
        entry.waiters += 1;
        let (first, notify) = (entry.waiters == 1, Arc::clone(&entry.notify));
        let failed = match &mut self.sink {
            Some(sink) => first && !bounded(self.op_timeout, sink.subscribe(&channel)).await,
            None => false,
        };
        if failed {
            self.broken(stream);
        } else if self.sink.is_none() && Instant::now() >= self.next_attempt {
            self.connect(stream).await;
        }
        notify
    }

    async fn unsubscribe(&mut self, channel: String, stream: &mut Option<PubSubStream>) {
        let Some(entry) = self.channels.get_mut(&channel) else { return };
        entry.waiters -= 1;
        if entry.waiters > 0 {
            return;
        }
        self.channels.remove(&channel);
        if let Some(sink) = &mut self.sink
            && !bounded(self.op_timeout, sink.unsubscribe(&channel)).await
        {
            self.broken(stream);
        }
    }

    /// Connects and subscribes to every channel waited on; then wakes every waiter, to
    /// read what completed while the subscriber was down.
    async fn connect(&mut self, stream: &mut Option<PubSubStream>) {
        self.next_attempt = Instant::now() + RECONNECT;
        let connected = tokio::time::timeout(self.op_timeout, self.client.get_async_pubsub()).await;
        let Ok(Ok(pubsub)) = connected else {
            tracing::warn!("the Redis call store's subscriber cannot connect; waiting duplicates poll");
            return;
        };
        let (mut sink, messages) = pubsub.split();
        let channels: Vec<&String> = self.channels.keys().collect();
        if !channels.is_empty() && !bounded(self.op_timeout, sink.subscribe(channels)).await {
            return;
        }
        (self.sink, *stream) = (Some(sink), Some(messages));
        self.live.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    /// The connection broke: every waiter polls until it is back.
    fn broken(&mut self, stream: &mut Option<PubSubStream>) {
        (self.sink, *stream) = (None, None);
        self.live.store(false, Ordering::SeqCst);
        self.next_attempt = self.next_attempt.max(Instant::now());
        self.wake_all();
    }

    fn wake_all(&self) {
        for channel in self.channels.values() {
            channel.notify.notify_waiters();
        }
    }
}

/// Whether a subscription command succeeded within `limit`.
async fn bounded(limit: Duration, command: impl Future<Output = redis::RedisResult<()>>) -> bool {
    matches!(tokio::time::timeout(limit, command).await, Ok(Ok(())))
}
