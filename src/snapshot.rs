//! Workspace snapshots: what a directory holds (every file's sha256, size and mode, every
//! symlink's target, every directory), file contents kept content-addressed in the artifact
//! store as checkpoints keep theirs, and putting a directory back exactly as a snapshot saw
//! it. What git ignores (`.gitignore`, `.ignore`), `.git` itself and the data directory are
//! outside every snapshot: never saved, never restored, never deleted.

use crate::blobs::{BlobError, Blobs};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// A snapshot failure, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The artifact store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A manifest entry cannot be put back.
    #[error("the snapshot cannot be restored: {0}")]
    Unusable(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One thing of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Entry {
    /// A regular file.
    File {
        /// sha256 of its contents, hex.
        sha256: String,
        /// Bytes.
        size: u64,
        /// Unix permission bits.
        mode: u32,
    },
    /// A symbolic link (never followed).
    Link {
        /// What it points at.
        target: String,
    },
    /// A directory.
    Dir,
}

/// Everything of a directory, by path relative to it (with `/`).
pub type Manifest = BTreeMap<String, Entry>;

/// What changed between two manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// New files, with their sizes.
    pub added: Vec<Changed>,
    /// Files whose contents, mode or link target changed.
    pub modified: Vec<Changed>,
    /// Files gone.
    pub deleted: Vec<Changed>,
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    /// Relative path.
    pub path: String,
    /// Bytes now (for a deleted file: before).
    pub size: u64,
}

impl Changes {
    /// Every changed path.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.added
            .iter()
            .chain(&self.modified)
            .chain(&self.deleted)
            .map(|c| c.path.as_str())
    }
}

fn size_of(e: &Entry) -> u64 {
    match e {
        Entry::File { size, .. } => *size,
        Entry::Link { target } => target.len() as u64,
        Entry::Dir => 0,
    }
}

/// What changed from `before` to `after` (files and links; directories only matter by what
/// they hold).
pub fn diff(before: &Manifest, after: &Manifest) -> Changes {
    let mut out = Changes::default();
    for (path, a) in after {
        if matches!(a, Entry::Dir) {
            continue;
        }
        match before.get(path) {
            None | Some(Entry::Dir) => out.added.push(Changed {
                path: path.clone(),
                size: size_of(a),
            }),
            Some(b) if b != a => out.modified.push(Changed {
                path: path.clone(),
                size: size_of(a),
            }),
            Some(_) => {}
        }
    }
    for (path, b) in before {
        if !matches!(b, Entry::Dir)
            && !matches!(after.get(path), Some(e) if !matches!(e, Entry::Dir))
        {
            out.deleted.push(Changed {
                path: path.clone(),
                size: size_of(b),
            });
        }
    }
    out
}

/// What a walk leaves out besides what git ignores: `.git` and these directories.
#[derive(Debug, Clone, Default)]
pub struct Skip(Vec<PathBuf>);

impl Skip {
    /// Leaves out these directories (e.g. the data directory when it lies inside).
    pub fn dirs(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        Self(
            dirs.into_iter()
                .map(|d| std::fs::canonicalize(&d).unwrap_or(d))
                .collect(),
        )
    }
}

/// Every file, link and directory under `root` a snapshot covers, with its kind (a blocking
/// walk; `root` itself is not listed).
fn walk(
    root: &Path,
    skip: &Skip,
) -> Result<Vec<(String, PathBuf, std::fs::FileType)>, SnapshotError> {
    let canon = std::fs::canonicalize(root).map_err(io(root))?;
    let skipped = skip.0.clone();
    let mut walker = ignore::WalkBuilder::new(&canon);
    walker
        .hidden(false)
        .parents(false)
        .git_global(false)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| e.file_name() != ".git" && !skipped.iter().any(|s| s == e.path()));
    let mut out = Vec::new();
    for item in walker.build() {
        let entry = item.map_err(|e| SnapshotError::Io {
            path: canon.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if entry.depth() == 0 {
            continue;
        }
        let Some(kind) = entry.file_type() else {
            continue;
        };
        let rel = entry
            .path()
            .strip_prefix(&canon)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .replace('\\', "/");
        out.push((rel, entry.path().to_path_buf(), kind));
    }
    Ok(out)
}

fn hash_file(path: &Path) -> Result<(String, u64), SnapshotError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

/// What `root` holds now, hashed but not stored (a blocking read of every file).
fn scan_blocking(
    root: &Path,
    skip: &Skip,
) -> Result<(Manifest, BTreeMap<String, PathBuf>), SnapshotError> {
    let mut manifest = Manifest::new();
    let mut paths = BTreeMap::new();
    for (rel, path, kind) in walk(root, skip)? {
        let entry = if kind.is_dir() {
            Entry::Dir
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io(&path))?;
            Entry::Link {
                target: target.to_string_lossy().into_owned(),
            }
        } else if kind.is_file() {
            let meta = std::fs::metadata(&path).map_err(io(&path))?;
            let (sha256, size) = hash_file(&path)?;
            Entry::File {
                sha256,
                size,
                mode: mode_of(&meta),
            }
        } else {
            continue;
        };
        paths.insert(rel.clone(), path);
        manifest.insert(rel, entry);
    }
    Ok((manifest, paths))
}

