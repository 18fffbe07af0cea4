//! Alert rules as the control plane replicates them: the rule grammar
//! ([`rule`], parsed and validated before a rule is accepted) and each
//! rule's evaluation status with its pure state machine ([`status`]).
//! Evaluating rules against RED data and notifying live in the
//! metrics-alerts crate.

pub mod rule;
pub mod status;

pub use rule::{Condition, Metric, Op};
pub use status::{AlertState, AlertStatus};
