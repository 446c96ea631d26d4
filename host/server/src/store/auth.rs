//! Bearer tokens. Only the SHA-256 of a token is stored: tokens are 256-bit
//! random secrets, so a fast hash is enough to make a leaked table useless.
//!
//! A token may expire, and may be revoked; either way it is refused from
//! then on, like an unknown one. The last live admin token cannot be
//! revoked, so an operator never locks themselves out.

use flowmesh_types::api::{Role, TokenView};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::rows::{get_i64, get_opt_i64, get_opt_str, get_str, rfc3339};
use super::{Store, StoreError, sql};

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token id.
    pub token_id: String,
    /// Tenant.
    pub tenant: String,
    /// Role.
    pub role: Role,
    /// For a worker token: it serves shared workers (every tenant that
    /// allows them) rather than only `tenant`'s tasks.
    pub shared: bool,
    /// When it expires (ms since the epoch), if it does.
    pub expires_at: Option<i64>,
}

impl Principal {
    /// The tenant whose tasks a worker registered with this token runs:
    /// `None` for a shared worker.
    pub fn pool_tenant(&self) -> Option<&str> {
        (!self.shared).then_some(self.tenant.as_str())
    }
}

/// A token to create.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    /// Its tenant.
    pub tenant: &'a str,
    /// Its role.
    pub role: Role,
    /// A note for people.
    pub name: Option<&'a str>,
    /// A worker token for shared workers.
    pub shared: bool,
    /// When it expires (ms since the epoch), if it does.
    pub expires_at: Option<i64>,
}

/// A token just created, with its secret.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// Who it speaks for.
    pub principal: Principal,
    /// The secret, `fm_` and 64 hex digits; shown once.
    pub secret: String,
}

/// What [`Store::revoke_token`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// It is revoked now.
    Now,
    /// It was revoked before.
    Already,
    /// There is no such token.
    Unknown,
    /// It is the last live admin token: kept.
    LastAdmin,
}

/// The stored form of a secret.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn role_of(name: &str) -> Result<Role, StoreError> {
    Role::parse(name).ok_or_else(|| StoreError::Corrupt {
        what: "token role",
        error: format!("unknown role {name:?}"),
    })
}

impl Store {
    /// Creates a token.
    pub async fn create_token(
        &self,
        token: &NewToken<'_>,
        now: i64,
    ) -> Result<TokenRecord, StoreError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("fm_{}", hex::encode(bytes));
        let id = uuid::Uuid::now_v7().to_string();
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        sqlx::query(sql::INSERT_TOKEN)
            .bind(&id)
            .bind(token_hash(&secret))
            .bind(token.tenant)
            .bind(token.role.as_str())
            .bind(token.name)
            .bind(now)
            .bind(i64::from(token.shared))
            .bind(token.expires_at)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(TokenRecord {
            principal: Principal {
                token_id: id,
                tenant: token.tenant.to_string(),
                role: token.role,
                shared: token.shared,
                expires_at: token.expires_at,
            },
            secret,
        })
    }

    /// The principal of a live token (neither revoked nor expired at `now`),
    /// by the [`token_hash`] of its secret.
    pub async fn principal(&self, hash: &str, now: i64) -> Result<Option<Principal>, StoreError> {
        let row = sqlx::query(sql::TOKEN_BY_HASH)
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Principal {
            token_id: get_str(&row, "id")?,
            tenant: get_str(&row, "tenant")?,
            role: role_of(&get_str(&row, "role")?)?,
            shared: get_i64(&row, "shared")? != 0,
            expires_at: get_opt_i64(&row, "expires_at")?,
        }))
    }

    /// Every token, oldest first, without secrets.
    pub async fn tokens(&self) -> Result<Vec<TokenView>, StoreError> {
        let rows = sqlx::query(sql::LIST_TOKENS)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TokenView {
                    id: get_str(row, "id")?,
                    tenant: get_str(row, "tenant")?,
                    role: role_of(&get_str(row, "role")?)?,
                    shared: get_i64(row, "shared")? != 0,
                    name: get_opt_str(row, "name")?,
                    created_at: rfc3339(get_i64(row, "created_at")?),
                    expires_at: get_opt_i64(row, "expires_at")?.map(rfc3339),
                    revoked_at: get_opt_i64(row, "revoked_at")?.map(rfc3339),
                })
            })
            .collect()
    }

    /// Revokes token `id` at `now`, unless it is the last live admin token.
    pub async fn revoke_token(&self, id: &str, now: i64) -> Result<Revoked, StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let Some(row) = sqlx::query(sql::TOKEN_BY_ID)
            .bind(id)
            .fetch_optional(&mut tx)
            .await?
        else {
            return Ok(Revoked::Unknown);
        };
        if get_opt_i64(&row, "revoked_at")?.is_some() {
            return Ok(Revoked::Already);
        }
        if role_of(&get_str(&row, "role")?)? == Role::Admin {
            let others: i64 = sqlx::query_scalar(sql::OTHER_LIVE_ADMINS)
                .bind(id)
                .bind(now)
                .fetch_one(&mut tx)
                .await?;
            if others == 0 {
                return Ok(Revoked::LastAdmin);
            }
        }
        sqlx::query(sql::REVOKE_TOKEN)
            .bind(id)
            .bind(now)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(Revoked::Now)
    }

    /// How many admin tokens exist (none on a fresh database).
    pub async fn admin_token_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sql::COUNT_ADMIN_TOKENS)
            .fetch_one(&self.reader)
            .await?)
    }
}
