//! Installed components on the server's disk, streamed to workers.
//!
//! The store holds every installed component (so servers sharing a database
//! share them), but a database row is read whole: answering each worker's
//! download from it would hold one copy of a Python plugin (about 18 MB) per
//! download in memory at once. So the first download of a digest writes the
//! component to `<data dir>/components/<hex>.wasm` (atomically, after checking
//! its digest), and every download is streamed from that file in 64 KiB
//! chunks. The worker checks the digest of what it receives in any case.
//!
//! Only a digest the installed plugins' catalog lists is served: the copy of
//! a removed plugin is deleted when the catalog changes ([`prune`]), and
//! until then is not handed out either.

use std::io;
use std::path::{Path, PathBuf};

use axum::body::Body;
use flowmesh_runtime::ComponentDigest;
use futures::stream;
use tokio::io::AsyncReadExt;

use crate::store::{Store, StoreError};

/// How much of a component one chunk of the response carries.
const CHUNK: usize = 64 << 10;

/// Why a component could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// No installed component has that digest.
    #[error("no installed component has this digest")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The component file could not be written or read.
    #[error("the component file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// The component with `digest` as a streamed body, and its length, if
/// `installed` (the catalog's digests) lists it.
pub async fn stream(
    store: &Store,
    data_dir: &Path,
    installed: &[String],
    digest: &ComponentDigest,
) -> Result<(Body, u64), ComponentError> {
    if !installed.contains(&digest.to_string()) {
        return Err(ComponentError::NotFound);
    }
    let path = file_of(data_dir, digest);
    let io = |source| ComponentError::Io {
        path: path.clone(),
        source,
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let bytes = store
                .plugin_component(&digest.to_string())
                .await?
                .ok_or(ComponentError::NotFound)?;
            if ComponentDigest::of(&bytes) != *digest {
                // A damaged row: refuse it rather than keep it on disk.
                return Err(ComponentError::NotFound);
            }
            write_atomically(&path, bytes).await.map_err(io)?;
            tokio::fs::File::open(&path).await.map_err(io)?
        }
        Err(error) => return Err(io(error)),
    };
    let length = file.metadata().await.map_err(io)?.len();
    let chunks = stream::try_unfold(file, |mut file| async move {
        let mut chunk = Vec::with_capacity(CHUNK);
        let read = (&mut file)
            .take(CHUNK as u64)
            .read_to_end(&mut chunk)
            .await?;
        Ok::<_, io::Error>((read > 0).then_some((chunk, file)))
    });
    Ok((Body::from_stream(chunks), length))
}

/// Deletes the kept copies of components `installed` does not list (the
/// digests of the catalog just published).
pub fn prune(data_dir: &Path, installed: &[String]) {
    let Ok(entries) = std::fs::read_dir(data_dir.join("components")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".wasm")) else {
            continue;
        };
        let kept = installed
            .iter()
            .any(|digest| digest.strip_prefix("sha256:") == Some(hex));
        if !kept && let Err(error) = std::fs::remove_file(entry.path()) {
            tracing::warn!(file = %entry.path().display(), %error, "could not delete a removed plugin's component");
        }
    }
}

/// Where the component with `digest` is kept.
fn file_of(data_dir: &Path, digest: &ComponentDigest) -> PathBuf {
    data_dir
        .join("components")
        .join(format!("{}.wasm", digest.hex()))
}

/// Writes `bytes` to `path` through a temporary file in the same folder, so a
/// reader never sees a partial component.
async fn write_atomically(path: &Path, bytes: Vec<u8>) -> io::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let dir = path.parent().unwrap_or(Path::new("."));
        flowmesh_types::private_fs::create_private_dir(dir)?;
        let partial = dir.join(format!(
            ".{}.{}.partial",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("component"),
            uuid::Uuid::now_v7().simple()
        ));
        let written =
            std::fs::write(&partial, &bytes).and_then(|()| std::fs::rename(&partial, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written
    })
    .await
    .map_err(io::Error::other)?
}
