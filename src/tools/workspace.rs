//! Paths inside a run's workspace: the one rule for every tool that names workspace files
//! (`shell` artifacts, `codegen` files). A path is relative, never uses `..`, and resolves —
//! symlinks included — to a place inside the workspace.

use std::path::{Path, PathBuf};

pub(crate) use crate::domain::relative_path as relative;

/// Whether the nearest existing ancestor of `target` resolves inside `root` (`root` itself
/// resolved); catches symlinks that point out of the workspace before a file is written.
pub(crate) fn stays_inside(root: &Path, target: &Path) -> bool {
    let mut probe = target.to_path_buf();
    loop {
        if probe.symlink_metadata().is_ok() {
            return std::fs::canonicalize(&probe).is_ok_and(|p| p.starts_with(root));
        }
        if !probe.pop() {
            return false;
        }
    }
}

/// The real path of an existing workspace file `p` (checked with [`relative`]), or why it
/// cannot be used: missing, not a regular file, or outside the workspace through a symlink.
pub(crate) fn existing_file(workspace: &Path, p: &str, what: &str) -> Result<PathBuf, String> {
    let rel = relative(p, what)?;
    let root =
        std::fs::canonicalize(workspace).map_err(|e| format!("cannot open the workspace: {e}"))?;
    let joined = root.join(&rel);
    if joined.symlink_metadata().is_err() && !stays_inside(&root, &joined) {
        return Err(format!(
            "{what} `{p}` leaves the workspace through a symlink; only files inside the workspace are kept"
        ));
    }
    let real = match std::fs::canonicalize(&joined) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(if stays_inside(&root, &joined) {
                format!("{what} `{p}` does not exist in the workspace")
            } else {
                format!("{what} `{p}` leaves the workspace through a symlink; only files inside the workspace are kept")
            })
        }
        Err(e) => return Err(format!("{what} `{p}` cannot be read: {e}")),
    };
    if !real.starts_with(&root) {
        return Err(format!(
            "{what} `{p}` leaves the workspace through a symlink; only files inside the workspace are kept"
        ));
    }
    if !real.is_file() {
        return Err(format!("{what} `{p}` is not a regular file"));
    }
    Ok(real)
}

/// The real path of an existing workspace directory `p` (`.` is the workspace itself),
/// checked like [`existing_file`].
pub(crate) fn existing_dir(workspace: &Path, p: &str, what: &str) -> Result<PathBuf, String> {
    let root =
        std::fs::canonicalize(workspace).map_err(|e| format!("cannot open the workspace: {e}"))?;
    if p.trim_end_matches('/') == "." || p.is_empty() {
        return Ok(root);
    }
    let rel = relative(p, what)?;
    let real = std::fs::canonicalize(root.join(&rel))
        .map_err(|_| format!("{what} `{p}` does not exist in the workspace"))?;
    if !real.starts_with(&root) {
        return Err(format!(
            "{what} `{p}` leaves the workspace through a symlink"
        ));
    }
    if !real.is_dir() {
        return Err(format!("{what} `{p}` is not a directory"));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_escape_are_refused() {
        assert!(relative("src/main.rs", "path").is_ok());
        assert!(relative("./a/b", "path").is_ok());
        assert_eq!(
            relative("../x", "path").unwrap_err(),
            "path `../x` uses `..`"
        );
        assert_eq!(
            relative("/etc/passwd", "path").unwrap_err(),
            "path `/etc/passwd` is absolute"
        );
        assert!(relative("a/../../b", "path").is_err());
        assert!(relative(".", "path").is_err());
    }
}
