//! Real Docker for the tests: a test image built `FROM scratch` with a
//! static busybox (no registry is reachable), and a runtime whose containers
//! capability is the real one, probed on the running daemon.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use flowmesh_containers::{DockerConfig, DockerProbe, ImagePolicy, WORKER_LABEL};
use flowmesh_runtime::{HostCapabilities, Probe};
use flowmesh_types::CapabilityKind;

use crate::TestRuntime;

/// The test image: busybox's applets under `/bin`, nothing else.
pub const TEST_IMAGE: &str = "flowmesh-test/busybox:1";

/// Where Debian's busybox-static puts the binary.
const BUSYBOX: &str = "/bin/busybox";

/// Builds [`TEST_IMAGE`] unless the daemon has it; once per process.
pub fn test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let present = std::process::Command::new("docker")
            .args(["image", "inspect", TEST_IMAGE])
            .output()
            .is_ok_and(|output| output.status.success());
        if present {
            return;
        }
        let context = tempfile::tempdir().expect("temporary directory");
        if !std::path::Path::new(BUSYBOX).exists() {
            // As the PostgreSQL tests do: install what a fresh machine lacks.
            let script =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/busybox.sh");
            let status = std::process::Command::new(&script)
                .status()
                .unwrap_or_else(|error| panic!("running {}: {error}", script.display()));
            assert!(status.success(), "{} failed", script.display());
        }
        std::fs::copy(BUSYBOX, context.path().join("busybox")).unwrap_or_else(|error| {
            panic!("{BUSYBOX} is needed to build the test image (apt-get install busybox-static): {error}")
        });
        std::fs::write(
            context.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
        )
        .expect("writing the Dockerfile");
        let built = std::process::Command::new("docker")
            .args(["build", "--quiet", "--tag", TEST_IMAGE])
            .arg(context.path())
            .output()
            .expect("running docker build");
        assert!(
            built.status.success(),
            "docker build of {TEST_IMAGE} failed: {}",
            String::from_utf8_lossy(&built.stderr)
        );
    });
    TEST_IMAGE
}

/// A Docker configuration for one test: the local daemon, the test image
/// allowed, and an owner label of its own (the same in every run), so that
/// the test can check that none of its containers is left, and its first
/// probe removes what an earlier, failed run of it left.
pub fn docker_config(test: &str) -> DockerConfig {
    test_image();
    let mut config = DockerConfig::new(format!("test-{test}"));
    config.images = ImagePolicy::new([TEST_IMAGE]);
    config
}

/// Probes `config` on the running daemon; panics if it does not answer.
pub async fn probe(config: DockerConfig) -> HostCapabilities {
    let capability = DockerProbe::new(config)
        .probe()
        .await
        .expect("the Docker daemon answers");
    HostCapabilities::none().with_probe(CapabilityKind::Containers, Ok(capability))
}

/// A runtime with the real containers capability and the `container`
/// plugin loaded.
pub async fn container_runtime(config: DockerConfig) -> TestRuntime {
    let test = TestRuntime::with(probe(config).await, |_| {});
    let report = test.load("container", crate::components::CONTAINER).await;
    assert!(report.reason.is_none(), "{report:?}");
    test
}

/// The containers labelled with `owner`, stopped ones included.
pub async fn containers_of(owner: &str) -> Vec<String> {
    let docker = Docker::connect_with_local_defaults().expect("docker client");
    let options = ListContainersOptions {
        all: true,
        filters: Some([("label".to_string(), vec![format!("{WORKER_LABEL}={owner}")])].into()),
        ..Default::default()
    };
    docker
        .list_containers(Some(options))
        .await
        .expect("listing containers")
        .into_iter()
        .filter_map(|container| container.id)
        .collect()
}

/// Waits until no container labelled with `owner` is left (removal after an
/// abandoned call runs in the background); panics after 20 s.
pub async fn assert_no_containers_left(owner: &str) {
    let owner: Arc<str> = owner.into();
    crate::cluster::eventually(
        "its containers to be removed",
        Duration::from_secs(20),
        || {
            let owner = owner.clone();
            async move {
                match containers_of(&owner).await {
                    left if left.is_empty() => Ok(()),
                    left => Err(format!("{} left: {left:?}", left.len())),
                }
            }
        },
    )
    .await;
}

/// A Unix socket that forwards to the local Docker daemon, and that a test
/// can take away and bring back: a daemon that stops and comes back, as the
/// worker at the other end sees it, without touching the real one.
pub struct DockerProxy {
    path: std::path::PathBuf,
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl DockerProxy {
    /// Listens at `path` and forwards every connection.
    pub fn start(path: &std::path::Path) -> Self {
        let mut proxy = Self {
            path: path.to_path_buf(),
            accept: None,
        };
        proxy.resume();
        proxy
    }

    /// `unix://` address of the proxy, for `DockerConfig::host`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Stops listening and cuts every forwarded connection: the daemon is
    /// gone.
    pub fn stop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }

    /// Listens again: the daemon is back.
    pub fn resume(&mut self) {
        self.stop();
        let listener =
            tokio::net::UnixListener::bind(&self.path).expect("binding the proxy socket");
        // The daemon every other part of the tests uses: DOCKER_HOST, else
        // the local socket.
        let host = DockerConfig::new("").host_name();
        let daemon_socket: Arc<str> = host.trim_start_matches("unix://").into();
        self.accept = Some(tokio::spawn(async move {
            // Dropped with this task: aborting it cuts every connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let daemon_socket = daemon_socket.clone();
                connections.spawn(async move {
                    if let Ok(mut daemon) = tokio::net::UnixStream::connect(&*daemon_socket).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut daemon).await;
                    }
                });
            }
        }));
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
