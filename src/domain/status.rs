//! Run and task statuses and their legal transitions.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Stored, not started (for instance submitted with `--detach`).
    Pending,
    /// A process is executing it.
    Running,
    /// Waiting on something outside nofx.
    Waiting,
    /// Every task succeeded.
    Succeeded,
    /// A task failed or the run timed out; `reason` says which.
    Failed,
    /// Cancelled; `reason` says by whom.
    Cancelled,
}

/// Status of a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting for its dependencies.
    #[default]
    Pending,
    /// Every dependency succeeded; waiting for an agent.
    Ready,
    /// An agent is running it.
    Running,
    /// Waiting on something outside nofx.
    Waiting,
    /// Done, and its result is committed.
    Succeeded,
    /// Failed after its last attempt.
    Failed,
    /// Not run because a dependency failed.
    Skipped,
    /// Stopped by a cancel or a run timeout.
    Cancelled,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("illegal transition of {what} from `{from}` to `{to}`")]
pub struct IllegalTransition {
    /// `run` or `task`.
    pub what: &'static str,
    /// The status it was in.
    pub from: String,
    /// The status asked for.
    pub to: String,
}

macro_rules! status_text {
    ($ty:ty, $( $variant:ident => $text:literal ),+ $(,)?) => {
        impl $ty {
            /// The status as it appears in JSON, events and the store.
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $text ),+ }
            }

            /// Parses the text form.
            ///
            /// # Errors
            /// When `s` is not one of the statuses.
            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $( $text => Ok(Self::$variant), )+
                    other => Err(format!("unknown status `{other}`")),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

status_text!(RunStatus, Pending => "pending", Running => "running", Waiting => "waiting",
    Succeeded => "succeeded", Failed => "failed", Cancelled => "cancelled");
status_text!(TaskStatus, Pending => "pending", Ready => "ready", Running => "running",
    Waiting => "waiting", Succeeded => "succeeded", Failed => "failed", Skipped => "skipped",
    Cancelled => "cancelled");

impl RunStatus {
    /// Whether the run is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// Moves to `to`, or says why that is illegal.
    ///
    /// # Errors
    /// When the run is already over, or `to` is `pending`.
    ///
    /// ```
    /// use nofx::RunStatus::*;
    /// assert_eq!(Pending.transition(Running), Ok(Running));
    /// assert!(Succeeded.transition(Running).is_err());
    /// ```
    pub fn transition(self, to: Self) -> Result<Self, IllegalTransition> {
        let legal = match (self, to) {
            (from, _) if from.is_terminal() => false,
            (_, Self::Pending) => false,
            (Self::Pending, _) | (Self::Running, _) | (Self::Waiting, _) => true,
            _ => false,
        };
        if legal {
            Ok(to)
        } else {
            Err(IllegalTransition {
                what: "run",
                from: self.to_string(),
                to: to.to_string(),
            })
        }
    }
}

impl TaskStatus {
    /// Whether the task is over.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }

    /// Moves to `to`, or says why that is illegal.
    ///
    /// # Errors
    /// When the task is already over, or the step is not one the scheduler takes.
    ///
    /// ```
    /// use nofx::TaskStatus::*;
    /// assert_eq!(Ready.transition(Running), Ok(Running));
    /// assert!(Pending.transition(Succeeded).is_err());
    /// ```
    pub fn transition(self, to: Self) -> Result<Self, IllegalTransition> {
        use TaskStatus::*;
        let legal = match (self, to) {
            (from, _) if from.is_terminal() => false,
            (Pending, Ready | Skipped | Cancelled) => true,
            // A task whose inputs cannot be resolved fails before it runs.
            (Ready, Running | Failed | Cancelled | Skipped) => true,
            // A retry, or a task that was in flight when its process died, is ready again.
            (Running, Ready | Waiting | Succeeded | Failed | Cancelled) => true,
            (Waiting, Ready | Running | Succeeded | Failed | Cancelled) => true,
            _ => false,
        };
        if legal {
            Ok(to)
        } else {
            Err(IllegalTransition {
                what: "task",
                from: self.to_string(),
                to: to.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_never_move() {
        for s in [
            TaskStatus::Succeeded,
            TaskStatus::Failed,
            TaskStatus::Skipped,
        ] {
            assert!(s.transition(TaskStatus::Ready).is_err());
        }
        assert!(RunStatus::Cancelled.transition(RunStatus::Failed).is_err());
    }

    #[test]
    fn text_forms_round_trip() {
        for s in [
            "pending",
            "ready",
            "running",
            "waiting",
            "succeeded",
            "failed",
            "skipped",
            "cancelled",
        ] {
            assert_eq!(TaskStatus::parse(s).map(|t| t.as_str()), Ok(s));
        }
    }
}
