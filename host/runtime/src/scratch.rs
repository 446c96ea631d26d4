//! Per-task scratch directories.
//!
//! Every task gets an empty directory, preopened read-write at `/scratch` and
//! nothing else of the host file system. Creating and removing a directory per
//! task costs more than the rest of the sandbox together (on ext4 an `rmdir`
//! can wait on the disk), so directories are recycled. When a task ends, its
//! directory goes to the *janitor*, a background thread: a directory the task
//! left empty goes back to the idle pool, one it wrote to is removed and never
//! reused. A task therefore never sees anything another task wrote, and
//! neither the check nor the removal is on a task's path.
//!
//! Whatever is in the scratch root at startup is left over from a crash and is
//! removed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;
use std::time::Duration;

/// Idle directories kept for reuse.
const MAX_IDLE: usize = 1024;
/// The janitor works in batches at most this often, so that releasing a
/// directory rarely has to wake it.
const SWEEP_INTERVAL: Duration = Duration::from_millis(1);

pub(crate) struct ScratchPool {
    root: PathBuf,
    next: AtomicU64,
    shared: Arc<Shared>,
    janitor: Thread,
}

#[derive(Default)]
struct Shared {
    idle: Mutex<Vec<PathBuf>>,
    released: Mutex<Vec<PathBuf>>,
    stopping: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn released(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.released.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ScratchPool {
    /// Creates `root` if needed, empties it, and starts the janitor.
    pub(crate) fn new(root: &Path) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(root)?;
        for entry in std::fs::read_dir(root)? {
            let path = entry?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
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
            root: root.to_path_buf(),
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
        })
    }

    fn release(&self, path: PathBuf) {
        let mut released = self.shared.released();
        released.push(path);
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
        for path in batch {
            recycle(shared, path);
        }
        std::thread::sleep(SWEEP_INTERVAL);
    }
}

/// Returns `path` to the idle pool if the task left it empty, else removes it.
fn recycle(shared: &Shared, path: PathBuf) {
    let empty = std::fs::read_dir(&path).is_ok_and(|mut entries| entries.next().is_none());
    if empty {
        let mut idle = shared.idle();
        if idle.len() < MAX_IDLE {
            idle.push(path);
            return;
        }
    }
    if let Err(error) = std::fs::remove_dir_all(&path) {
        tracing::warn!(path = %path.display(), %error, "could not remove a scratch directory");
    }
}

/// One task's scratch directory.
pub(crate) struct ScratchDir {
    path: PathBuf,
    pool: Arc<ScratchPool>,
}

impl ScratchDir {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        self.pool.release(std::mem::take(&mut self.path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_until(condition: impl Fn() -> bool) {
        while !condition() {
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
    fn leftovers_of_a_crash_are_removed_at_start() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("task-7")).expect("mkdir");
        std::fs::write(root.path().join("task-7/secret"), b"x").expect("write");
        let _pool = ScratchPool::new(root.path()).expect("pool");
        assert_eq!(std::fs::read_dir(root.path()).expect("dir").count(), 0);
    }
}
