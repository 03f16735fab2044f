//! Waits between failed rounds: doubling from `min` to `max`, so a worker
//! rides out a dependency that is down without busy-looping or giving up.

use std::time::Duration;

pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    failing: bool,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, next: min, failing: false }
    }

    /// The wait after one more failure. The first failure of a run says so
    /// (`true`), so callers log an outage once, not every round.
    pub fn fail(&mut self) -> (Duration, bool) {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        let first = !self.failing;
        self.failing = true;
        (wait, first)
    }

    /// Back to normal; `true` when this ends a run of failures.
    pub fn succeed(&mut self) -> bool {
        self.next = self.min;
        std::mem::replace(&mut self.failing, false)
    }
}
