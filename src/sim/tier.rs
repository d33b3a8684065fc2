//! What every tier offers the rest of wscap: its name, its invariants, its
//! summary metrics and the components that can fail. `experiment` and
//! `check` iterate over [`World::tiers`](super::World::tiers) instead of
//! reaching into the tiers' fields.

use super::Ctx;
use crate::metrics::summary::MetricSink;

/// A part of the deployment that can fail on its own (a later `wscap spof`
/// enumerates them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    /// The owning tier's [`Tier::name`].
    pub tier: &'static str,
    /// What it is.
    pub kind: ComponentKind,
    /// Its index among the components of its kind.
    pub index: u32,
    /// Its name on the timeline and in reports (`server-3`, `db-replica-0`…).
    pub name: String,
}

/// The kinds of components that can fail. A closed enum: `wscap spof`
/// matches on it, so a new kind does not compile until spof knows how to
/// fail it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentKind {
    SocketServer,
    BalancerNode,
    Vip,
    Nginx,
    AppServer,
    Redis,
    DbPrimary,
    DbReplica,
}

impl ComponentKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ComponentKind::SocketServer => "socket-server",
            ComponentKind::BalancerNode => "balancer-node",
            ComponentKind::Vip => "vip",
            ComponentKind::Nginx => "nginx",
            ComponentKind::AppServer => "app-server",
            ComponentKind::Redis => "redis",
            ComponentKind::DbPrimary => "db-primary",
            ComponentKind::DbReplica => "db-replica",
        }
    }
}

/// One tier of the simulation.
pub trait Tier {
    /// A short name ("clients", "servers", "cluster", "game", "web", "storage").
    fn name(&self) -> &'static str;

    /// The tier's own invariants, checked at the end of a replication: one
    /// message per violation, empty when all hold. (Invariants between two
    /// tiers are in `seams`.)
    fn check(&self, ctx: &Ctx) -> Vec<String>;

    /// Sets the tier's summary metrics (`summary.csv`) from its state and
    /// the recorder.
    fn metrics(&self, ctx: &Ctx, out: &mut MetricSink);

    /// The tier's components that can fail, in a stable order.
    fn components(&self, ctx: &Ctx) -> Vec<Component>;
}
