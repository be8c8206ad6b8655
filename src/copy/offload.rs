//! The contract for running a chain's transfer somewhere other than this process — the
//! archiver pool (`remote::dispatch` implements it): the chain's points go out, a plan
//! made against the target and the packs written come back, and this process, which
//! holds the chain's lock, commits them. The engine defines the contract and never
//! names an appliance, so `copy` does not depend on `remote`.

use async_trait::async_trait;

use super::plan::ChainPlan;
use super::report::ChainReport;
use super::settings::{ChainMode, Compression};
use super::transfer::TransferOutcome;
use crate::progress::Progress;
use crate::stop::Stop;
use crate::{Id, Result};

/// One chain's transfer, as it is handed over.
#[derive(Clone, Debug)]
pub struct OffloadRequest {
    pub chain: String,
    pub mode: ChainMode,
    /// The repository ids of the sources the chain reads, in the order `points` names
    /// them.
    pub source_ids: Vec<Id>,
    pub target_id: Id,
    /// The chain's points: the position of its source in `source_ids`, and its id.
    pub points: Vec<(usize, Id)>,
    pub pack_size: u64,
    pub compression: Compression,
    pub map: bool,
    pub reads_in_flight: Option<usize>,
    pub uploads_in_flight: usize,
    /// The copy's stop: the transfer elsewhere is cancelled when it is asked.
    pub stop: Stop,
}

/// How a chain's transfer elsewhere ended.
#[derive(Debug)]
pub enum Offloaded {
    /// Transferred: the plan and outcome to commit.
    Done(Box<(ChainPlan, TransferOutcome)>),
    /// To be transferred by this process (what lost attempts kept is indexed already;
    /// the chain's report says why).
    Here,
    /// The copy was asked to stop: the transfer was cancelled and what it wrote whole
    /// is indexed; the chain is interrupted, and why.
    Stopped(String),
}

pub use super::transfer::KeepPacks;

/// Where a chain's transfer can run instead of this process.
#[async_trait]
pub trait Offload: Send + Sync + std::fmt::Debug {
    /// Transfers the chain elsewhere (what was kept of lost or stopped attempts is
    /// indexed through `keep`). Lost attempts, and why the chain falls back to this
    /// process, go into `chain`; an error fails the chain.
    async fn transfer(
        &self,
        req: &OffloadRequest,
        keep: &dyn KeepPacks,
        chain: &mut ChainReport,
        progress: &Progress,
    ) -> Result<Offloaded>;
}
