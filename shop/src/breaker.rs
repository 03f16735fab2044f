//! A circuit breaker: after `threshold` consecutive failures a dependency is
//! left alone for `cooldown`, then one caller at a time may probe it
//! (half-open) while everyone else keeps taking the fallback. Inventory uses
//! it for Redis; payments use it for the provider.
//!
//! A probe that never reports (its request was dropped: the client went
//! away, a request timeout fired) must not leave the breaker half-open for
//! ever, refusing everyone: after `probe_deadline` the next caller becomes
//! the probe instead.

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
    /// Milliseconds since `epoch` when the current probe was handed out.
    probe_at: AtomicU64,
    probe_deadline: Duration,
    epoch: Instant,
    /// Added to the clock: lets the unit tests move time without sleeping.
    #[cfg(test)]
    skew_ms: AtomicU64,
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
    /// The default probe deadline: longer than any single call we make
    /// (payments time out after 8 s), so a live probe is never doubled.
    pub const PROBE_DEADLINE: Duration = Duration::from_secs(30);

    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probe_at: AtomicU64::new(0),
            probe_deadline: Self::PROBE_DEADLINE,
            epoch: Instant::now(),
            #[cfg(test)]
            skew_ms: AtomicU64::new(0),
            trips: AtomicU64::new(0),
        }
    }

    /// How long a probe may stay unanswered before another caller probes.
    pub fn with_probe_deadline(mut self, deadline: Duration) -> Self {
        self.probe_deadline = deadline;
        self
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
                    self.probe_at.store(self.now_ms(), Ordering::Release);
                    Permit::Probe
                } else {
                    Permit::Refuse
                }
            }
            _ => {
                // A probe past its deadline was lost: hand the probe to this
                // caller (one caller wins the swap of the probe's start time).
                let started = self.probe_at.load(Ordering::Acquire);
                let now = self.now_ms();
                let lost = now.saturating_sub(started) >= self.probe_deadline.as_millis() as u64;
                if lost && self.probe_at.compare_exchange(started, now, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    Permit::Probe
                } else {
                    Permit::Refuse
                }
            }
        }
    }

    /// A call that worked. Closes a half-open breaker (the probe came
    /// back); an open one stays open, because a call that was let through
    /// before it opened says nothing about now, and the fallback may have
    /// work (inventory's rebuild) that must finish before the dependency is
    /// trusted again.
    ///
    /// Returns whether the breaker is closed now: a probe whose breaker was
    /// tripped again while it ran (another call failed meanwhile) has not
    /// closed it, and must not act as if the dependency were trusted.
    pub fn success(&self) -> bool {
        self.failures.store(0, Ordering::Release);
        let _ = self.state.compare_exchange(HALF_OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire);
        self.state.load(Ordering::Acquire) == CLOSED
    }

    /// A call that worked but was not the probe: resets the failure count
    /// and leaves the state alone. For a dependency whose probe has work of
    /// its own to finish before the breaker may close (inventory's
    /// rebuild): a call let through before the breaker opened, completing
    /// while that work runs, must not close the breaker under it.
    pub fn call_succeeded(&self) {
        self.failures.store(0, Ordering::Release);
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
        let now = self.epoch.elapsed().as_millis() as u64;
        #[cfg(test)]
        let now = now + self.skew_ms.load(Ordering::Acquire);
        now
    }

    #[cfg(test)]
    fn advance(&self, by: Duration) {
        self.skew_ms.fetch_add(by.as_millis() as u64, Ordering::AcqRel);
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
        b.advance(Duration::from_millis(40));
        assert_eq!(b.permit(), Permit::Probe);
        assert_eq!(b.permit(), Permit::Refuse, "only one probe at a time");
        b.failure();
        assert_eq!(b.state(), State::Open, "a failed probe reopens at once");
        b.advance(Duration::from_millis(40));
        assert_eq!(b.permit(), Permit::Probe);
        b.success();
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.trips.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_its_deadline() {
        let b = Breaker::new(1, Duration::from_millis(30)).with_probe_deadline(Duration::from_secs(5));
        b.failure();
        b.advance(Duration::from_millis(40));
        assert_eq!(b.permit(), Permit::Probe);
        // That caller's request is dropped: it never says success or failure.
        b.advance(Duration::from_millis(4_900));
        assert_eq!(b.permit(), Permit::Refuse, "the probe still has time");
        b.advance(Duration::from_millis(200));
        assert_eq!(b.permit(), Permit::Probe, "a lost probe is handed to the next caller");
        assert_eq!(b.permit(), Permit::Refuse, "and to one caller only");
        b.success();
        assert_eq!((b.state(), b.permit()), (State::Closed, Permit::Go));
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
        b.advance(Duration::from_millis(40));
        assert_eq!(b.permit(), Permit::Probe);
        b.success();
        assert_eq!(b.state(), State::Closed);
        b.trip();
        assert_eq!((b.state(), b.trips.load(Ordering::Relaxed)), (State::Open, 2));
        b.advance(Duration::from_millis(40));
        assert_eq!(b.permit(), Permit::Probe);
        b.call_succeeded();
        assert_eq!(b.state(), State::HalfOpen, "a call that is not the probe leaves it half-open");
        b.failure();
        assert!(!b.success(), "a probe reopened under it does not close");
        assert_eq!((b.state(), b.trips.load(Ordering::Relaxed)), (State::Open, 3));
    }
}
