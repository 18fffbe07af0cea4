use std::time::Duration;

use super::*;

#[test]
fn manual_clock_moves_only_when_told_and_clones_share_time() {
    let c = ManualClock::at_unix_ms(1_000);
    let shared = c.shared();
    assert_eq!(shared.unix_ms(), 1_000);
    assert_eq!(shared.monotonic(), Duration::ZERO);
    c.advance(Duration::from_millis(250));
    assert_eq!(shared.unix_ms(), 1_250);
    assert_eq!(shared.monotonic(), Duration::from_millis(250));
}

#[test]
fn a_wall_step_leaves_monotonic_time_alone() {
    let c = ManualClock::at_unix_ms(10_000);
    c.advance(Duration::from_secs(1));
    c.set_unix_ms(5_000);
    assert_eq!(c.unix_ms(), 5_000);
    assert_eq!(c.monotonic(), Duration::from_secs(1));
}

#[test]
fn manual_advance_saturates() {
    let c = ManualClock::default();
    c.advance(Duration::MAX);
    c.advance(Duration::from_secs(1));
    assert_eq!(c.unix_nanos(), u64::MAX);
}

#[tokio::test(start_paused = true)]
async fn system_clock_monotonic_follows_paused_tokio_time() {
    let c = SystemClock::new();
    let before = c.monotonic();
    tokio::time::advance(Duration::from_secs(30)).await;
    let moved = c.monotonic() - before;
    assert!(moved >= Duration::from_secs(30), "moved {moved:?}");
    assert!(moved < Duration::from_secs(31), "moved {moved:?}");
}

#[test]
fn system_wall_time_is_after_2020() {
    assert!(unix_ms() > 1_577_836_800_000);
    assert!(SystemClock::new().unix_nanos() > 1_577_836_800_000_000_000);
}
