//! A cache of compiled components on local disk.
//!
//! Compiling a component with Cranelift takes from tens of milliseconds to
//! seconds; loading a compiled artifact takes about a millisecond. The cache
//! keeps one artifact per component and engine:
//!
//! - the key is the component's sha256 plus a hash of everything that makes
//!   compiled code compatible with an engine
//!   ([`Engine::precompile_compatibility_hash`]: wasmtime version, target,
//!   compiler settings), so an artifact is never loaded into an engine that did
//!   not produce it;
//! - every artifact is sealed with an HMAC-SHA256 under a random key created
//!   with the cache and readable only by its owner, and nothing whose seal does
//!   not verify is deserialised. Deserialising compiled code is `unsafe`
//!   precisely because it is trusted to be what this host produced; a file
//!   copied in from elsewhere, truncated, or corrupted is discarded and the
//!   component compiled again.
//!
//! Files are written to a temporary name and renamed into place, so concurrent
//! workers sharing a cache directory never read half an artifact.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

type Seal = Hmac<Sha256>;
const SEAL_LEN: usize = 32;
const KEY_FILE: &str = "seal.key";

/// A component's identity: the sha256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ComponentDigest(String);

impl ComponentDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    /// The hex digest without prefix.
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// A digest as people write it: 64 hex digits, optionally prefixed
    /// `sha256:`, any case. `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(hex.to_ascii_lowercase()))
    }
}

impl std::fmt::Display for ComponentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

/// Counters of what the cache did, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Components compiled because no valid artifact was cached.
    pub compiled: u64,
    /// Components loaded from a cached artifact.
    pub loaded: u64,
    /// Cached artifacts discarded because their seal did not verify.
    pub rejected: u64,
}

/// The on-disk artifact cache; see the module docs.
pub struct ArtifactCache {
    dir: PathBuf,
    key: [u8; 32],
    engine_hash: String,
    compiled: AtomicU64,
    loaded: AtomicU64,
    rejected: AtomicU64,
}

