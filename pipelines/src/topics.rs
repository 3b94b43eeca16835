//! Topic names on the bus (a contract shared by every Lusso component).

/// Validated behavioural events from the collector.
pub const EVENTS: &str = "lusso.events.v1";
/// Commerce events (stock levels, orders) from the commerce service's outbox; see [`crate::commerce`].
pub const COMMERCE: &str = "lusso.commerce.v1";
/// Bandit decisions with the context and propensity they were made with (the bandits service's outbox).
pub const DECISIONS: &str = "lusso.decisions.v1";
/// Rejected events with their reasons ("bad rows"), inspectable and replayable.
pub const QUARANTINE: &str = "lusso.events.quarantine";

/// Default partition count for topics we create (4: two per core on the reference machine,
/// enough for a consumer group of up to four members).
pub const fn default_partitions() -> i32 {
    4
}
