//! nofx: an actor-based multi-agent runtime.
//!
//! A plan (YAML/JSON, or built in code) becomes a DAG of tasks; a supervisor delegates each
//! ready task to the best-scored agent actor; gate actors check results; a persistence actor
//! commits every state change to SQLite (the embedded default) or Postgres, so a run survives
//! crashes and resumes where it stopped.

#![warn(missing_docs)]

pub mod api;
pub mod bench;
pub mod blobs;
pub mod config;
pub mod domain;
pub mod models;
pub mod planner;

/// A run's events: the stored log ([`events::Event`], its kind [`events::EventType`] and
/// typed data [`events::EventData`], one payload struct per kind in [`events::payload`]) and
/// streamed model text ([`events::Delta`]).
pub mod events {
    pub use crate::domain::event::payload;
    pub use crate::domain::{Delta, Event, EventData, EventType};
}

/// Plans: parsed from YAML or JSON ([`plan::PlanSource::parse`]) or built in code
/// ([`plan::Plan::new`], [`plan::Task::new`]).
pub mod plan {
    /// One task of a plan (the same type as [`TaskSpec`]).
    pub use crate::domain::plan::TaskSpec as Task;
    pub use crate::domain::plan::*;
}
pub mod retention;
pub mod runtime;
pub mod service;
pub mod store;
pub mod tools;

pub use domain::{
    AgentSpec, Correlation, CorrelationId, Event, EventData, EventType, Plan, Priority, Role,
    RunId, RunStatus, TaskKey, TaskStatus,
};
pub use runtime::{Outcome, RunHandle, Runtime, RuntimeBuilder, RuntimeError, SubmitOptions};
