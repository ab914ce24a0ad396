//! Waking a connection's task for what watches the connection (its watchdog, the
//! server's shutdown), and remembering that it was that which woke it.
//!
//! A connection's task is woken for every read and write hyper makes, a few times a
//! request. Polling the watchers on each of those wake-ups, as a `tokio::select!` over
//! the three does (the connection, the shutdown signal, the watchdog's sleep, from a
//! random start, each under tokio's cooperative budget), cost ~860 instructions a small
//! call, 1.8 % of the server's. The watchers are polled with this waker instead, which
//! records its wake-up before it wakes the task: the task polls them again only then
//! (and whenever it asks to, after it changed one), and otherwise polls the connection
//! alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};

use futures_util::task::AtomicWaker;

/// See the module documentation.
pub(super) struct SideWake {
    /// Set when a watcher woke the task (or the task asked for its watchers to be
    /// polled); cleared as the task polls them.
    woken: AtomicBool,
    /// The task's own waker, from its latest poll.
    task: AtomicWaker,
}

impl SideWake {
    /// A new one, whose watchers are due to be polled (a first poll registers them).
    pub(super) fn new() -> (Arc<Self>, Waker) {
        let side = Arc::new(Self { woken: AtomicBool::new(true), task: AtomicWaker::new() });
        let waker = Waker::from(Arc::clone(&side));
        (side, waker)
    }

    /// Called at each poll of the task: keeps its waker, and says whether the watchers
    /// are due to be polled (they woke it, or [`poll_again`](Self::poll_again) asked).
    pub(super) fn due(&self, task: &Context<'_>) -> bool {
        // Before the check: a wake-up that comes after it finds the task's waker.
        self.task.register(task.waker());
        self.woken.swap(false, Ordering::AcqRel)
    }

    /// Has the watchers polled at the task's next poll (after one of them was changed,
    /// or completed and was replaced).
    pub(super) fn poll_again(&self) {
        self.woken.store(true, Ordering::Release);
    }
}

impl Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts the task's wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_watchers_are_due_first_then_only_after_their_own_wake_up_or_when_asked() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task_waker = Waker::from(Arc::clone(&count));
        let task = Context::from_waker(&task_waker);
        let (side, side_waker) = SideWake::new();
        assert!(side.due(&task), "a first poll registers the watchers");
        assert!(!side.due(&task), "a wake-up of the connection alone");
        side_waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "a watcher's wake-up wakes the task");
        assert!(side.due(&task));
        assert!(!side.due(&task));
        side.poll_again();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "asking does not wake the task");
        assert!(side.due(&task));
        assert!(!side.due(&task));
        // A wake-up before the task's first poll is kept for it.
        let (early, early_waker) = SideWake::new();
        early_waker.wake();
        assert!(early.due(&task));
    }
}
