//! Checkpoints of SQLite's write-ahead log, kept off the writer.
//!
//! Every commit appends the pages it changed to the log (the WAL); a
//! checkpoint copies them into the database file. Two parts of that must
//! not happen in the writer, whose commits every claim waits for:
//!
//! - **The copy and its syncs.** A connection of its own copies the log
//!   four times a second ([`CHECKPOINT_INTERVAL`]), passively: it waits on
//!   no reader and no writer. (Once a second, the log of a busy store grew
//!   10,000–15,000 pages between copies while the scale benchmark's
//!   workers claimed, and up to 37,000 while it submitted its tasks.)
//! - **Starting the log over.** The log goes back to its start only when a
//!   write begins while every frame has been copied and no reader still
//!   reads one. Under steady load that moment rarely comes by itself: a
//!   commit lands while the copy runs, or a reader holds an old frame. The
//!   log then grows until the writer's own fallback checkpoint (at
//!   [`WRITER_FALLBACK_PAGES`]) runs inside a commit, copying and syncing
//!   while every claim waits, commit after commit until a start-over
//!   succeeds. In the scale benchmark, with a fallback at 10,000 pages,
//!   that was two to four commits a second of 20–100 ms each.
//!
//! So once the log passes [`RESTART_PAGES`], the checkpointer makes the
//! start-over happen. It copies passively until a pass is quick (a few
//! milliseconds, [`QUICK_PASS`]; the last of [`MAX_PASSES`] may take
//! [`LAST_QUICK_PASS`]) or finds nothing new (little was written
//! meanwhile), then holds the write gate
//! for a `RESTART` checkpoint: that copies the few frames left and waits
//! briefly for readers of old frames ([`RESTART_WAIT_MS`]; if they stay, it
//! tries again next time). The first write after it starts the log over
//! and syncs the log's new header; the checkpointer makes that write
//! itself, at once, rather than leave the sync to the next claim's commit.
//! The writer waits only for that short step, two or three times a second
//! under load. In the scale benchmark on a 2-core machine, most take
//! 0.1–12 ms and the longest 20–30 ms: 210–440 ms of a 20 s run in all.
//! With a 20 ms pass counted as quick it was 620–660 ms (copies four times
//! a second) and single waits took up to 30–80 ms (once or four times a
//! second).

use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError};

/// How often the server checkpoints a SQLite store: [`Store::checkpoint`].
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// Pages in the log past which the checkpointer starts it over (16 MiB of
/// 4 KiB pages).
pub const RESTART_PAGES: i64 = 4_096;

/// Pages in the log past which the writer checkpoints by itself, in a
/// commit (160 MiB): a fallback for a store no server checkpoints, or whose
/// readers keep the checkpointer from starting the log over for long. (At
/// 10,000 pages it ran in commits several times a second while a slow
/// reader held the start-over back.)
pub(super) const WRITER_FALLBACK_PAGES: i64 = 40_000;

/// What the log's file is cut back to when the log starts over, should a
/// burst have grown it past this (64 MiB): SQLite reuses the file, and
/// never shrinks it otherwise.
pub(super) const LOG_FILE_LIMIT_BYTES: u64 = 64 << 20;

/// A passive pass shorter than this left little to copy under the gate:
/// the frames of a few milliseconds' commits (the module's documentation
/// gives what 20 ms left).
const QUICK_PASS: Duration = Duration::from_millis(5);

/// What counts as quick for the last pass: on a disk on which no pass
/// takes under [`QUICK_PASS`], a last pass under this still starts the log
/// over, as any pass under it did when this was the only bound (a slower
/// disk leaves it to the writer's fallback, as before).
const LAST_QUICK_PASS: Duration = Duration::from_millis(20);

/// Passive passes before giving a start-over up until the next checkpoint.
const MAX_PASSES: usize = 8;

