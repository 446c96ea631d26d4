//! Hostile guests: each fixture in `tests/guests/` attacks or abuses the
//! sandbox in one way. Each must fail only its own task, with an error that
//! says what happened, and the next task on the same runtime must succeed.

use std::time::{Duration, Instant};

use flowmesh_runtime::{HostCapabilities, RuntimeConfig, TaskLimits, TaskRun};
use flowmesh_tests::{TestRuntime, cancel_after, components, limits, output};
use flowmesh_types::{TaskError, TaskErrorCode, TaskEvent};
use tokio_util::sync::CancellationToken;

/// Every guest fixture has a test of the same name in this file.
macro_rules! assert_guest_has_test {
    ($name:ident) => {
        const _: fn() = $name;
    };
}
flowmesh_tests::foreach_guest!(assert_guest_has_test);

/// A runtime with echo and the fixture `name` loaded.
async fn runtime_with(name: &str, path: &str) -> TestRuntime {
    configured_runtime_with(name, path, |_| {}).await
}

/// [`runtime_with`], its configuration adjusted by `configure`.
async fn configured_runtime_with(
    name: &str,
    path: &str,
    configure: impl FnOnce(&mut RuntimeConfig),
) -> TestRuntime {
    let test = TestRuntime::with(HostCapabilities::none(), configure);
    test.load("echo", components::ECHO).await;
    test.load(name, path).await;
    test
}

