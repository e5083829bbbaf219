//! Time: every deadline in cloudlet goes through a [`Clock`], so tests can advance it.
//!
//! Primitive crates never read the system clock or sleep on their own. In production they get
//! a [`SystemClock`]; in tests a [`ManualClock`], whose [`advance`](ManualClock::advance) fires
//! every timer that became due, in deadline order, so a 12-hour visibility timeout is tested in
//! microseconds.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::ops::{Add, Sub};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// A point in time: nanoseconds since the Unix epoch, in UTC.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);
    /// The latest representable instant (in the year 2554).
    pub const MAX: Self = Self(u64::MAX);

    /// From nanoseconds since the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// From milliseconds since the epoch, saturating at [`Timestamp::MAX`].
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1_000_000))
    }

    /// From seconds since the epoch, saturating at [`Timestamp::MAX`].
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the epoch, the unit AWS APIs use.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Whole seconds since the epoch.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }

    /// `self + duration`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, duration: Duration) -> Self {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(nanos))
    }

    /// `self - duration`, saturating at the epoch.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Self(self.0.saturating_sub(nanos))
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `2025-01-02T03:04:05.678Z`: ISO 8601 in UTC with milliseconds, as AWS stamps events
    /// and notifications.
    pub fn iso8601(self) -> String {
        let millis = self.as_millis();
        let (days, ms_of_day) = (millis / 86_400_000, millis % 86_400_000);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let (h, m, s, ms) = (
            ms_of_day / 3_600_000,
            ms_of_day / 60_000 % 60,
            ms_of_day / 1000 % 60,
            ms_of_day % 1000,
        );
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
    }

    /// As a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }

    /// From a [`SystemTime`]; times before the epoch become the epoch.
    pub fn from_system_time(time: SystemTime) -> Self {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Self(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Self;

    fn add(self, duration: Duration) -> Self {
        self.saturating_add(duration)
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Self;

    fn sub(self, duration: Duration) -> Self {
        self.saturating_sub(duration)
    }
}

/// A future that completes at a clock's deadline.
#[must_use = "a Sleep does nothing unless awaited"]
pub struct Sleep(Pin<Box<dyn Future<Output = ()> + Send>>);

impl Sleep {
    /// Wraps any future as a `Sleep`; for implementors of [`Clock`].
    pub fn new(future: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(Box::pin(future))
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").finish_non_exhaustive()
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

/// A source of time and timers.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Completes once [`now`](Self::now) has reached `deadline`; at once if it already has.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future cancels the timer and nothing else.
    fn sleep_until(&self, deadline: Timestamp) -> Sleep;

    /// Completes after `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> Sleep {
        self.sleep_until(self.now().saturating_add(duration))
    }
}

/// A clock shared by the parts of a process.
pub type SharedClock = Arc<dyn Clock>;

/// Wall-clock time, with timers on tokio's timer wheel. Needs a tokio runtime with time enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// A shared system clock.
    pub fn shared() -> SharedClock {
        Arc::new(Self)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        let wait = deadline.saturating_duration_since(self.now());
        Sleep::new(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told to. The test double for time.
///
/// [`advance`](Self::advance) moves time forward and wakes every timer whose deadline has been
/// reached, in deadline order (ties in the order the timers were made). A timer never fires
/// before its deadline. A task woken by an advance sees the time after the advance; a timer it
/// then sets that is already due completes at once, and one that is not waits for the next
/// advance. To walk through a chain of waits step by step, use
/// [`advance_to_next`](Self::advance_to_next), and [`wait_for_timers`](Self::wait_for_timers) to
/// let background tasks reach their next wait first.
///
/// Clones share one time.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    state: Mutex<ManualState>,
    timer_added: Notify,
}

struct ManualState {
    now: Timestamp,
    /// Pending timers by (deadline, creation order), with the waker of the task awaiting each.
    timers: BTreeMap<(Timestamp, u64), Option<Waker>>,
    next_id: u64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            inner: Arc::new(ManualInner {
                state: Mutex::new(ManualState {
                    now: start,
                    timers: BTreeMap::new(),
                    next_id: 0,
                }),
                timer_added: Notify::new(),
            }),
        }
    }

    /// A clock standing at 2025-01-01T00:00:00Z, so that timestamps in tests are realistic.
    pub fn starting_2025() -> Self {
        Self::new(Timestamp::from_secs(1_735_689_600))
    }

    /// This clock as a [`SharedClock`].
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }

    fn state(&self) -> MutexGuard<'_, ManualState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves time forward by `duration` and fires every timer that is then due.
    pub fn advance(&self, duration: Duration) {
        let target = self.now().saturating_add(duration);
        self.advance_to(target);
    }

    /// Moves time forward to `target` (never backward) and fires every timer that is then due,
    /// in deadline order.
    pub fn advance_to(&self, target: Timestamp) {
        let wakers = {
            let mut state = self.state();
            state.now = state.now.max(target);
            let now = state.now;
            let mut due = Vec::new();
            while let Some(entry) = state.timers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            due
        };
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    /// Moves time to the earliest pending deadline and fires the timers due then, like
    /// [`ManualClock::advance_to_next`], and returns how many timers remain pending, counted
    /// before any woken task runs. A driver that waits for more than that many timers before
    /// its next step never moves time ahead of the work the step woke. `None` when no timer is
    /// pending.
    pub fn step(&self) -> Option<usize> {
        let (wakers, remaining) = {
            let mut state = self.state();
            let next = state.timers.keys().next().map(|(deadline, _)| *deadline)?;
            state.now = state.now.max(next);
            let now = state.now;
            let mut due = Vec::new();
            while let Some(entry) = state.timers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            (due, state.timers.len())
        };
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
        Some(remaining)
    }

    /// Moves time to the earliest pending deadline and fires the timers due then. Returns that
    /// deadline, or `None` (and leaves time alone) when no timer is pending.
    pub fn advance_to_next(&self) -> Option<Timestamp> {
        let next = self.next_deadline()?;
        self.advance_to(next);
        Some(next)
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.state()
            .timers
            .keys()
            .next()
            .map(|(deadline, _)| *deadline)
    }

    /// How many timers are pending.
    pub fn pending_timers(&self) -> usize {
        self.state().timers.len()
    }

    /// Waits until at least `count` timers are pending: lets a test wait for background tasks
    /// to reach their next wait before it advances time. Needs no real time to pass.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_for_timers(&self, count: usize) {
        loop {
            let added = self.inner.timer_added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if self.pending_timers() >= count {
                return;
            }
            added.await;
        }
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("ManualClock")
            .field("now", &state.now)
            .field("pending_timers", &state.timers.len())
            .finish()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::starting_2025()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.state().now
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        let key = {
            let mut state = self.state();
            if deadline <= state.now {
                return Sleep::new(std::future::ready(()));
            }
            let id = state.next_id;
            state.next_id += 1;
            state.timers.insert((deadline, id), None);
            (deadline, id)
        };
        self.inner.timer_added.notify_waiters();
        Sleep::new(ManualSleep {
            clock: self.clone(),
            key,
        })
    }
}

/// A pending timer of a [`ManualClock`]; removed from the clock when dropped.
struct ManualSleep {
    clock: ManualClock,
    key: (Timestamp, u64),
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.clock.state();
        match state.timers.get_mut(&self.key) {
            // Fired (removed by an advance): done.
            None => Poll::Ready(()),
            Some(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        self.clock.state().timers.remove(&self.key);
    }
}
