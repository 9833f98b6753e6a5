//! Administration of the embedded directory: import and export of accounts, organisations
//! and their units, and the seeding tests and benchmarks use.

use std::collections::{HashMap, HashSet};

use sqlx::{Row, Sqlite};

use super::LocalDirectory;
use super::json_array;
use super::write::insert_accounts;
use crate::directory::{Account, DirectoryError};
use crate::model::{Email, Field, OdsCode};

/// What `directory import` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub imported: usize,
    /// Accounts skipped because the directory holds them already (same ID): an import run
    /// again.
    pub already_present: usize,
    /// Other accounts skipped, each with the reason (key or address taken…).
    pub skipped: Vec<String>,
}

impl LocalDirectory {
    /// Every account, ordered by organisation, primary address, ID (the export order).
    pub async fn all(&self) -> Result<Vec<Account>, DirectoryError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts a ORDER BY a.organisation, a.email, a.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut accounts = rows
            .iter()
            .map(Self::account)
            .collect::<Result<Vec<_>, _>>()?;
        let secondary = sqlx::query(
            "SELECT account_id, address FROM addresses WHERE is_primary = 0 ORDER BY address",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut by_id: HashMap<String, Vec<Email>> = HashMap::new();
        for row in secondary {
            let id: String = row.try_get(0)?;
            let address: String = row.try_get(1)?;
            by_id
                .entry(id)
                .or_default()
                .push(Email::new_unchecked(address));
        }
        for account in &mut accounts {
            if let Some(list) = by_id.remove(account.id.as_str()) {
                account.secondary = list;
            }
        }
        Ok(accounts)
    }
    /// Seeds the directory with accounts as a portal export gives them. Organisations and
    /// units are created as needed; an account whose ID, ExternalSyncID or address is
    /// already there is skipped with a note (so an import can be run twice).
    pub async fn import(&self, accounts: &[Account]) -> Result<ImportOutcome, DirectoryError> {
        let mut outcome = ImportOutcome::default();
        let mut tx = self.pool.begin().await?;
        let mut orgs: HashSet<String> = HashSet::new();
        let mut units: HashSet<(String, String)> = HashSet::new();
        let mut fresh = Vec::with_capacity(accounts.len());
        let mut seen_ids = HashSet::new();
        let mut seen_ext = HashSet::new();
        let mut seen_addresses = HashSet::new();
        let existing = existing_keys(&mut tx, accounts).await?;
        for a in accounts {
            let org = a.organisation().to_owned();
            let ext = a
                .external_sync_id()
                .map(|e| (org.clone(), e.to_lowercase()));
            let addresses: Vec<String> = a
                .email()
                .into_iter()
                .map(str::to_owned)
                .chain(a.secondary.iter().map(|e| e.to_string()))
                .collect();
            if existing.ids.contains(a.id.as_str()) {
                outcome.already_present += 1;
                continue;
            }
            let clash = if !seen_ids.insert(a.id.clone()) {
                Some(format!("ID {} is already in the directory", a.id))
            } else if let Some(ext) = ext
                .as_ref()
                .filter(|e| existing.external.contains(*e) || !seen_ext.insert((*e).clone()))
            {
                Some(format!(
                    "ExternalSyncID {} of {} is already in the directory",
                    ext.1, ext.0
                ))
            } else {
                addresses
                    .iter()
                    .find(|ad| existing.addresses.contains(*ad) || seen_addresses.contains(*ad))
                    .map(|ad| format!("address {ad} is already in the directory"))
            };
            if let Some(reason) = clash {
                outcome
                    .skipped
                    .push(format!("account {}: {reason}; skipped", a.describe()));
                continue;
            }
            seen_addresses.extend(addresses);
            orgs.insert(org.clone());
            if let Some(unit) = a.get(Field::OrganisationUnit) {
                units.insert((org, unit.to_owned()));
            }
            fresh.push(a.clone());
        }
        let mut orgs: Vec<String> = orgs.into_iter().collect();
        orgs.sort();
        for org in orgs {
            sqlx::query(
                "INSERT INTO organisations (code) VALUES (?) ON CONFLICT (code) DO NOTHING",
            )
            .bind(org)
            .execute(&mut *tx)
            .await?;
        }
        let mut units: Vec<_> = units.into_iter().collect();
        units.sort();
        for (org, unit) in units {
            sqlx::query(
                "INSERT INTO organisation_units (organisation, code) VALUES (?, ?)
                 ON CONFLICT (organisation, code) DO NOTHING",
            )
            .bind(org)
            .bind(unit)
            .execute(&mut *tx)
            .await?;
        }
        insert_accounts(&mut tx, &fresh).await?;
        tx.commit().await?;
        outcome.imported = fresh.len();
        Ok(outcome)
    }