/// What `root` holds now, hashed; nothing is stored.
///
/// # Errors
/// A file that cannot be read.
pub async fn scan(root: &Path, skip: &Skip) -> Result<Manifest, SnapshotError> {
    let (root, skip) = (root.to_path_buf(), skip.clone());
    tokio::task::spawn_blocking(move || scan_blocking(&root, &skip).map(|(m, _)| m))
        .await
        .map_err(|e| SnapshotError::Unusable(e.to_string()))?
}

/// Snapshots `root`: its manifest, with every file's contents kept in `blobs` (a file
/// already there is not copied again).
///
/// # Errors
/// A file that cannot be read or stored.
pub async fn take(root: &Path, skip: &Skip, blobs: &Blobs) -> Result<Manifest, SnapshotError> {
    let (dir, sk) = (root.to_path_buf(), skip.clone());
    let (mut manifest, paths) = tokio::task::spawn_blocking(move || scan_blocking(&dir, &sk))
        .await
        .map_err(|e| SnapshotError::Unusable(e.to_string()))??;
    for (rel, entry) in manifest.iter_mut() {
        if let Entry::File { sha256, size, .. } = entry {
            if tokio::fs::try_exists(blobs.path_of(sha256))
                .await
                .unwrap_or(false)
            {
                continue;
            }
            // The copy is the truth: a file that changed since it was hashed is kept as copied.
            let stored = blobs.put_file(&paths[rel]).await?;
            *sha256 = stored.hash;
            *size = stored.size as u64;
        }
    }
    Ok(manifest)
}

fn safe_rel(rel: &str) -> Result<&Path, SnapshotError> {
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(SnapshotError::Unusable(format!("unusable path `{rel}`")));
    }
    Ok(p)
}

/// What a restore did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// Files and links written back.
    pub written: usize,
    /// Files, links and directories removed.
    pub removed: usize,
}

/// Puts `root` back as `manifest` saw it: what is not in it is removed (never followed
/// through a link), what differs is written back from `blobs`, the rest is left alone. Run
/// twice, the second does nothing.
///
/// # Errors
/// A file that cannot be removed or written; a content gone from the artifact store.
pub async fn restore(
    root: &Path,
    manifest: &Manifest,
    skip: &Skip,
    blobs: &Blobs,
) -> Result<Restored, SnapshotError> {
    let (dir, sk, m, b) = (
        root.to_path_buf(),
        skip.clone(),
        manifest.clone(),
        blobs.clone(),
    );
    tokio::task::spawn_blocking(move || restore_blocking(&dir, &m, &sk, &b))
        .await
        .map_err(|e| SnapshotError::Unusable(e.to_string()))?
}

