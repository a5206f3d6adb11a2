//! `GET /runs/{id}/graph`: a run's task graph laid out for drawing (rank, order, groups,
//! sub-plans under their task) with each task's status. The layout depends only on the
//! graph's shape, which changes only when a task decomposes, so it is computed once per shape
//! and kept; the statuses are read on every request.

use super::auth::Caller;
use super::error::ApiError;
use super::runs::visible_run;
use super::ApiState;
use crate::domain::layout::Layout;
use crate::domain::{RunId, TaskStatus};
use axum::extract::{Extension, Path, State};
use axum::Json;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Layouts kept (the oldest goes first).
const KEPT: usize = 64;

/// A graph's layout with what naming its tasks takes.
pub(crate) struct Drawn {
    layout: Layout,
    keys: Vec<String>,
    parent: Vec<Option<u32>>,
    by_key: HashMap<String, u32>,
}

/// A graph's shape: its run and how many decompositions grew it.
type Shape = (RunId, usize);

/// Layouts by shape.
#[derive(Default)]
pub(crate) struct Layouts {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    by_shape: HashMap<Shape, Arc<Drawn>>,
    /// The shapes kept, oldest first.
    oldest: VecDeque<Shape>,
}

impl Layouts {
    fn get(&self, key: Shape) -> Option<Arc<Drawn>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.by_shape.get(&key).cloned()
    }

    fn put(&self, key: Shape, drawn: Arc<Drawn>) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let Kept { by_shape, oldest } = &mut *kept;
        if by_shape.insert(key, drawn).is_none() {
            oldest.push_back(key);
        }
        while oldest.len() > KEPT {
            if let Some(old) = oldest.pop_front() {
                by_shape.remove(&old);
            }
        }
    }
}

/// The document.
#[derive(Serialize)]
pub struct GraphView<'a> {
    nodes: Vec<NodeView<'a>>,
    groups: Vec<GroupView>,
    edges: &'a [[u32; 2]],
}

#[derive(Serialize)]
struct NodeView<'a> {
    id: &'a str,
    status: TaskStatus,
    rank: u32,
    order: u32,
    group: Option<u32>,
    parent: Option<u32>,
}

#[derive(Serialize)]
struct GroupView {
    id: u32,
    size: usize,
    counts: BTreeMap<&'static str, usize>,
}

/// `GET /runs/{id}/graph`.
///
/// # Errors
/// 404 for a run the caller may not see; store failures; 409 when the stored plan no longer
/// validates against this server's tools and agents.
pub async fn get(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let run = visible_run(&st, &caller, &id).await?;
    let store = st.rt.store();
    let shape = (run.id, store.decompositions(run.id).await?.len());
    let drawn = match st.layouts.get(shape) {
        Some(d) => d,
        None => {
            let graph = st.rt.graph(run.id).await.map_err(|e| match e {
                crate::runtime::RuntimeError::Plan(p) => ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    "plan_not_valid_here",
                    format!("the run's plan does not validate on this server: {p}"),
                ),
                e => ApiError::from(e),
            })?;
            let drawn = Arc::new(Drawn {
                layout: Layout::of(&graph),
                keys: graph.tasks().iter().map(|t| t.key.to_string()).collect(),
                parent: graph
                    .tasks()
                    .iter()
                    .map(|t| t.parent.map(|p| p as u32))
                    .collect(),
                by_key: graph
                    .tasks()
                    .iter()
                    .map(|t| (t.key.to_string(), t.index as u32))
                    .collect(),
            });
            st.layouts.put(shape, drawn.clone());
            drawn
        }
    };
    // A task without a row has not moved yet.
    let mut status = vec![TaskStatus::Pending; drawn.keys.len()];
    for row in store.tasks(run.id).await? {
        if let Some(&i) = drawn.by_key.get(row.task_id.as_str()) {
            status[i as usize] = row.status;
        }
    }
    let l = &drawn.layout;
    let nodes = (0..drawn.keys.len())
        .map(|i| NodeView {
            id: &drawn.keys[i],
            status: status[i],
            rank: l.rank[i],
            order: l.order[i],
            group: l.group[i],
            parent: drawn.parent[i],
        })
        .collect();
    let groups = l
        .groups
        .iter()
        .enumerate()
        .map(|(g, members)| {
            let mut counts = BTreeMap::new();
            for &m in members {
                *counts.entry(status[m as usize].as_str()).or_insert(0) += 1;
            }
            GroupView {
                id: g as u32,
                size: members.len(),
                counts,
            }
        })
        .collect();
    Ok(Json(GraphView {
        nodes,
        groups,
        edges: &l.edges,
    })
    .into_response())
}
