//! Run workspaces: where each lives under the data directory, the manifest of its files
//! (each stored content-addressed in the artifact store) and its rebuilding from a manifest.

use super::RuntimeError;
use crate::domain::RunId;
use crate::store::Blobs;
use serde_json::{Map, Value};
use std::path::{Component, Path, PathBuf};

/// Where a run's workspace lives under the data directory.
pub(crate) fn workspace_of(data_dir: &Path, run: RunId) -> PathBuf {
    data_dir
        .join("runs")
        .join(run.to_string())
        .join("workspace")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |source| RuntimeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Every file under `workspace` (relative path with `/` → sha256), each stored in `blobs`.
pub(crate) async fn manifest_of(
    workspace: &Path,
    blobs: &Blobs,
) -> Result<Map<String, Value>, RuntimeError> {
    let mut manifest = Map::new();
    let mut dirs = vec![workspace.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&dir)(e)),
        };
        while let Some(entry) = entries.next_entry().await.map_err(io(&dir))? {
            let path = entry.path();
            let kind = entry.file_type().await.map_err(io(&path))?;
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() {
                let blob = blobs
                    .put_file(&path)
                    .await
                    .map_err(|e| io(&path)(std::io::Error::other(e.to_string())))?;
                let rel = path
                    .strip_prefix(workspace)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                manifest.insert(rel, Value::String(blob.hash));
            }
        }
    }
    let mut sorted: Vec<(String, Value)> = manifest.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(sorted.into_iter().collect())
}

/// Writes the files of a manifest under `workspace` (which must not exist yet).
pub(crate) async fn rebuild(
    workspace: &Path,
    manifest: &Map<String, Value>,
    blobs: &Blobs,
) -> Result<(), RuntimeError> {
    tokio::fs::create_dir_all(workspace)
        .await
        .map_err(io(workspace))?;
    for (rel, hash) in manifest {
        let rel_path = Path::new(rel);
        let safe = rel_path
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        let hash = hash.as_str().unwrap_or_default();
        if !safe || hash.is_empty() {
            return Err(RuntimeError::BadFork(format!(
                "the checkpoint's manifest has an unusable entry `{rel}`"
            )));
        }
        let to = workspace.join(rel_path);
        if let Some(dir) = to.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
        }
        let from = blobs.path_of(hash);
        tokio::fs::copy(&from, &to).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                RuntimeError::BadFork(format!(
                    "the checkpoint's copy of `{rel}` (sha256 {hash}) is gone from the artifact store"
                ))
            } else {
                io(&to)(e)
            }
        })?;
    }
    Ok(())
}
