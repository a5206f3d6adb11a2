//! Identifiers: `RunId` is a UUID (v7, so ids sort by creation time); `TaskKey` is the task's
//! `id` from the plan, which is its id everywhere (CLI, events, API).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The id of one run.
///
/// ```
/// let id = nofx::RunId::new();
/// let parsed: nofx::RunId = id.to_string().parse().unwrap();
/// assert_eq!(id, parsed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(Uuid);

impl RunId {
    /// A fresh, time-ordered run id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A string that is not a run id.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a run id (expected a UUID such as 0193a5c2-7d1e-7c3a-9f00-1b2c3d4e5f60)")]
pub struct BadRunId(pub String);

impl FromStr for RunId {
    type Err = BadRunId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| BadRunId(s.to_string()))
    }
}

/// The id of a task inside its plan: letters, digits, `_` and `-`.
///
/// ```
/// assert!(nofx::TaskKey::parse("build-docs").is_ok());
/// assert!(nofx::TaskKey::parse("has.dot").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskKey(String);

impl TaskKey {
    /// Checks that `s` is a valid task id.
    ///
    /// # Errors
    /// When `s` is empty, longer than 128 characters or holds anything but letters, digits,
    /// `_` and `-`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("a task id must not be empty".into());
        }
        if s.len() > 128 {
            return Err(format!("task id `{s}` is longer than 128 characters"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "task id `{s}` may hold only letters, digits, `_` and `-`"
            ));
        }
        Ok(Self(s.to_string()))
    }

    /// Wraps a string that is already known to be valid (read back from the store).
    pub(crate) fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The task this one is a subtask of: a subtask's id is `PARENT.CHILD` (ids in a plan
    /// hold no `.`).
    pub fn parent(&self) -> Option<TaskKey> {
        self.0.rsplit_once('.').map(|(p, _)| Self(p.to_string()))
    }

    /// 0 for a task of the plan, its parent's depth + 1 for a subtask.
    pub fn depth(&self) -> u32 {
        self.0.matches('.').count() as u32
    }
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl std::borrow::Borrow<str> for TaskKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Ids of rows made by nofx that users name in commands and URLs: a prefix and a
/// time-ordered UUID (`cp-0193…`). Text from outside is taken as is; looking up an id that
/// does not exist finds nothing.
macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(format!(concat!($prefix, "-{}"), Uuid::now_v7()))
            }

            /// The id's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

prefixed_id!(
    /// The id of a checkpoint, `cp-…`.
    CheckpointId,
    "cp"
);

prefixed_id!(
    /// The id of a wait on a person's decision, `wait-…`.
    WaitId,
    "wait"
);
