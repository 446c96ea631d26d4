//! Bearer tokens. Only the SHA-256 of a token is stored: tokens are 256-bit
//! random secrets, so a fast hash is enough to make a leaked table useless.

use flowmesh_types::api::Role;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::rows::{get_i64, get_str};
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
}

impl Principal {
    /// The tenant whose tasks a worker registered with this token runs:
    /// `None` for a shared worker.
    pub fn pool_tenant(&self) -> Option<&str> {
        (!self.shared).then_some(self.tenant.as_str())
    }
}

/// A token just created, with its secret.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// Who it speaks for.
    pub principal: Principal,
    /// The secret, `fm_` and 64 hex digits; shown once.
    pub secret: String,
}

/// The stored form of a secret.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Store {
    /// Creates a token for `tenant` with `role`.
    pub async fn create_token(
        &self,
        tenant: &str,
        role: Role,
        name: Option<&str>,
        shared: bool,
        now: i64,
    ) -> Result<TokenRecord, StoreError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("fm_{}", hex::encode(bytes));
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(sql::INSERT_TOKEN)
            .bind(&id)
            .bind(token_hash(&secret))
            .bind(tenant)
            .bind(role.as_str())
            .bind(name)
            .bind(now)
            .bind(i64::from(shared))
            .execute(&self.pool)
            .await?;
        Ok(TokenRecord {
            principal: Principal {
                token_id: id,
                tenant: tenant.to_string(),
                role,
                shared,
            },
            secret,
        })
    }

    /// The principal of a token, by the [`token_hash`] of its secret.
    pub async fn principal(&self, hash: &str) -> Result<Option<Principal>, StoreError> {
        let row = sqlx::query(sql::TOKEN_BY_HASH)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let role = get_str(&row, "role")?;
        Ok(Some(Principal {
            token_id: get_str(&row, "id")?,
            tenant: get_str(&row, "tenant")?,
            role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
                what: "token role",
                error: format!("unknown role {role:?}"),
            })?,
            shared: get_i64(&row, "shared")? != 0,
        }))
    }

    /// How many admin tokens exist (none on a fresh database).
    pub async fn admin_token_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sql::COUNT_ADMIN_TOKENS)
            .fetch_one(&self.pool)
            .await?)
    }
}
