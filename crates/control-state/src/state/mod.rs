//! The replicated control state and its one transition function.
//!
//! [`ControlState::apply`] is pure: every input it depends on, including
//! the time a lease is judged by, travels in the [`Command`] (the leader
//! stamps it when proposing), so every node applying the same log reaches
//! the same state. Refusals are answers ([`Applied::Refused`]), not
//! errors: a refused command is still a log entry every node skips alike.

//!
//! [`types`] holds what is replicated, [`command`] what can be proposed,
//! [`apply`] the one transition function, [`tokens`] the API tokens,
//! [`groups`] the `--auth proxy` group mappings.

mod apply;
mod command;
pub mod groups;
#[cfg(test)]
mod tests;
pub mod tokens;
mod types;

pub use command::{Applied, Command};
pub use types::{
    AlertRule, ControlState, Lease, MAX_NOTIFICATIONS, MAX_REVOKED_SERIALS, Member, NodeId,
    Notification, RegisteredCluster, Shard, normalize_serial,
};
