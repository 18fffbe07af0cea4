//! A byte budget: how many bytes a server may hold at once for requests it
//! has not finished with (bodies being read, messages being decoded,
//! batches being written). Reservations never wait: a request that does not
//! fit is refused (the caller answers RESOURCE_EXHAUSTED / 429 with a retry
//! hint), so a slow client cannot make others queue behind it.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is counted in units of this many bytes (a semaphore holds at
/// most `u32::MAX >> 3` permits, so bytes themselves would cap it at
/// 512 MiB).
pub const BUDGET_UNIT: u64 = 1024;

/// Bytes held at once, shared by clones (one budget per server, or one for
/// several servers that share a cap).
#[derive(Debug, Clone)]
pub struct ByteBudget {
    units: Arc<Semaphore>,
    capacity: u64,
}

/// Bytes reserved from a [`ByteBudget`]; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl ByteBudget {
    /// A budget of `bytes` (rounded down to [`BUDGET_UNIT`], at least one).
    pub fn new(bytes: u64) -> Self {
        let units = (bytes / BUDGET_UNIT).clamp(1, u64::from(u32::MAX >> 3));
        Self {
            units: Arc::new(Semaphore::new(units as usize)),
            capacity: units * BUDGET_UNIT,
        }
    }

    /// The budget's size in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Reserves `bytes` (rounded up to a unit; a zero-byte request costs
    /// one), or `None` when they do not fit now.
    pub fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        let units = bytes.div_ceil(BUDGET_UNIT).max(1);
        let units = u32::try_from(units).ok()?;
        Arc::clone(&self.units)
            .try_acquire_many_owned(units)
            .ok()
            .map(|p| Reservation { _permit: p })
    }

    /// Bytes free now (rounded down to units).
    pub fn available(&self) -> u64 {
        self.units.available_permits() as u64 * BUDGET_UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_refused_beyond_capacity_and_returned_on_drop() {
        let budget = ByteBudget::new(4 * BUDGET_UNIT);
        assert_eq!(budget.capacity(), 4 * BUDGET_UNIT);
        let a = budget.try_reserve(3 * BUDGET_UNIT).expect("fits");
        assert!(budget.try_reserve(2 * BUDGET_UNIT).is_none(), "over budget");
        let b = budget.try_reserve(1).expect("one unit left");
        assert_eq!(budget.available(), 0);
        drop(a);
        drop(b);
        assert_eq!(budget.available(), 4 * BUDGET_UNIT);
        assert!(budget.try_reserve(u64::MAX).is_none(), "never fits");
        assert!(
            budget.try_reserve(0).is_some(),
            "an empty request costs a unit"
        );
    }
}