    /// Adds an organisation (or, when it is there, sets its name if one is given) and any
    /// units not yet known: what an administrator does once before an organisation's first
    /// file or sync. Returns whether the organisation is new.
    pub async fn set_organisation(
        &self,
        code: &OdsCode,
        name: Option<&str>,
        units: &[String],
    ) -> Result<bool, DirectoryError> {
        let mut tx = self.pool.begin().await?;
        let added = sqlx::query(
            "INSERT INTO organisations (code, name) VALUES (?, ?) ON CONFLICT (code) DO NOTHING",
        )
        .bind(code.as_str())
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !added && let Some(name) = name {
            sqlx::query("UPDATE organisations SET name = ? WHERE code = ?")
                .bind(name)
                .bind(code.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for unit in units {
            sqlx::query(
                "INSERT INTO organisation_units (organisation, code) VALUES (?, ?)
                 ON CONFLICT (organisation, code) DO NOTHING",
            )
            .bind(code.as_str())
            .bind(unit)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// The organisations, with their names and units, by code.
    pub async fn organisations(
        &self,
    ) -> Result<Vec<(String, Option<String>, Vec<String>)>, DirectoryError> {
        let orgs: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT code, name FROM organisations ORDER BY code")
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(orgs.len());
        for (code, name) in orgs {
            let units: Vec<String> = sqlx::query_scalar(
                "SELECT code FROM organisation_units WHERE organisation = ? ORDER BY code",
            )
            .bind(&code)
            .fetch_all(&self.pool)
            .await?;
            out.push((code, name, units));
        }
        Ok(out)
    }

    /// Creates organisations and units directly (for tests and the benchmark).
    pub async fn add_organisation(&self, code: &str, units: &[&str]) -> Result<(), DirectoryError> {
        sqlx::query("INSERT INTO organisations (code) VALUES (?) ON CONFLICT (code) DO NOTHING")
            .bind(code)
            .execute(&self.pool)
            .await?;
        for unit in units {
            sqlx::query(
                "INSERT INTO organisation_units (organisation, code) VALUES (?, ?)
                 ON CONFLICT (organisation, code) DO NOTHING",
            )
            .bind(code)
            .bind(*unit)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Inserts accounts whose keys are known to be free, in one transaction (benchmark seed).
    pub async fn insert_unchecked(&self, accounts: &[Account]) -> Result<(), DirectoryError> {
        let mut tx = self.pool.begin().await?;
        insert_accounts(&mut tx, accounts).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[derive(Default)]
struct ExistingKeys {
    ids: HashSet<String>,
    external: HashSet<(String, String)>,
    addresses: HashSet<String>,
}

async fn existing_keys(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    accounts: &[Account],
) -> Result<ExistingKeys, DirectoryError> {
    let mut keys = ExistingKeys::default();
    let ids = json_array(accounts.iter().map(|a| a.id.as_str()));
    for row in sqlx::query("SELECT a.id FROM json_each(?) j JOIN accounts a ON a.id = j.value")
        .bind(ids)
        .fetch_all(&mut **tx)
        .await?
    {
        keys.ids.insert(row.try_get(0)?);
    }
    let ext = serde_json::Value::Array(
        accounts
            .iter()
            .filter_map(|a| {
                a.external_sync_id()
                    .map(|e| serde_json::json!([a.organisation(), e.to_lowercase()]))
            })
            .collect(),
    )
    .to_string();
    for row in sqlx::query(
        "SELECT a.organisation, a.external_sync_key FROM json_each(?) j
         JOIN accounts a ON a.organisation = json_extract(j.value, '$[0]')
          AND a.external_sync_key = json_extract(j.value, '$[1]')",
    )
    .bind(ext)
    .fetch_all(&mut **tx)
    .await?
    {
        keys.external.insert((row.try_get(0)?, row.try_get(1)?));
    }
    let addresses = json_array(accounts.iter().flat_map(|a| {
        a.email()
            .into_iter()
            .chain(a.secondary.iter().map(Email::as_str))
    }));
    for row in sqlx::query(
        "SELECT ad.address FROM json_each(?) j JOIN addresses ad ON ad.address = j.value",
    )
    .bind(addresses)
    .fetch_all(&mut **tx)
    .await?
    {
        keys.addresses.insert(row.try_get(0)?);
    }
    Ok(keys)
}