/// Why a component could not be compiled or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache directory or a file in it could not be used.
    #[error("artifact cache at {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid component for this engine.
    #[error("not a valid WebAssembly component: {0:#}")]
    Compile(wasmtime::Error),
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache in `dir` for artifacts of `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, CacheError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { path, source }
        };
        flowmesh_types::private_fs::create_private_dir(dir).map_err(io(dir))?;
        check_private(dir, false).map_err(io(dir))?;
        let key_path = dir.join(KEY_FILE);
        let key = read_or_create_key(&key_path).map_err(io(&key_path))?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hex::encode(&hasher.0.finalize()[..8]);
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            engine_hash,
            compiled: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            loaded: self.loaded.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }

    /// Where the artifact of `digest` lives (whether or not it exists).
    pub fn artifact_path(&self, digest: &ComponentDigest) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", digest.hex(), self.engine_hash))
    }

    /// The component `bytes` (whose digest is `digest`), from its cached
    /// artifact when one verifies, otherwise compiled and cached.
    pub fn load(
        &self,
        engine: &Engine,
        digest: &ComponentDigest,
        bytes: &[u8],
    ) -> Result<Component, CacheError> {
        let path = self.artifact_path(digest);
        if let Some(component) = self.load_sealed(engine, &path) {
            self.loaded.fetch_add(1, Ordering::Relaxed);
            return Ok(component);
        }
        let artifact = engine
            .precompile_component(bytes)
            .map_err(CacheError::Compile)?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.store_sealed(&path, &artifact) {
            tracing::warn!(path = %path.display(), %error, "could not cache a compiled component");
        }
        self.deserialize(engine, &artifact)
            .map_err(CacheError::Compile)
    }

    /// Verifies the artifact at `path` and maps it; `None` if absent or
    /// invalid.
    ///
    /// The file is read once, in chunks, through the seal's MAC, then mapped
    /// by wasmtime (`deserialize_file`) rather than read into memory and
    /// copied again: a Python component's artifact is some 36 MB. The
    /// directory is the owner's alone ([`ArtifactCache::open`] checks it), so
    /// the file the seal verified is the file that is mapped.
    fn load_sealed(&self, engine: &Engine, path: &Path) -> Option<Component> {
        let file = std::fs::File::open(path).ok()?;
        let verified = match self.verify_file(file) {
            Ok(verified) => verified,
            Err(error) => {
                self.reject(path, &format!("it could not be read: {error}"));
                return None;
            }
        };
        if !verified {
            self.reject(path, "its seal does not verify");
            return None;
        }
        // SAFETY: as in `deserialize`: the file's HMAC under this cache's
        // private key verified just now, in a directory only its owner can
        // write, so it is an artifact this cache produced with an engine of
        // the same compatibility hash (part of its name).
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(component) => Some(component),
            Err(error) => {
                self.reject(path, &format!("{error:#}"));
                None
            }
        }
    }

    /// Whether the sealed file's last [`SEAL_LEN`] bytes are the MAC of the
    /// bytes before them, reading it in 1 MiB chunks.
    fn verify_file(&self, mut file: std::fs::File) -> std::io::Result<bool> {
        use std::io::Read;
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        if len <= SEAL_LEN {
            return Ok(false);
        }
        let mut mac = self.seal(&[]);
        let mut remaining = len - SEAL_LEN;
        let mut chunk = vec![0u8; (1 << 20).min(remaining)];
        while remaining > 0 {
            let take = chunk.len().min(remaining);
            file.read_exact(&mut chunk[..take])?;
            mac.update(&chunk[..take]);
            remaining -= take;
        }
        let mut seal = [0u8; SEAL_LEN];
        file.read_exact(&mut seal)?;
        Ok(mac.verify_slice(&seal).is_ok())
    }

    fn reject(&self, path: &Path, why: &str) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(path = %path.display(), why, "discarding a cached artifact");
        let _ = std::fs::remove_file(path);
    }

    fn store_sealed(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        let seal = self.seal(artifact).finalize().into_bytes();
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(artifact)?;
        file.write_all(&seal)?;
        file.persist(path).map_err(|error| error.error)?;
        Ok(())
    }

    fn seal(&self, artifact: &[u8]) -> Seal {
        let mut mac =
            <Seal as Mac>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(artifact);
        mac
    }

    #[allow(unsafe_code)]
    fn deserialize(&self, engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
        // SAFETY: `artifact` was produced by `Engine::precompile_component` of an
        // engine with the same compatibility hash: either just now, or read back
        // from a file whose HMAC under this cache's private key verified, which
        // only this cache can have written.
        unsafe { Component::deserialize(engine, artifact) }
    }
}

/// Refuses a cache directory or key that another user could have written (or,
/// for the key, read): whoever can write them can make this host run their
/// native code.
#[cfg(unix)]
fn check_private(path: &Path, secret: bool) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path)?;
    let forbidden = if secret { 0o077 } else { 0o022 };
    let owner = current_uid(if secret {
        path.parent().unwrap_or(path)
    } else {
        path
    })?;
    if metadata.mode() & forbidden != 0 || metadata.uid() != owner {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} must be owned by this user and not {} by others (mode {:o}); fix it with chmod {} or remove it",
                path.display(),
                if secret {
                    "readable or writable"
                } else {
                    "writable"
                },
                metadata.mode() & 0o777,
                if secret { "600" } else { "go-w" },
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _secret: bool) -> std::io::Result<()> {
    Ok(())
}

/// The uid this process creates files as, read off a file it creates in `dir`.
#[cfg(unix)]
fn current_uid(dir: &Path) -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    Ok(tempfile::tempfile_in(dir)?.metadata()?.uid())
}

fn read_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    if path.exists() {
        check_private(path, true)?;
    }
    if let Ok(bytes) = std::fs::read(path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let key: [u8; 32] = rand::random();
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(&key)?;
    // If another process created the key first, use theirs.
    match file.persist_noclobber(path) {
        Ok(_) => Ok(key),
        Err(_) => {
            check_private(path, true)?;
            let bytes = std::fs::read(path)?;
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a 32-byte key: remove it", path.display()),
                )
            })
        }
    }
}

/// Feeds a [`Hash`] implementation into SHA-256, for a hash that is stable
/// across processes (unlike `DefaultHasher`).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