/// The fixture's task failed with `code`; echo still works afterwards.
async fn fails_alone(test: &TestRuntime, run: TaskRun, code: TaskErrorCode) -> TaskError {
    let error = run.outcome.expect_err("the hostile task must fail");
    assert_eq!(error.code, code, "{error}");
    let echo = test.run("echo", r#"{"message": "still serving"}"#).await;
    assert_eq!(output(&echo)["message"], "still serving");
    error
}

#[tokio::test]
async fn uses_containers() {
    // Covered in depth by runtime_capabilities; here: it cannot even start.
    let test = runtime_with("uses-containers", components::guests::USES_CONTAINERS).await;
    let run = test.run("uses-containers", "{}").await;
    fails_alone(&test, run, TaskErrorCode::UnknownTaskType).await;
}

#[tokio::test]
async fn uses_gpu() {
    // Covered in depth by runtime_gpu; here: it cannot even start.
    let test = runtime_with("uses-gpu", components::guests::USES_GPU).await;
    let run = test.run("uses-gpu", "{}").await;
    fails_alone(&test, run, TaskErrorCode::UnknownTaskType).await;
}

#[tokio::test]
async fn infinite_loop() {
    let test = runtime_with("infinite-loop", components::guests::INFINITE_LOOP).await;
    let deadline = Duration::from_secs(1);
    let started = Instant::now();
    let (run, _) = test
        .run_with(
            "infinite-loop",
            "{}",
            limits(|l| l.timeout = deadline),
            CancellationToken::new(),
        )
        .await;
    let took = started.elapsed();
    let error = fails_alone(&test, run, TaskErrorCode::Timeout).await;
    assert!(error.message.contains("timeout of 1s"), "{error}");
    assert!(took < 2 * deadline, "interrupted only after {took:?}");
}

#[tokio::test]
async fn memory_bomb() {
    let test = runtime_with("memory-bomb", components::guests::MEMORY_BOMB).await;
    let (run, _) = test
        .run_with(
            "memory-bomb",
            "{}",
            limits(|l| l.memory_bytes = 64 << 20),
            CancellationToken::new(),
        )
        .await;
    let error = fails_alone(&test, run, TaskErrorCode::MemoryLimit).await;
    assert!(error.message.contains("limit of 64.0 MiB"), "{error}");
}

#[tokio::test]
async fn stack_overflow() {
    let test = runtime_with("stack-overflow", components::guests::STACK_OVERFLOW).await;
    let run = test.run("stack-overflow", "{}").await;
    let error = fails_alone(&test, run, TaskErrorCode::StackOverflow).await;
    assert!(error.message.contains("call stack"), "{error}");
}

#[tokio::test]
async fn retryable() {
    let test = runtime_with("retryable", components::guests::RETRYABLE).await;
    let run = test.run("retryable", "{}").await;
    let error = fails_alone(&test, run, TaskErrorCode::Retryable).await;
    assert!(error.is_retryable());
    assert_eq!(error.message, "the backend is busy; try again");
}

#[tokio::test]
async fn panic() {
    let test = runtime_with("panic", components::guests::PANIC).await;
    let (run, events) = test
        .run_with(
            "panic",
            "{}",
            TaskLimits::default(),
            CancellationToken::new(),
        )
        .await;
    let error = fails_alone(&test, run, TaskErrorCode::Trap).await;
    assert!(
        error.message.contains("panicked at")
            && error
                .message
                .contains("the panic fixture panics on purpose"),
        "{error}"
    );
    assert!(
        events.iter().any(
            |e| matches!(e, TaskEvent::Log { message, .. } if message.contains("panics on purpose"))
        ),
        "the panic message is in the task log: {events:?}"
    );
}

#[tokio::test]
async fn trap() {
    let test = runtime_with("trap", components::guests::TRAP).await;
    let run = test.run("trap", "{}").await;
    let error = fails_alone(&test, run, TaskErrorCode::Trap).await;
    assert!(error.message.contains("out of bounds"), "{error}");
}

#[tokio::test]
async fn oversized_output() {
    let test = runtime_with("oversized-output", components::guests::OVERSIZED_OUTPUT).await;
    let run = test.run("oversized-output", "{}").await;
    let error = fails_alone(&test, run, TaskErrorCode::InvalidOutput).await;
    assert!(
        error.message.contains("over the limit of 1048576 bytes"),
        "{error}"
    );
}

#[tokio::test]
async fn escape_filesystem() {
    let test = runtime_with("escape-filesystem", components::guests::ESCAPE_FILESYSTEM).await;
    let run = test.run("escape-filesystem", "{}").await;
    let error = fails_alone(&test, run, TaskErrorCode::Failed).await;
    // It could use its own scratch directory, and nothing else.
    assert!(
        error.message.starts_with("scratch works; denied: "),
        "{error}"
    );
    for path in [
        "/etc/passwd",
        "/scratch/../etc/passwd",
        "../etc/passwd",
        "/proc/self/environ",
        "/scratch/.. (list)",
    ] {
        assert!(
            error.message.contains(&format!("{path}: ")),
            "{path} not attempted: {error}"
        );
    }
    assert!(
        !error.message.contains("root:"),
        "leaked /etc/passwd: {error}"
    );
    // The next task gets an empty scratch directory again.
    let run = test.run("escape-filesystem", "{}").await;
    let error = run.outcome.expect_err("denied again");
    assert!(
        error.message.starts_with("scratch works; denied: "),
        "{error}"
    );
}

/// A plugin that imports no part of WASI's file system can reach no file,
/// so its tasks get no scratch directory: they still run when the scratch
/// root is unusable, where a task of a plugin that can open files is refused
/// with a host error.
#[tokio::test]
async fn only_a_plugin_that_can_reach_files_gets_a_scratch_directory() {
    let test = runtime_with("escape-filesystem", components::guests::ESCAPE_FILESYSTEM).await;
    // No task has run yet. Put a file where the runtime's own directory was:
    // creating a task's directory in it now fails, even for root.
    let root = test.dir.path().join("scratch");
    let own: Vec<_> = std::fs::read_dir(&root)
        .expect("scratch root")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(own.len(), 1, "one runtime's directory: {own:?}");
    std::fs::remove_dir_all(&own[0]).expect("remove");
    std::fs::write(&own[0], b"not a directory").expect("write");

    let echo = test.run("echo", r#"{"message": "no files"}"#).await;
    assert_eq!(output(&echo)["message"], "no files");
    let run = test.run("escape-filesystem", "{}").await;
    let error = run.outcome.expect_err("no scratch directory could be made");
    assert_eq!(error.code, TaskErrorCode::Host, "{error}");
    assert!(
        error
            .message
            .starts_with("could not create the task's scratch directory"),
        "{error}"
    );
}

#[tokio::test]
async fn open_socket() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("address").port();
    let test = runtime_with("open-socket", components::guests::OPEN_SOCKET).await;
    let run = test
        .run("open-socket", &format!(r#"{{"port": {port}}}"#))
        .await;
    let error = fails_alone(&test, run, TaskErrorCode::Failed).await;
    assert!(
        error
            .message
            .starts_with(&format!("connect 127.0.0.1:{port}: ")),
        "{error}"
    );
    assert!(
        listener.accept().is_err(),
        "the guest reached the host's listener"
    );
}

#[tokio::test]
async fn read_env() {
    // The test process has PATH, HOME and more; none of it may show.
    assert!(std::env::vars().next().is_some());
    let test = runtime_with("read-env", components::guests::READ_ENV).await;
    let run = test.run("read-env", "{}").await;
    let error = fails_alone(&test, run, TaskErrorCode::Failed).await;
    assert_eq!(
        error.message,
        "no environment variables and no arguments are visible"
    );
}

#[tokio::test]
async fn cancelling_a_running_loop_interrupts_it_promptly() {
    let test = runtime_with("infinite-loop", components::guests::INFINITE_LOOP).await;
    let cancel = cancel_after(Duration::from_millis(200));
    let started = Instant::now();
    let (run, _) = test
        .run_with(
            "infinite-loop",
            "{}",
            limits(|l| l.timeout = Duration::from_secs(10)),
            cancel,
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cancelled only after {:?}",
        started.elapsed()
    );
    fails_alone(&test, run, TaskErrorCode::Cancelled).await;
}

#[tokio::test]
async fn cancelling_a_task_blocked_in_a_host_call_interrupts_it() {
    let test = TestRuntime::new();
    test.load("echo", components::ECHO).await;
    let cancel = cancel_after(Duration::from_millis(200));
    let (run, _) = test
        .run_with(
            "sleep",
            r#"{"duration": "1h"}"#,
            TaskLimits::default(),
            cancel,
        )
        .await;
    fails_alone(&test, run, TaskErrorCode::Cancelled).await;
}

#[tokio::test]
async fn a_timeout_interrupts_a_task_blocked_in_a_host_call() {
    let test = TestRuntime::new();
    test.load("echo", components::ECHO).await;
    let (run, _) = test
        .run_with(
            "sleep",
            r#"{"duration": "1h"}"#,
            limits(|l| l.timeout = Duration::from_millis(300)),
            CancellationToken::new(),
        )
        .await;
    let error = fails_alone(&test, run, TaskErrorCode::Timeout).await;
    assert!(error.message.contains("timeout of 300ms"), "{error}");
}

#[tokio::test]
async fn fuel_bounds_the_instructions_a_task_runs() {
    let test = configured_runtime_with(
        "infinite-loop",
        components::guests::INFINITE_LOOP,
        |config| {
            config.fuel_metering = true;
        },
    )
    .await;
    let (run, _) = test
        .run_with(
            "infinite-loop",
            "{}",
            limits(|l| l.fuel = Some(10_000_000)),
            CancellationToken::new(),
        )
        .await;
    fails_alone(&test, run, TaskErrorCode::FuelExhausted).await;
}

#[tokio::test]
async fn invalid_output() {
    let test = runtime_with("invalid-output", components::guests::INVALID_OUTPUT).await;
    let run = test.run("invalid-output", "{}").await;
    let error = fails_alone(&test, run, TaskErrorCode::InvalidOutput).await;
    assert!(error.message.contains("not a JSON document"), "{error}");
}

#[tokio::test]
async fn read_residue() {
    // Each task writes into every other page of two buffers, 1,024 disjoint
    // dirty runs; the instance slot is reused for the next task, and nothing
    // of it may survive into that task. Echo tasks in between make the pool
    // hand out slots to another component too.
    let test = runtime_with("read-residue", components::guests::READ_RESIDUE).await;
    for marker in 1..=12_u8 {
        let run = test
            .run("read-residue", &format!(r#"{{"marker": {marker}}}"#))
            .await;
        let found = output(&run);
        assert_eq!(
            found["image_pages_changed_before"], 0,
            "task {marker}: {found}"
        );
        assert_eq!(
            found["zeroed_pages_changed_before"], 0,
            "task {marker}: {found}"
        );
        // Its own writes are seen, so a count of 0 above means something.
        assert_eq!(
            found["image_pages_changed_after"], 512,
            "task {marker}: {found}"
        );
        assert_eq!(
            found["zeroed_pages_changed_after"], 512,
            "task {marker}: {found}"
        );
        if marker % 4 == 0 {
            let echo = test.run("echo", r#"{"message": "between"}"#).await;
            assert_eq!(output(&echo)["message"], "between");
        }
    }
}

#[tokio::test]
async fn fill_scratch() {
    let test =
        configured_runtime_with("fill-scratch", components::guests::FILL_SCRATCH, |config| {
            config.scratch_check_interval = Duration::from_millis(20);
        })
        .await;
    let (run, _) = test
        .run_with(
            "fill-scratch",
            "{}",
            limits(|l| l.scratch_bytes = 16 << 20),
            CancellationToken::new(),
        )
        .await;
    let error = fails_alone(&test, run, TaskErrorCode::DiskLimit).await;
    assert!(
        error.message.contains("over its limit of 16.0 MiB"),
        "{error}"
    );
}

#[tokio::test]
async fn hijack_echo() {
    // The runtime runs what it is given: it is the server that never routes
    // echo tasks to this plugin while the installed echo declares the type
    // (tests/server/isolation.rs).
    let test = TestRuntime::new();
    let report = test.load("hijack", components::guests::HIJACK_ECHO).await;
    assert_eq!(report.status, flowmesh_types::PluginStatus::Available);
    let run = test.run("echo", r#"{"message": "hello"}"#).await;
    assert_eq!(output(&run)["message"], "forged by hijack");
}

#[tokio::test]
async fn slow_validate() {
    let test = configured_runtime_with(
        "slow-validate",
        components::guests::SLOW_VALIDATE,
        |config| config.validate_timeout = Duration::from_millis(200),
    )
    .await;
    let error = test
        .runtime
        .validate("slow-validate", r#"{"input": "loop"}"#)
        .await
        .expect_err("a validate() that never returns cannot check anything");
    assert_eq!(error.code, TaskErrorCode::Timeout, "{error}");
    assert!(
        error
            .message
            .contains("validate() ran past its timeout of 200ms")
            && error.message.contains("validate_timeout")
            && error.message.contains("not spec.timeout"),
        "the message names the setting that governs the check: {error}"
    );
    let echo = test.run("echo", r#"{"message": "still serving"}"#).await;
    assert_eq!(output(&echo)["message"], "still serving");
}

#[tokio::test]
async fn many_errors() {
    let test = runtime_with("many-errors", components::guests::MANY_ERRORS).await;
    let errors = test
        .runtime
        .validate("many-errors", "{}")
        .await
        .expect("the check runs")
        .expect_err("the spec is refused");
    assert_eq!(errors.len(), flowmesh_runtime::MAX_FIELD_ERRORS);
    let note = errors.last().expect("a note");
    assert!(
        note.message.contains("120000 in all"),
        "the last problem says the list was cut: {note}"
    );
    assert!(
        errors
            .iter()
            .all(|error| error.message.len() <= flowmesh_runtime::MAX_FIELD_ERROR_BYTES),
        "each message is cut"
    );
}