fn restore_blocking(
    root: &Path,
    manifest: &Manifest,
    skip: &Skip,
    blobs: &Blobs,
) -> Result<Restored, SnapshotError> {
    for rel in manifest.keys() {
        safe_rel(rel)?;
    }
    let root = std::fs::canonicalize(root).map_err(io(root))?;
    let (now, _) = scan_blocking(&root, skip)?;
    let mut done = Restored::default();
    // Remove what the snapshot does not have, or has as another kind; deepest first.
    for (rel, entry) in now.iter().rev() {
        let keep = match (entry, manifest.get(rel)) {
            (_, None) => false,
            (Entry::Dir, Some(Entry::Dir)) => true,
            (Entry::Dir, Some(_)) | (_, Some(Entry::Dir)) => false,
            (Entry::Link { .. }, Some(Entry::File { .. }))
            | (Entry::File { .. }, Some(Entry::Link { .. })) => false,
            _ => true,
        };
        if keep {
            continue;
        }
        let path = root.join(rel);
        let res = if matches!(entry, Entry::Dir) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match res {
            Ok(()) => done.removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    for (rel, entry) in manifest {
        let path = root.join(rel);
        let same = now.get(rel) == Some(entry);
        match entry {
            Entry::Dir => {
                if !same {
                    std::fs::create_dir_all(&path).map_err(io(&path))?;
                }
            }
            Entry::Link { target } => {
                if same {
                    continue;
                }
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                let _ = std::fs::remove_file(&path);
                #[cfg(unix)]
                std::os::unix::fs::symlink(target, &path).map_err(io(&path))?;
                #[cfg(not(unix))]
                let _ = target;
                done.written += 1;
            }
            Entry::File { sha256, mode, .. } => {
                if same {
                    continue;
                }
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                let from = blobs.path_of(sha256);
                if !from.exists() {
                    return Err(SnapshotError::Blob(BlobError::Missing(sha256.clone())));
                }
                // A file written in place would change through a hard link the step left;
                // a fresh file replaces whatever is there.
                let _ = std::fs::remove_file(&path);
                std::fs::copy(&from, &path).map_err(io(&path))?;
                set_mode(&path, *mode)?;
                done.written += 1;
            }
        }
    }
    Ok(done)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), SnapshotError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> Result<(), SnapshotError> {
    Ok(())
}

/// Copies what a snapshot of `from` would cover into `to` (created; files only, links as
/// links), for a run that works on a copy of a directory.
///
/// # Errors
/// A file that cannot be read or written.
pub async fn copy_tree(from: &Path, to: &Path, skip: &Skip) -> Result<usize, SnapshotError> {
    let (from, to, skip) = (from.to_path_buf(), to.to_path_buf(), skip.clone());
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&to).map_err(io(&to))?;
        let mut n = 0;
        for (rel, path, kind) in walk(&from, &skip)? {
            let dest = to.join(&rel);
            if kind.is_dir() {
                std::fs::create_dir_all(&dest).map_err(io(&dest))?;
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).map_err(io(&path))?;
                #[cfg(unix)]
                std::os::unix::fs::symlink(&target, &dest).map_err(io(&dest))?;
                #[cfg(not(unix))]
                let _ = target;
                n += 1;
            } else if kind.is_file() {
                std::fs::copy(&path, &dest).map_err(io(&dest))?;
                n += 1;
            }
        }
        Ok(n)
    })
    .await
    .map_err(|e| SnapshotError::Unusable(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (rel, path, kind) in walk(root, &Skip::default()).unwrap() {
            let what = if kind.is_file() {
                std::fs::read_to_string(&path).unwrap()
            } else if kind.is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else {
                "/".into()
            };
            out.push((rel, what));
        }
        out
    }

    #[tokio::test]
    async fn a_restore_puts_back_exactly_what_was_snapshot_and_leaves_ignored_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("w");
        let blobs = Blobs::new(dir.path().join("blobs"));
        std::fs::create_dir_all(root.join("src/empty")).unwrap();
        std::fs::write(root.join("src/a.rs"), "a").unwrap();
        std::fs::write(root.join("keep.txt"), "k").unwrap();
        std::fs::write(root.join(".gitignore"), "target/\n").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("keep.txt", root.join("link")).unwrap();
        let before = tree(&root);
        let m = take(&root, &Skip::default(), &blobs).await.unwrap();
        assert!(m.contains_key("src/empty"));

        std::fs::write(root.join("src/a.rs"), "changed").unwrap();
        std::fs::remove_file(root.join("keep.txt")).unwrap();
        std::fs::create_dir_all(root.join("new/deep")).unwrap();
        std::fs::write(root.join("new/deep/x"), "x").unwrap();
        std::fs::remove_dir(root.join("src/empty")).unwrap();
        std::fs::create_dir_all(root.join("target")).unwrap();
        std::fs::write(root.join("target/build"), "ignored").unwrap();
        let now = scan(&root, &Skip::default()).await.unwrap();
        let changes = diff(&m, &now);
        assert_eq!(
            changes
                .added
                .iter()
                .map(|c| c.path.as_str())
                .collect::<Vec<_>>(),
            ["new/deep/x"]
        );
        assert_eq!(changes.modified[0].path, "src/a.rs");
        assert_eq!(changes.deleted[0].path, "keep.txt");

        let done = restore(&root, &m, &Skip::default(), &blobs).await.unwrap();
        assert!(done.written >= 2 && done.removed >= 1, "{done:?}");
        assert_eq!(tree(&root), before);
        assert_eq!(
            std::fs::read_to_string(root.join("target/build")).unwrap(),
            "ignored"
        );
        let again = restore(&root, &m, &Skip::default(), &blobs).await.unwrap();
        assert_eq!(again, Restored::default());
    }

    #[tokio::test]
    async fn a_restore_removes_a_link_without_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("w");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        let blobs = Blobs::new(dir.path().join("blobs"));
        let m = take(&root, &Skip::default(), &blobs).await.unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        restore(&root, &m, &Skip::default(), &blobs).await.unwrap();
        assert!(!root.join("escape").exists());
        assert_eq!(
            std::fs::read_to_string(outside.join("secret")).unwrap(),
            "s"
        );
    }
}
