//! The process-wide budget for buffered inbound bytes: partial frames, fragmented messages being reassembled and
//! messages waiting for their handler, over every connection of a server.
//!
//! Each connection charges what it holds and releases it when the bytes are consumed or the connection ends. A
//! connection that already holds inbound bytes may not read more while the budget is spent: it waits, its
//! socket's receive window fills, and TCP pushes back on its client. A connection that holds nothing may always
//! read one chunk, so small complete messages keep flowing for everyone while attackers sit on half-sent frames;
//! those are ended by the frame timeout, which gives their bytes back.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Waker};

use parking_lot::Mutex;

/// Shared by every connection of one server.
#[derive(Debug)]
pub(crate) struct InboundBudget {
    limit: usize,
    used: AtomicUsize,
    /// Set while some connection waits for bytes to be released, so releasing is one relaxed load otherwise.
    has_waiters: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
    /// Bumped each time the waiters are woken; a connection registers at most once per generation. Starts at 1,
    /// so 0 can mark a connection that is not registered.
    generation: AtomicU64,
}

impl InboundBudget {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
            has_waiters: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
            generation: AtomicU64::new(1),
        }
    }

    /// Bytes charged right now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether the budget is spent.
    pub(crate) fn exhausted(&self) -> bool {
        self.used() >= self.limit
    }

    /// Moves a holder's charge from `held` to `now`; wakes waiting connections when bytes come back under the
    /// limit. Called on every read, where the charge seldom changes: that case is a comparison.
    #[inline]
    pub(crate) fn adjust(&self, held: &mut usize, now: usize) {
        if now != *held {
            self.change(held, now);
        }
    }

    fn change(&self, held: &mut usize, now: usize) {
        if now > *held {
            self.used.fetch_add(now - *held, Ordering::Relaxed);
        } else {
            let after = self.used.fetch_sub(*held - now, Ordering::Relaxed) - (*held - now);
            if after < self.limit && self.has_waiters.load(Ordering::Relaxed) {
                self.wake_all();
            }
        }
        *held = now;
    }

    /// Registers the task to be woken when bytes are released. Returns false if the budget has room again (the
    /// caller goes on reading). `registered` is the caller's generation marker (0 when not registered), so a task
    /// polled many times while waiting registers once.
    pub(crate) fn wait(&self, cx: &mut Context<'_>, registered: &mut u64) -> bool {
        let generation = self.generation.load(Ordering::Acquire);
        if *registered != generation {
            let mut waiters = self.waiters.lock();
            waiters.push(cx.waker().clone());
            self.has_waiters.store(true, Ordering::Release);
            *registered = generation;
        }
        // Bytes released between the caller's check and the registration would not have woken us.
        if self.exhausted() {
            true
        } else {
            *registered = 0;
            false
        }
    }

    fn wake_all(&self) {
        let waiters = {
            let mut waiters = self.waiters.lock();
            self.has_waiters.store(false, Ordering::Release);
            self.generation.fetch_add(1, Ordering::AcqRel);
            std::mem::take(&mut *waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn charges_release_and_wake_waiters_once() {
        let budget = InboundBudget::new(100);
        let (mut a, mut b) = (0, 0);
        budget.adjust(&mut a, 60);
        budget.adjust(&mut b, 50);
        assert_eq!(budget.used(), 110);
        assert!(budget.exhausted());

        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut registered = 0;
        assert!(budget.wait(&mut cx, &mut registered));
        assert!(budget.wait(&mut cx, &mut registered)); // the same generation: not registered twice
        assert_eq!(budget.waiters.lock().len(), 1);

        budget.adjust(&mut a, 0);
        assert_eq!(budget.used(), 50);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(!budget.exhausted());
        assert!(!budget.wait(&mut cx, &mut registered));
        budget.adjust(&mut b, 0);
        assert_eq!(budget.used(), 0);
    }
}
