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
