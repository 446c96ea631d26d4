//! Installed plugins: components stored content-addressed, with the manifest
//! read from them at install time.

use flowmesh_types::Manifest;
use sqlx::Row;

use super::rows::{get_i64, get_str};
use super::{Store, StoreError, decode_json, encode_json, sql};

/// An installed plugin, without its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRecord {
    /// Installed name.
    pub name: String,
    /// Manifest version.
    pub version: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// What it declares.
    pub manifest: Manifest,
    /// Interfaces it imports.
    pub imports: Vec<String>,
    /// When it was installed.
    pub installed_at: i64,
}

impl Store {
    /// Installs (or replaces) a plugin.
    pub async fn put_plugin(
        &self,
        record: &PluginRecord,
        component: &[u8],
    ) -> Result<(), StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        sqlx::query(sql::UPSERT_PLUGIN)
            .bind(&record.name)
            .bind(&record.version)
            .bind(&record.digest)
            .bind(encode_json(&record.manifest))
            .bind(encode_json(&record.imports))
            .bind(component.to_vec())
            .bind(record.installed_at)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Installed plugins, by name.
    pub async fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
        let rows = sqlx::query(sql::LIST_PLUGINS)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PluginRecord {
                    name: get_str(row, "name")?,
                    version: get_str(row, "version")?,
                    digest: get_str(row, "digest")?,
                    manifest: decode_json("manifest", &get_str(row, "manifest")?)?,
                    imports: decode_json("imports", &get_str(row, "imports")?)?,
                    installed_at: get_i64(row, "installed_at")?,
                })
            })
            .collect()
    }

    /// The bytes of the installed component whose digest is `digest`
    /// (`sha256:<hex>`).
    pub async fn plugin_component(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query(sql::PLUGIN_COMPONENT)
            .bind(digest)
            .fetch_optional(&self.reader)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get::<Vec<u8>, _>("component")?),
            None => None,
        })
    }

    /// Removes a plugin; whether it was installed.
    pub async fn delete_plugin(&self, name: &str) -> Result<bool, StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let deleted = sqlx::query(sql::DELETE_PLUGIN)
            .bind(name)
            .execute(&mut tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }
}
