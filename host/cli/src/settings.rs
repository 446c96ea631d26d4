//! Where a command finds its server and token.
//!
//! Each setting comes from the first of: the flag (`--server`, `--token`),
//! the environment (`FLOWMESH_SERVER`, `FLOWMESH_TOKEN`), the config file,
//! the default (`http://127.0.0.1:7380`, no token).
//!
//! The config file is TOML, at `$FLOWMESH_CONFIG`, else
//! `$XDG_CONFIG_HOME/flowmesh/config.toml`, else
//! `~/.config/flowmesh/config.toml`:
//!
//! ```toml
//! server = "http://127.0.0.1:7380"
//! token = "fm_…"
//! ```
//!
//! `flowmesh up` writes it (mode 0600), so the next command just works.

use std::path::{Path, PathBuf};

use crate::error::{CliError, CliResult};

/// The server address used when nothing else names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7380";

/// The config file's path.
pub fn config_path() -> PathBuf {
    if let Some(path) = std::env::var_os("FLOWMESH_CONFIG") {
        return path.into();
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| ".".into())
                .join(".config")
        });
    base.join("flowmesh").join("config.toml")
}

/// The config file's contents.
#[derive(Debug, Default)]
pub struct ConfigFile {
    table: toml::Table,
}

impl ConfigFile {
    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> CliResult<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(error) => {
                return Err(CliError::usage(format!(
                    "cannot read the config file {}: {error}",
                    path.display()
                )));
            }
        };
        let table = text.parse::<toml::Table>().map_err(|error| {
            CliError::usage(format!(
                "the config file {} is not valid TOML: {error}\nhint: fix or delete it; `flowmesh up` writes a new one",
                path.display()
            ))
        })?;
        for key in ["server", "token", "ca_cert"] {
            if let Some(value) = table.get(key)
                && !value.is_str()
            {
                return Err(CliError::usage(format!(
                    "{key} in the config file {} must be a string",
                    path.display()
                )));
            }
        }
        Ok(Self { table })
    }

    fn string(&self, key: &str) -> Option<String> {
        self.table
            .get(key)
            .and_then(toml::Value::as_str)
            .map(str::to_string)
    }

    /// `server`.
    pub fn server(&self) -> Option<String> {
        self.string("server")
    }

    /// `token`.
    pub fn token(&self) -> Option<String> {
        self.string("token")
    }

    /// `ca_cert`: a CA certificate (PEM) to trust for the server.
    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.string("ca_cert").map(PathBuf::from)
    }

    /// Sets `server`, `token` and `ca_cert` (removed when `None`), keeping
    /// every other key, and writes the file with mode 0600 (it holds a
    /// secret).
    pub fn save_target(
        mut self,
        path: &Path,
        server: &str,
        token: &str,
        ca_cert: Option<&Path>,
    ) -> anyhow::Result<()> {
        self.table
            .insert("server".into(), toml::Value::String(server.to_string()));
        self.table
            .insert("token".into(), toml::Value::String(token.to_string()));
        match ca_cert {
            Some(ca) => {
                self.table.insert(
                    "ca_cert".into(),
                    toml::Value::String(ca.display().to_string()),
                );
            }
            None => {
                self.table.remove("ca_cert");
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let text = toml::to_string(&self.table)?;
        flowmesh_server::write_private_file(path, text.as_bytes())
    }
}

/// The server and token a client command talks to.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL.
    pub server: String,
    /// Bearer token, if any.
    pub token: Option<String>,
    /// A CA certificate to trust besides the system's roots, if any.
    pub ca_cert: Option<PathBuf>,
    /// Whether the server was named (flag, environment or config file)
    /// rather than defaulted.
    pub named: bool,
}

impl Target {
    /// Resolves the target from the flags (already merged with the
    /// environment by clap) and the config file.
    pub fn resolve(
        server: Option<String>,
        token: Option<String>,
        config: &ConfigFile,
    ) -> CliResult<Self> {
        Self::resolve_with_ca(server, token, None, config)
    }

    /// [`Target::resolve`], with `--ca-cert` (which wins over the config
    /// file's `ca_cert`).
    pub fn resolve_with_ca(
        server: Option<String>,
        token: Option<String>,
        ca_cert: Option<PathBuf>,
        config: &ConfigFile,
    ) -> CliResult<Self> {
        let named = server.is_some() || config.server().is_some();
        let server = server
            .or_else(|| config.server())
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        if !server.starts_with("http://") && !server.starts_with("https://") {
            return Err(CliError::usage(format!(
                "--server {server:?} must be an http:// or https:// URL such as http://127.0.0.1:7380"
            )));
        }
        Ok(Self {
            server: server.trim_end_matches('/').to_string(),
            token: token.or_else(|| config.token()),
            ca_cert: ca_cert.or_else(|| config.ca_cert()),
            named,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ConfigFile {
        ConfigFile {
            table: text.parse().expect("TOML"),
        }
    }

    #[test]
    fn flags_win_over_the_config_file_which_wins_over_the_default() {
        let file = config("server = \"http://from-file:1\"\ntoken = \"fm_file\"\n");
        let target = Target::resolve(Some("http://flag:2/".into()), None, &file).expect("valid");
        assert_eq!(target.server, "http://flag:2");
        assert_eq!(target.token.as_deref(), Some("fm_file"));
        let target = Target::resolve(None, Some("fm_flag".into()), &file).expect("valid");
        assert_eq!(target.server, "http://from-file:1");
        assert_eq!(target.token.as_deref(), Some("fm_flag"));
        assert!(target.named);
        let target = Target::resolve(None, None, &ConfigFile::default()).expect("valid");
        assert_eq!(target.server, DEFAULT_SERVER);
        assert!(!target.named && target.token.is_none());
    }

    #[test]
    fn bad_servers_and_config_files_are_usage_errors() {
        let ftp = Target::resolve(Some("ftp://x".into()), None, &ConfigFile::default());
        assert!(matches!(ftp, Err(CliError::Usage(message)) if message.contains("https://")));
        let https = Target::resolve(Some("https://x/".into()), None, &ConfigFile::default());
        assert_eq!(https.expect("https is fine").server, "https://x");
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "server = 3\n").expect("write");
        assert!(
            matches!(ConfigFile::load(&path), Err(CliError::Usage(message)) if message.contains("must be a string"))
        );
        std::fs::write(&path, "server = [").expect("write");
        assert!(
            matches!(ConfigFile::load(&path), Err(CliError::Usage(message)) if message.contains("not valid TOML"))
        );
    }

    #[test]
    fn saving_keeps_other_keys_and_makes_the_file_private() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "output = \"json\"\n").expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        ConfigFile::load(&path)
            .expect("loads")
            .save_target(&path, "http://h:1", "fm_x", None)
            .expect("saves");
        let saved = ConfigFile::load(&path).expect("loads");
        assert_eq!(saved.server().as_deref(), Some("http://h:1"));
        assert_eq!(saved.token().as_deref(), Some("fm_x"));
        assert_eq!(saved.string("output").as_deref(), Some("json"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
