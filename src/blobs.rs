//! The artifact file store: content-addressed files (sha256) under the data directory,
//! shared by tools (which store what they produce), the runtime (checkpoints) and the API;
//! the store's rows refer to them by hash:
//! `artifacts/sha256/ab/cdef…`. Files are written to a temporary name, synced, then renamed,
//! so a crash never leaves a partial file under a hash.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// A blob failure.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// A file operation failed.
    #[error("artifact storage at {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// No blob has this hash.
    #[error("artifact {0} is missing from the artifact directory")]
    Missing(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// sha256, hex.
    pub hash: String,
    /// Bytes.
    pub size: i64,
}

/// The artifact directory.
#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
}

impl Blobs {
    /// Blobs under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `hash` lives.
    pub fn path_of(&self, hash: &str) -> PathBuf {
        let (a, b) = hash.split_at(2.min(hash.len()));
        self.root.join("sha256").join(a).join(b)
    }

    /// Starts a streamed write.
    ///
    /// # Errors
    /// When the temporary file cannot be created.
    pub async fn writer(&self) -> Result<BlobWriter, BlobError> {
        let tmp_dir = self.root.join("tmp");
        tokio::fs::create_dir_all(&tmp_dir)
            .await
            .map_err(io(&tmp_dir))?;
        let tmp = tmp_dir.join(uuid::Uuid::new_v4().simple().to_string());
        let file = tokio::fs::File::create(&tmp).await.map_err(io(&tmp))?;
        Ok(BlobWriter {
            blobs: self.clone(),
            tmp,
            file,
            hasher: Sha256::new(),
            size: 0,
            finished: false,
        })
    }

    /// Stores bytes.
    ///
    /// # Errors
    /// File failures.
    pub async fn put(&self, bytes: &[u8]) -> Result<StoredBlob, BlobError> {
        let mut w = self.writer().await?;
        w.write(bytes).await?;
        w.finish().await
    }

    /// Stores a copy of a file.
    ///
    /// # Errors
    /// File failures.
    pub async fn put_file(&self, path: &Path) -> Result<StoredBlob, BlobError> {
        let mut src = tokio::fs::File::open(path).await.map_err(io(path))?;
        let mut w = self.writer().await?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut src, &mut buf)
                .await
                .map_err(io(path))?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n]).await?;
        }
        w.finish().await
    }

    /// Whether the directory can be written (for health checks).
    ///
    /// # Errors
    /// The failure, naming the directory.
    pub async fn check_writable(&self) -> Result<(), BlobError> {
        let mut w = self.writer().await?;
        let res = w.write(b"nofx").await;
        drop(w);
        res
    }
}

/// A blob being written.
#[derive(Debug)]
pub struct BlobWriter {
    blobs: Blobs,
    tmp: PathBuf,
    file: tokio::fs::File,
    hasher: Sha256,
    size: i64,
    finished: bool,
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // An abandoned write (cancel, error) leaves no temporary file behind.
        if !self.finished {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl BlobWriter {
    /// Appends bytes.
    ///
    /// # Errors
    /// File failures.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        self.hasher.update(bytes);
        self.size += bytes.len() as i64;
        self.file.write_all(bytes).await.map_err(io(&self.tmp))
    }

    /// Syncs the file and moves it under its hash.
    ///
    /// # Errors
    /// File failures.
    pub async fn finish(mut self) -> Result<StoredBlob, BlobError> {
        self.file.flush().await.map_err(io(&self.tmp))?;
        self.file.sync_all().await.map_err(io(&self.tmp))?;
        let hash = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let dest = self.blobs.path_of(&hash);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io(parent))?;
        }
        tokio::fs::rename(&self.tmp, &dest)
            .await
            .map_err(io(&dest))?;
        Ok(StoredBlob {
            hash,
            size: self.size,
        })
    }
}
