//! `flowmesh token create | list | revoke`: the token lifecycle (admin).

use std::time::Duration;

use flowmesh_types::api::{Role, TokenCreated, TokenRequest, TokenView};

use crate::client::ApiClient;
use crate::error::{CliError, CliResult};
use crate::output::{self, Output};
use crate::requests::path_segment;

/// The token lifecycle.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        /// The tenant whose tasks it owns (or whose tasks its workers run).
        #[arg(long)]
        tenant: String,
        /// admin, user or worker.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// How long it lives (30d, 12h); it never expires without this.
        #[arg(long)]
        expires: Option<String>,
        /// A note for people.
        #[arg(long)]
        name: Option<String>,
        /// A worker token for shared workers, which run every tenant's tasks
        /// that allow them (without it, a worker token's workers run only
        /// its tenant's).
        #[arg(long)]
        shared: bool,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id: it is refused within a second everywhere.
    Revoke {
        /// Token id, from `token list`.
        id: String,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("unknown role {text:?}: write admin, user or worker"))
}

pub(crate) async fn run(command: TokenCommand, client: ApiClient, output: Output) -> CliResult {
    match command {
        TokenCommand::Create {
            tenant,
            role,
            expires,
            name,
            shared,
        } => {
            if shared && role != Role::Worker {
                return Err(CliError::usage("--shared is for worker tokens only"));
            }
            let request = TokenRequest {
                tenant,
                role,
                name,
                shared,
                expires,
            };
            let body = serde_json::to_vec(&request).unwrap_or_default();
            let created: TokenCreated = client
                .post("/tokens", body, "application/json", Duration::from_secs(60))
                .await?;
            match output {
                Output::Json => output::print_json(&created),
                Output::Table => output::print_fields(&[
                    ("id", created.id.clone()),
                    ("tenant", created.tenant.clone()),
                    ("role", created.role.as_str().to_string()),
                    ("shared", created.shared.to_string()),
                    (
                        "expires",
                        created.expires_at.clone().unwrap_or_else(|| "never".into()),
                    ),
                    ("token", created.token.clone()),
                ]),
            }
        }
        TokenCommand::List => {
            let tokens: Vec<TokenView> = client.get("/tokens").await?;
            match output {
                Output::Json => output::print_json(&tokens),
                Output::Table => {
                    let mut table = output::table(&[
                        "id", "tenant", "role", "shared", "name", "created", "expires", "revoked",
                    ]);
                    for token in &tokens {
                        table.add_row(vec![
                            token.id.clone(),
                            token.tenant.clone(),
                            token.role.as_str().to_string(),
                            token.shared.to_string(),
                            token.name.clone().unwrap_or_default(),
                            token.created_at.clone(),
                            token.expires_at.clone().unwrap_or_else(|| "never".into()),
                            token.revoked_at.clone().unwrap_or_default(),
                        ]);
                    }
                    output::print_table(&table);
                }
            }
        }
        TokenCommand::Revoke { id } => {
            client
                .delete(&format!("/tokens/{}", path_segment(&id)?))
                .await?;
            crate::outln!("revoked token {id}");
        }
    }
    Ok(())
}
