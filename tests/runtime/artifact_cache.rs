//! The compiled-artifact cache: compile once per component and engine, and
//! never load an artifact this host did not seal.

use flowmesh_runtime::{CacheStats, ComponentDigest, HostCapabilities, Runtime};
use flowmesh_tests::{TestRuntime, components, output};

fn stats(compiled: u64, loaded: u64, rejected: u64) -> CacheStats {
    CacheStats {
        compiled,
        loaded,
        rejected,
    }
}

#[tokio::test]
async fn a_second_load_of_the_same_component_does_not_recompile() {
    let first = TestRuntime::with_private_cache();
    first.load("echo", components::ECHO).await;
    assert_eq!(first.runtime.artifact_cache().stats(), stats(1, 0, 0));
    first.load("echo", components::ECHO).await;
    assert_eq!(first.runtime.artifact_cache().stats(), stats(1, 1, 0));

    // A new runtime (a restarted worker) on the same cache directory.
    let config = TestRuntime::config(first.dir.path());
    let second = Runtime::new(config, HostCapabilities::none()).expect("runtime");
    second
        .load_plugin_file("echo", components::ECHO.as_ref())
        .await
        .expect("loads");
    assert_eq!(second.artifact_cache().stats(), stats(0, 1, 0));
    let artifacts = std::fs::read_dir(first.dir.path().join("cache"))
        .expect("cache dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        })
        .count();
    assert_eq!(artifacts, 1);
}

#[tokio::test]
async fn a_tampered_artifact_is_discarded_and_recompiled() {
    let first = TestRuntime::with_private_cache();
    first.load("echo", components::ECHO).await;
    let bytes = std::fs::read(components::ECHO).expect("component");
    let path = first
        .runtime
        .artifact_cache()
        .artifact_path(&ComponentDigest::of(&bytes));
    let mut artifact = std::fs::read(&path).expect("artifact");
    let middle = artifact.len() / 2;
    artifact[middle] ^= 0xff;
    std::fs::write(&path, artifact).expect("tamper");

    let config = TestRuntime::config(first.dir.path());
    let second = Runtime::new(config, HostCapabilities::none()).expect("runtime");
    second
        .load_plugin_file("echo", components::ECHO.as_ref())
        .await
        .expect("loads");
    assert_eq!(second.artifact_cache().stats(), stats(1, 0, 1));
}

#[tokio::test]
async fn an_artifact_planted_without_the_key_is_never_loaded() {
    let test = TestRuntime::with_private_cache();
    let bytes = std::fs::read(components::ECHO).expect("component");
    let path = test
        .runtime
        .artifact_cache()
        .artifact_path(&ComponentDigest::of(&bytes));
    // Well-formed compiled code from the same engine, but not sealed by this cache.
    let foreign = test
        .runtime
        .engine()
        .precompile_component(&bytes)
        .expect("compiles");
    let mut planted = foreign.clone();
    planted.extend_from_slice(&[0u8; 32]);
    std::fs::write(&path, planted).expect("plant");

    test.load("echo", components::ECHO).await;
    assert_eq!(test.runtime.artifact_cache().stats(), stats(1, 0, 1));
    let run = test.run("echo", r#"{"message": "ok"}"#).await;
    assert_eq!(output(&run)["message"], "ok");
}

#[cfg(unix)]
#[tokio::test]
async fn a_seal_key_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let test = TestRuntime::with_private_cache();
    let cache = test.dir.path().join("cache");
    std::fs::set_permissions(
        cache.join("seal.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let error = Runtime::new(
        TestRuntime::config(test.dir.path()),
        HostCapabilities::none(),
    )
    .err()
    .expect("refused");
    assert!(error.to_string().contains("chmod 600"), "{error}");
}