/// How long a `RESTART` checkpoint waits for a lock it needs, readers of old
/// frames above all (the checkpointer's busy timeout, per lock), the writer
/// waiting meanwhile. A reader that stays (a long listing, say) makes every
/// try wait this long and give up, four times a second: at 5 ms that costs
/// the writer 2 % of its time, as 20 ms once a second did. In the scale
/// benchmark no start-over was busy even with a 3 ms wait.
pub(super) const RESTART_WAIT_MS: u64 = 5;

/// What [`Store::checkpoint`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpointed {
    /// Pages in the log when it was last copied (0 on PostgreSQL).
    pub log_pages: i64,
    /// Whether the log was started over.
    pub restarted: bool,
}

/// What one `PRAGMA wal_checkpoint` reported.
#[derive(Debug, Clone, Copy)]
struct Pass {
    /// It could not finish: a writer, or readers of old frames.
    busy: bool,
    /// Frames in the log.
    log: i64,
    /// Frames of it copied into the database file.
    copied: i64,
}

impl Store {
    /// SQLite: copies the write-ahead log's committed pages into the
    /// database file on a connection of its own, and starts a long log over
    /// (see the module's documentation). The server runs it every
    /// [`CHECKPOINT_INTERVAL`]. Nothing on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<Checkpointed, StoreError> {
        let mut done = Checkpointed::default();
        let Some(checkpointer) = &self.checkpointer else {
            return Ok(done);
        };
        let mut before = None;
        for passes in 1..=MAX_PASSES {
            let started = Instant::now();
            let pass = checkpoint_pass(checkpointer, PASSIVE).await?;
            done.log_pages = pass.log;
            if pass.log < RESTART_PAGES {
                return Ok(done);
            }
            // Little was written meanwhile: the pass was quick, or nothing
            // was written since the one before. Each pass copies what was
            // written during the one before, so passes shorten; the last
            // may take longer, for a disk on which none is that quick.
            let quick = if passes == MAX_PASSES {
                LAST_QUICK_PASS
            } else {
                QUICK_PASS
            };
            let quiet = started.elapsed() < quick || before == Some(pass.log);
            before = Some(pass.log);
            if quiet {
                let _gate = self.hold_writes().await;
                let restart = checkpoint_pass(checkpointer, RESTART).await?;
                let started_over = !restart.busy && first_write(checkpointer).await;
                tracing::debug!(
                    busy = restart.busy,
                    log = restart.log,
                    copied = restart.copied,
                    "write-ahead log restart"
                );
                done.log_pages = restart.log;
                done.restarted = started_over;
                return Ok(done);
            }
        }
        Ok(done)
    }
}

/// Copies what it can, waiting on no one.
const PASSIVE: &str = "PRAGMA wal_checkpoint(PASSIVE)";
/// Copies everything, then waits (the busy timeout) until no reader reads
/// the log, so that the next commit starts it over.
const RESTART: &str = "PRAGMA wal_checkpoint(RESTART)";

/// The first write after a restart checkpoint, which starts the log over
/// and syncs its new header: made on the checkpointer, right after the
/// restart's own syncs, rather than left to the next claim's commit. It
/// rewrites the database header's user version as it is (FlowMesh keeps
/// that field unused). Whether it was written: should SQLite be busy (the
/// checkpointer waits [`RESTART_WAIT_MS`] at most), the next commit starts
/// the log over.
async fn first_write(checkpointer: &sqlx::AnyPool) -> bool {
    let write = async {
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(checkpointer)
            .await?;
        sqlx::query(AssertSqlSafe(format!("PRAGMA user_version = {version}")))
            .execute(checkpointer)
            .await?;
        Ok::<_, sqlx::Error>(())
    };
    match write.await {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(%error, "the log's first write after a restart waits for the next commit");
            false
        }
    }
}

/// Runs `statement`, [`PASSIVE`] or [`RESTART`], on the checkpointer.
async fn checkpoint_pass(
    checkpointer: &sqlx::AnyPool,
    statement: &'static str,
) -> Result<Pass, StoreError> {
    let row = sqlx::query(statement).fetch_one(checkpointer).await?;
    Ok(Pass {
        busy: row.try_get::<i64, _>(0)? != 0,
        log: row.try_get(1)?,
        copied: row.try_get(2)?,
    })
}
