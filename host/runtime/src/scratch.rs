//! Per-task scratch directories.
//!
//! Every task of a plugin that can reach files (see `ReadyPlugin::scratch`)
//! gets an empty directory, preopened read-write at `/scratch` and nothing
//! else of the host file system. Creating and removing a directory per
//! task costs more than the rest of the sandbox together (on ext4 an `rmdir`
//! can wait on the disk), so directories are recycled. When a task ends, its
//! directory goes to the *janitor*, a background thread: a directory the task
//! left empty goes back to the idle pool, one it wrote to is removed and never
//! reused. A task therefore never sees anything another task wrote, and
//! neither the check nor the removal is on a task's path.
//!
//! Tasks' files are their tenants' data: the scratch root and each
//! runtime's directory in it are created readable by their owner only.
//!
//! Each runtime works in a directory of its own under the scratch root, held
//! with an exclusive lock on its `.lock` file, so several workers can share a
//! root. At startup, directories whose lock is free belong to runtimes that
//! are gone (a crash) and are removed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;
use std::time::Duration;

use flowmesh_types::private_fs::create_private_dir;

/// Marks a runtime's directory as in use while locked.
const LOCK_FILE: &str = ".lock";
/// Idle directories kept for reuse.
const MAX_IDLE: usize = 1024;
/// The janitor works in batches at most this often, so that releasing a
/// directory rarely has to wake it.
const SWEEP_INTERVAL: Duration = Duration::from_millis(1);

pub(crate) struct ScratchPool {
    /// Held for the runtime's lifetime: marks `root` as in use.
    _lock: std::fs::File,
    root: PathBuf,
    next: AtomicU64,
    shared: Arc<Shared>,
    janitor: Thread,
}

struct Released {
    path: PathBuf,
    /// Remove it whatever it holds.
    discard: bool,
}

#[derive(Default)]
struct Shared {
    idle: Mutex<Vec<PathBuf>>,
    released: Mutex<Vec<Released>>,
    stopping: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn released(&self) -> std::sync::MutexGuard<'_, Vec<Released>> {
        self.released.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ScratchPool {
    /// Creates this runtime's directory under `root`, removes those of
    /// runtimes that are gone, and starts the janitor.
    pub(crate) fn new(root: &Path) -> std::io::Result<Arc<Self>> {
        create_private_dir(root)?;
        for entry in std::fs::read_dir(root)? {
            let path = entry?.path();
            if !path.is_dir() {
                continue;
            }
            let abandoned = std::fs::File::open(path.join(LOCK_FILE))
                .map(|lock| lock.try_lock().is_ok())
                .unwrap_or(true);
            if abandoned {
                std::fs::remove_dir_all(&path)?;
            }
        }
        let own = root.join(format!(
            "runtime-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        create_private_dir(&own)?;
        let lock = std::fs::File::create(own.join(LOCK_FILE))?;
        lock.lock()?;
        let root = own;
        let shared = Arc::new(Shared::default());
        let janitor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("flowmesh-scratch".into())
                .spawn(move || janitor_loop(&shared))?
                .thread()
                .clone()
        };
        Ok(Arc::new(Self {
            _lock: lock,
            root,
            next: AtomicU64::new(0),
            shared,
            janitor,
        }))
    }

    /// An empty directory for one task; handed to the janitor when dropped.
    pub(crate) fn acquire(self: &Arc<Self>) -> std::io::Result<ScratchDir> {
        let reused = self.shared.idle().pop();
        let path = match reused {
            Some(path) => path,
            None => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                let path = self.root.join(format!("task-{n}"));
                std::fs::create_dir(&path)?;
                path
            }
        };
        Ok(ScratchDir {
            path,
            pool: self.clone(),
            discard: false,
        })
    }

    fn release(&self, path: PathBuf, discard: bool) {
        let mut released = self.shared.released();
        released.push(Released { path, discard });
        if released.len() == 1 {
            drop(released);
            self.janitor.unpark();
        }
    }
}

impl Drop for ScratchPool {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.janitor.unpark();
    }
}

/// Recycles released directories in batches until the pool is dropped.
fn janitor_loop(shared: &Shared) {
    loop {
        let batch = std::mem::take(&mut *shared.released());
        if batch.is_empty() {
            if shared.stopping.load(Ordering::Relaxed) {
                return;
            }
            std::thread::park();
            continue;
        }
        for released in batch {
            recycle(shared, released);
        }
        std::thread::sleep(SWEEP_INTERVAL);
    }
}

/// Returns `path` to the idle pool if the task left it empty, else removes it.
fn recycle(shared: &Shared, Released { path, discard }: Released) {
    let empty =
        !discard && std::fs::read_dir(&path).is_ok_and(|mut entries| entries.next().is_none());
    if empty {
        let mut idle = shared.idle();
        if idle.len() < MAX_IDLE {
            idle.push(path);
            return;
        }
    }
    // A blocking write of an abandoned call may still be landing: retry.
    for attempt in 1..=3 {
        match std::fs::remove_dir_all(&path) {
            Ok(()) => return,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return,
            Err(error) if attempt == 3 => {
                tracing::warn!(path = %path.display(), %error, "could not remove a scratch directory");
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Bytes of regular files under `path`, not following symbolic links.
pub(crate) fn disk_usage(path: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(metadata) if metadata.is_dir() => pending.push(entry.path()),
                Ok(metadata) => total += metadata.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// One task's scratch directory.
pub(crate) struct ScratchDir {
    path: PathBuf,
    pool: Arc<ScratchPool>,
    discard: bool,
}

impl ScratchDir {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory on release even if it looks empty.
    pub(crate) fn discard(&mut self) {
        self.discard = true;
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        self.pool
            .release(std::mem::take(&mut self.path), self.discard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_until(condition: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(
                std::time::Instant::now() < deadline,
                "the janitor never got there"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn an_empty_directory_is_reused_and_a_written_one_is_not() {
        let root = tempfile::tempdir().expect("tempdir");
        let pool = ScratchPool::new(root.path()).expect("pool");
        let first = pool.acquire().expect("dir");
        let first_path = first.path().to_path_buf();
        drop(first);
        wait_until(|| pool.shared.idle().contains(&first_path));
        let second = pool.acquire().expect("dir");
        assert_eq!(second.path(), first_path, "an empty directory is reused");

        std::fs::write(second.path().join("left-behind"), b"x").expect("write");
        drop(second);
        wait_until(|| !first_path.exists());
        let third = pool.acquire().expect("dir");
        assert_ne!(third.path(), first_path);
        assert_eq!(std::fs::read_dir(third.path()).expect("dir").count(), 0);
    }

    #[test]
    fn leftovers_of_a_crash_are_removed_and_live_runtimes_left_alone() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("runtime-1-dead/task-7")).expect("mkdir");
        std::fs::write(root.path().join("runtime-1-dead/task-7/secret"), b"x").expect("write");
        let live = ScratchPool::new(root.path()).expect("pool");
        let task = live.acquire().expect("dir");
        let _second = ScratchPool::new(root.path()).expect("pool");
        assert!(!root.path().join("runtime-1-dead").exists());
        assert!(task.path().is_dir(), "a live runtime's directories survive");
        assert_eq!(std::fs::read_dir(root.path()).expect("dir").count(), 2);
    }
}
