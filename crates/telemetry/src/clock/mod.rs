//! One clock for every Meridian process.
//!
//! Two readings, because they answer different questions:
//! - **wall** time (since the Unix epoch) stamps what is stored or sent:
//!   span times, RED windows, alert transitions;
//! - **monotonic** time (since an origin fixed per clock) measures how long
//!   something took or how long is left: leases, decision windows, idle
//!   timeouts. It never goes backwards when the wall clock is stepped.
//!
//! Code that must be tested without sleeping takes a [`SharedClock`].
//! [`SystemClock`] reads monotonic time through `tokio::time::Instant`, so a
//! test on tokio's paused time (`start_paused = true`) moves it with
//! `tokio::time::advance`. [`ManualClock`] is moved by hand and needs no
//! runtime at all. Code with nothing to test against a clock calls
//! [`unix_nanos`] and friends.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

#[cfg(test)]
mod tests;

/// Wall and monotonic time, injectable.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Time since the Unix epoch (zero if the system clock is before it).
    fn wall(&self) -> Duration;
    /// Time since this clock's origin; never decreases.
    fn monotonic(&self) -> Duration;

    /// Wall time in whole milliseconds since the epoch, saturating.
    fn unix_ms(&self) -> i64 {
        i64::try_from(self.wall().as_millis()).unwrap_or(i64::MAX)
    }

    /// Wall time in nanoseconds since the epoch, saturating.
    fn unix_nanos(&self) -> u64 {
        u64::try_from(self.wall().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock shared by the tasks of one process (or one test).
pub type SharedClock = Arc<dyn Clock>;

/// The process's clocks: the system's wall clock and tokio's monotonic
/// clock (std's outside a runtime).
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: tokio::time::Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }

    /// A [`SharedClock`] reading the system.
    pub fn shared() -> SharedClock {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn wall(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock tests move by hand. Clones share one time: advancing one
/// advances all. Wall and monotonic time move together under
/// [`ManualClock::advance`]; [`ManualClock::set_wall`] steps the wall clock
/// alone, as an NTP step would.
#[derive(Clone, Default)]
pub struct ManualClock(Arc<ManualInner>);

#[derive(Default)]
struct ManualInner {
    wall_nanos: AtomicU64,
    mono_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock whose wall time starts at `wall` since the epoch.
    pub fn at(wall: Duration) -> Self {
        let c = Self::default();
        c.set_wall(wall);
        c
    }

    /// A clock whose wall time starts at `ms` milliseconds since the epoch.
    pub fn at_unix_ms(ms: i64) -> Self {
        Self::at(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }

    /// Moves both readings forward by `d` (saturating).
    pub fn advance(&self, d: Duration) {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let add = |a: &AtomicU64| {
            let _ = a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_add(n))
            });
        };
        add(&self.0.wall_nanos);
        add(&self.0.mono_nanos);
    }

    /// Sets the wall reading; the monotonic one is left alone.
    pub fn set_wall(&self, wall: Duration) {
        let n = u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX);
        self.0.wall_nanos.store(n, Ordering::SeqCst);
    }

    /// Sets the wall reading in milliseconds since the epoch.
    pub fn set_unix_ms(&self, ms: i64) {
        self.set_wall(Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
    }

    /// This clock as a [`SharedClock`] (sharing its time).
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("wall", &self.wall())
            .field("monotonic", &self.monotonic())
            .finish()
    }
}

impl Clock for ManualClock {
    fn wall(&self) -> Duration {
        Duration::from_nanos(self.0.wall_nanos.load(Ordering::SeqCst))
    }

    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.0.mono_nanos.load(Ordering::SeqCst))
    }
}

/// The system's wall time since the Unix epoch.
pub fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// The system's wall time in nanoseconds since the epoch, saturating.
pub fn unix_nanos() -> u64 {
    u64::try_from(unix_now().as_nanos()).unwrap_or(u64::MAX)
}

/// The system's wall time in microseconds since the epoch, saturating.
pub fn unix_micros() -> i64 {
    i64::try_from(unix_now().as_micros()).unwrap_or(i64::MAX)
}

/// The system's wall time in milliseconds since the epoch, saturating.
pub fn unix_ms() -> i64 {
    i64::try_from(unix_now().as_millis()).unwrap_or(i64::MAX)
}

/// The system's wall time in milliseconds since the epoch, unsigned (for
/// the places that keep times as `u64`), saturating.
pub fn unix_ms_u64() -> u64 {
    u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX)
}

/// The system's wall time in whole seconds since the epoch.
pub fn unix_secs() -> u64 {
    unix_now().as_secs()
}
