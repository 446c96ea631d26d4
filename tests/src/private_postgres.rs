//! A PostgreSQL server of one test's own, which the test may stop and start
//! again under load without disturbing the shared test server other tests
//! use: a fresh cluster (`initdb`) in a temporary directory on a free port,
//! run by the `postgres` system user with the distribution's binaries.
//!
//! The binaries come from the packages `scripts/postgres.sh` installs; it is
//! run first when they are missing (also when `FLOWMESH_TEST_POSTGRES`
//! points the other tests at a server elsewhere).

use std::path::PathBuf;
use std::process::Command;

use crate::processes::free_port;

/// A private PostgreSQL server; stopped and deleted when dropped.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// A URL to its `postgres` database, as role `flowmesh` (trusted on
    /// loopback).
    pub url: String,
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// Runs `command` (a shell line) as `user`, through `su` as root or `sudo`
/// otherwise; whether it succeeded.
fn run_as(user: &str, command: &str) -> bool {
    if is_root() {
        Command::new("su").args([user, "-c", command]).status()
    } else {
        Command::new("sudo")
            .args(["-u", user, "sh", "-c", command])
            .status()
    }
    .is_ok_and(|status| status.success())
}

/// Runs `command` as the `postgres` system user; it must succeed.
fn as_postgres(command: &str) {
    assert!(run_as("postgres", command), "as postgres: {command}");
}

impl PrivatePostgres {
    /// Creates the cluster and starts it.
    pub fn start() -> Self {
        if std::fs::read_dir("/usr/lib/postgresql").is_err() {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
            let status = Command::new(script)
                .stdout(std::process::Stdio::null())
                .status()
                .expect("scripts/postgres.sh runs");
            assert!(status.success(), "scripts/postgres.sh installs PostgreSQL");
        }
        let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL is installed");
        let mut versions: Vec<PathBuf> = versions
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .collect();
        versions.sort_by_key(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.parse::<u32>().ok())
                .unwrap_or(0)
        });
        let bin = versions.pop().expect("a PostgreSQL version").join("bin");
        let dir = tempfile::tempdir().expect("a directory for the cluster");
        assert!(
            run_as(
                "root",
                &format!("chown postgres:postgres {}", dir.path().display())
            ),
            "chown the cluster's directory to postgres"
        );
        let port = free_port();
        let postgres = Self {
            url: format!("postgres://flowmesh@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            port,
        };
        as_postgres(&format!(
            "{} -D {} -A trust -U flowmesh --no-sync >/dev/null",
            postgres.bin.join("initdb").display(),
            postgres.data().display()
        ));
        postgres.start_again();
        postgres
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn start_again(&self) {
        as_postgres(&format!(
            "{} -D {data} -l {dir}/postgres.log -w -o '-p {port} -k {dir} -c listen_addresses=127.0.0.1' start >/dev/null",
            self.bin.join("pg_ctl").display(),
            data = self.data().display(),
            dir = self.dir.path().display(),
            port = self.port,
        ));
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m
    /// immediate`: no checkpoint, recovery at the next start).
    pub fn crash(&self) {
        as_postgres(&format!(
            "{} -D {} -m immediate -w stop >/dev/null",
            self.bin.join("pg_ctl").display(),
            self.data().display()
        ));
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // The cluster's files are the postgres user's: removed as it.
        run_as(
            "postgres",
            &format!(
                "{} -D {} -m immediate stop >/dev/null 2>&1; rm -rf {}",
                self.bin.join("pg_ctl").display(),
                self.data().display(),
                self.data().display()
            ),
        );
    }
}
