//! A lock whose wait has a deadline: the blocking client's connection is taken out of its
//! slot for one call and put back when the call ends (or unwinds), and a caller that cannot
//! have it by its deadline gives up.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

pub(super) struct Slot<T> {
    state: Mutex<State<T>>,
    returned: Condvar,
}

struct State<T> {
    value: Option<T>,
    /// Callers waiting for the value: only then does putting it back wake anyone (a wake-up
    /// is a system call; an uncontended call makes none).
    waiting: usize,
}

/// The value, out of its slot until dropped.
pub(super) struct Taken<'a, T> {
    slot: &'a Slot<T>,
    value: Option<T>,
}

impl<T> Slot<T> {
    pub(super) fn new(value: T) -> Self {
        Self {
            state: Mutex::new(State {
                value: Some(value),
                waiting: 0,
            }),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Only `take` and `put` hold the mutex, and neither panics while holding it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value, waiting for another caller to put it back until `until`; `None` if that
    /// did not happen in time.
    pub(super) fn take(&self, until: Instant) -> Option<Taken<'_, T>> {
        let mut state = self.lock();
        loop {
            if let Some(value) = state.value.take() {
                return Some(Taken {
                    slot: self,
                    value: Some(value),
                });
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state.waiting += 1;
            state = self
                .returned
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.waiting -= 1;
        }
    }

    fn put(&self, value: T) {
        let mut state = self.lock();
        state.value = Some(value);
        let wake = state.waiting > 0;
        drop(state);
        if wake {
            self.returned.notify_one();
        }
    }
}

impl<T> Deref for Taken<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        #[allow(clippy::expect_used)] // Internal invariant: present until dropped.
        self.value.as_ref().expect("taken value present")
    }
}

impl<T> DerefMut for Taken<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        #[allow(clippy::expect_used)] // Internal invariant: present until dropped.
        self.value.as_mut().expect("taken value present")
    }
}

impl<T> Drop for Taken<'_, T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            self.slot.put(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_second_taker_waits_until_its_deadline_or_the_value_comes_back() {
        let slot = Arc::new(Slot::new(5));
        let held = slot.take(Instant::now()).unwrap();
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(slot.take(soon).is_none());
        assert!(Instant::now() >= soon);
        let other = Arc::clone(&slot);
        let waiter = std::thread::spawn(move || {
            *other
                .take(Instant::now() + Duration::from_secs(10))
                .unwrap()
                + 1
        });
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        assert_eq!(waiter.join().unwrap(), 6);
    }
}
