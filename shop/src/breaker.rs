//! A circuit breaker: after `threshold` consecutive failures a dependency is
//! left alone for `cooldown`, then one caller at a time may probe it
//! (half-open) while everyone else keeps taking the fallback. Inventory uses
//! it for Redis; payments will use it for the provider.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    /// 0 closed, 1 open, 2 half-open: the value exported as a gauge.
    pub fn as_gauge(self) -> i64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        }
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: AtomicU8,
    failures: AtomicU32,
    /// Milliseconds since `epoch` when the breaker last opened.
    opened_at: AtomicU64,
    epoch: Instant,
    /// How many times the breaker has opened, for /metrics.
    pub trips: AtomicU64,
}

/// What the caller should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Use the dependency.
    Go,
    /// This caller is the one probe: use the dependency and report back.
    Probe,
    /// Take the fallback (or fail fast).
    Refuse,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            epoch: Instant::now(),
            trips: AtomicU64::new(0),
        }
    }

    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            CLOSED => State::Closed,
            OPEN => State::Open,
            _ => State::HalfOpen,
        }
    }

    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    pub fn permit(&self) -> Permit {
        match self.state.load(Ordering::Acquire) {
            CLOSED => Permit::Go,
            OPEN => {
                let since = self.now_ms().saturating_sub(self.opened_at.load(Ordering::Acquire));
                let due = since >= self.cooldown.as_millis() as u64;
                // Only the caller that flips open → half-open probes.
                if due && self.state.compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    Permit::Probe
                } else {
                    Permit::Refuse
                }
            }
            _ => Permit::Refuse,
        }
    }

    /// A call that worked. Closes a half-open breaker (the probe came
    /// back); an open one stays open, because a call that was let through
    /// before it opened says nothing about now, and the fallback may have
    /// work (inventory's rebuild) that must finish before the dependency is
    /// trusted again.
    pub fn success(&self) {
        self.failures.store(0, Ordering::Release);
        let _ = self.state.compare_exchange(HALF_OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Opens the breaker now, whatever the failure count: for a caller that
    /// knows the dependency's state can no longer be trusted.
    pub fn trip(&self) {
        self.opened_at.store(self.now_ms(), Ordering::Release);
        if self.state.swap(OPEN, Ordering::AcqRel) != OPEN {
            self.trips.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A failed call. Opens the breaker at the threshold, and at once when
    /// the failed call was the half-open probe.
    pub fn failure(&self) {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let state = self.state.load(Ordering::Acquire);
        if state == HALF_OPEN || (state == CLOSED && failures >= self.threshold) {
            self.trip();
        }
    }

    /// Time left before the next probe: what a fail-fast answer puts in
    /// Retry-After.
    pub fn retry_after(&self) -> Duration {
        let since = self.now_ms().saturating_sub(self.opened_at.load(Ordering::Acquire));
        self.cooldown.saturating_sub(Duration::from_millis(since)).max(Duration::from_secs(1))
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_once_after_cooldown() {
        let b = Breaker::new(3, Duration::from_millis(30));
        b.failure();
        b.failure();
        assert_eq!(b.permit(), Permit::Go);
        b.failure();
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.permit(), Permit::Refuse);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.permit(), Permit::Probe);
        assert_eq!(b.permit(), Permit::Refuse, "only one probe at a time");
        b.failure();
        assert_eq!(b.state(), State::Open, "a failed probe reopens at once");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.permit(), Permit::Probe);
        b.success();
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.trips.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let b = Breaker::new(2, Duration::from_secs(60));
        b.failure();
        b.success();
        b.failure();
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn only_the_probe_closes_an_open_breaker() {
        let b = Breaker::new(1, Duration::from_millis(30));
        b.failure();
        b.success();
        assert_eq!(b.state(), State::Open, "a late success from before the trip");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.permit(), Permit::Probe);
        b.success();
        assert_eq!(b.state(), State::Closed);
        b.trip();
        assert_eq!((b.state(), b.trips.load(Ordering::Relaxed)), (State::Open, 2));
    }
}
