//! Backup copy jobs: a jobs file ([`config`]) names each job's sources, target,
//! schedule ([`crate::schedule`]: intervals and copy windows), retention and prune; the runner
//! keeps each job's copy current from it.

pub mod archivers;
mod catch_up;
pub mod config;
pub mod daemon;
mod decode;
pub mod endpoint;
pub mod interval;
mod machines;
pub mod metrics;
pub(crate) mod phases;
pub mod plan;
pub mod report;
pub mod run;
pub mod runner;
pub mod script;
pub mod simulate;
pub mod state;
pub mod status;
pub mod timers;
pub mod toml_walk;

pub use config::{Job, JobsFile, Mode, Secret};
pub use toml_walk::Problem;
