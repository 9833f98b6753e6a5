//! The embedded directory: the portal stand-in, in an SQLite file.
//!
//! In: a database path (created with its schema when missing) and [`Op`] batches. Out:
//! accounts, indexes for reconcile, and per-operation outcomes. Holds organisations,
//! organisation units, accounts, every address (primary and secondary, unique across the
//! directory) and a history of field changes.
//!
//! Portability: the schema and statements are plain SQL that PostgreSQL also runs, with two
//! SQLite-specific pieces kept in this module: `?` placeholders and the `json_each(?)` table
//! function used to join a batch of keys (PostgreSQL: `jsonb_array_elements_text($1)`).
//!
//! Here: the type, its opening and the reads. Writes (apply) are in `write`, import,
//! export and organisations in `admin`, the schema's versions in `schema`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use futures_util::TryStreamExt as _;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Row, Sqlite};

use super::{
    Account, Directory, DirectoryError, DirectoryIndex, Keys, Op, OpOutcome, OrganisationInfo,
    Status,
};
use crate::model::{Email, Field, OdsCode, PortalId, numeric_key};
use crate::store::sqlite::{self, SqliteError};

/// The account columns in [`Field::ALL`] order, `status` second.
macro_rules! account_columns {
    () => {
        "a.id, a.status, a.external_sync_id, a.title, a.first_name, a.last_name, \
         a.display_name, a.email, a.job_title, a.organisation, a.organisation_unit, \
         a.office_phone, a.mobile_phone, a.fax, a.pager, a.notes, a.clinical_role, \
         a.clinical_speciality, a.work_area"
    };
}

/// The account columns as one JSON array per account, aggregated over the whole result.
macro_rules! account_json {
    () => {
        concat!("json_group_array(json_array(", account_columns!(), "))")
    };
}

// After the macros, which the modules use.
mod admin;
mod schema;
mod write;

pub use admin::ImportOutcome;
use schema::MIGRATIONS;

/// An account's column values in `account_columns!` order.
type AccountValues = [Option<String>; 19];

/// The account a row of `account_columns!` values describes.
fn account_of(values: AccountValues) -> Result<Account, DirectoryError> {
    let [id, status, rest @ ..] = values;
    let id = id.ok_or_else(|| DirectoryError::Corrupt("an account without an ID".to_owned()))?;
    let status = status.unwrap_or_default();
    let status = Status::parse(&status)
        .ok_or_else(|| DirectoryError::Corrupt(format!("account {id}: status {status}")))?;
    let organisation = rest[Field::Organisation.index() - 1]
        .clone()
        .unwrap_or_default();
    let mut account = Account::new(
        PortalId::new_unchecked(id),
        status,
        &OdsCode::new_unchecked(organisation),
    );
    for (field, value) in Field::ALL.iter().skip(1).zip(rest) {
        account.set(*field, value.as_deref());
    }
    Ok(account)
}

/// Runs an account query with string arguments and appends the accounts to `out`. The query
/// returns one value, `account_json!()`: a whole result crosses the driver as one JSON text
/// instead of a row per account, which is several times cheaper for large results.
/// Secondary addresses are left for `with_secondary`.
/// The accounts `sql` finds for (organisation, key) pairs: one statement per organisation
/// and [`KEY_CHUNK`] keys, binding the keys as a JSON array, then the organisation.
async fn per_organisation(
    pool: &SqlitePool,
    keys: &[(String, String)],
    sql: &'static str,
    out: &mut Vec<Account>,
) -> Result<(), DirectoryError> {
    let mut keys: Vec<&(String, String)> = keys.iter().collect();
    keys.sort_unstable();
    keys.dedup();
    for same_org in keys.chunk_by(|a, b| a.0 == b.0) {
        for chunk in same_org.chunks(KEY_CHUNK) {
            aggregated_accounts(
                pool,
                sql,
                &[
                    json_array(chunk.iter().map(|k| k.1.as_str())),
                    chunk[0].0.clone(),
                ],
                out,
            )
            .await?;
        }
    }
    Ok(())
}

async fn aggregated_accounts<'e, E: sqlx::Executor<'e, Database = Sqlite>>(
    executor: E,
    sql: &'static str,
    args: &[String],
    out: &mut Vec<Account>,
) -> Result<(), DirectoryError> {
    let mut q = sqlx::query(sql);
    for arg in args {
        q = q.bind(arg.as_str());
    }
    let row = q.fetch_one(executor).await?;
    let text: Option<&str> = row.try_get(0)?;
    let mut json = serde_json::Deserializer::from_str(text.unwrap_or("[]"));
    serde::de::DeserializeSeed::deserialize(AccountsInto(out), &mut json)
        .and_then(|()| json.end())
        .map_err(|e| DirectoryError::Corrupt(format!("account look-up: {e}")))
}

/// Reads a JSON array of `account_columns!` value arrays into accounts as it goes: a large
/// result is never held twice, as values and as accounts.
struct AccountsInto<'o>(&'o mut Vec<Account>);

impl<'de> serde::de::DeserializeSeed<'de> for AccountsInto<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for AccountsInto<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of accounts' column values")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(values) = seq.next_element::<AccountValues>()? {
            let account = account_of(values).map_err(serde::de::Error::custom)?;
            self.0.push(account);
        }
        Ok(())
    }
}

/// The column that stores a field.
fn column(field: Field) -> &'static str {
    match field {
        Field::Id => "id",
        Field::ExternalSyncId => "external_sync_id",
        Field::Title => "title",
        Field::FirstName => "first_name",
        Field::LastName => "last_name",
        Field::DisplayName => "display_name",
        Field::Email => "email",
        Field::JobTitle => "job_title",
        Field::Organisation => "organisation",
        Field::OrganisationUnit => "organisation_unit",
        Field::OfficePhone => "office_phone",
        Field::MobilePhone => "mobile_phone",
        Field::Fax => "fax",
        Field::Pager => "pager",
        Field::Notes => "notes",
        Field::ClinicalRole => "clinical_role",
        Field::ClinicalSpeciality => "clinical_speciality",
        Field::WorkArea => "work_area",
    }
}

/// Largest number of bound values in one statement (SQLite allows 32766).
const MAX_BINDS: usize = 30_000;

/// Keys per look-up statement: large enough that per-statement costs vanish, small enough
/// that the key list (one JSON text) stays a few megabytes.
const KEY_CHUNK: usize = 50_000;

/// The embedded directory.
#[derive(Debug, Clone)]
pub struct LocalDirectory {
    pool: SqlitePool,
}

fn json_array<I: IntoIterator<Item = S>, S: AsRef<str>>(values: I) -> String {
    serde_json::Value::Array(
        values
            .into_iter()
            .map(|v| serde_json::Value::String(v.as_ref().to_owned()))
            .collect(),
    )
    .to_string()
}

impl LocalDirectory {
    /// Opens (creating when missing) the directory database and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<LocalDirectory, DirectoryError> {
        let pool = sqlite::open(path).await?;
        sqlite::migrate(&pool, MIGRATIONS).await?;
        let directory = LocalDirectory { pool };
        directory.fill_name_keys().await?;
        Ok(directory)
    }

    /// Gives every account without a name key (those written before the schema had one)
    /// its key, in one transaction. Found through the name-key index: with none missing, a
    /// look-up that reads nothing.
    async fn fill_name_keys(&self) -> Result<(), DirectoryError> {
        let missing: Vec<(String, String, String)> =
            sqlx::query_as("SELECT id, first_name, last_name FROM accounts WHERE name_key IS NULL")
                .fetch_all(&self.pool)
                .await?;
        if missing.is_empty() {
            return Ok(());
        }
        let count = missing.len();
        let keys = missing
            .into_iter()
            .map(|(id, first, last)| (id, Some(crate::model::naming::name_key(&first, &last))))
            .collect();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        write::set_column(&mut tx, "name_key", keys).await?;
        tx.commit().await?;
        tracing::info!(
            accounts = count,
            "name keys of the embedded directory filled in"
        );
        Ok(())
    }

    fn account(row: &SqliteRow) -> Result<Account, DirectoryError> {
        let mut values: AccountValues = Default::default();
        for (i, value) in values.iter_mut().enumerate() {
            *value = row.try_get(i)?;
        }
        account_of(values)
    }

    /// Fills in the secondary addresses of accounts.
    async fn with_secondary(&self, accounts: &mut [Account]) -> Result<(), DirectoryError> {
        let mut by_id: HashMap<String, Vec<Email>> = HashMap::new();
        for chunk in accounts.chunks(KEY_CHUNK) {
            let ids = json_array(chunk.iter().map(|a| a.id.as_str()));
            let mut rows = sqlx::query(
                "SELECT ad.account_id, ad.address FROM json_each(?) j CROSS JOIN addresses ad
                 WHERE ad.account_id = j.value AND ad.is_primary = 0",
            )
            .bind(ids)
            .fetch(&self.pool);
            while let Some(row) = rows.try_next().await? {
                let id: String = row.try_get(0)?;
                let address: String = row.try_get(1)?;
                by_id
                    .entry(id)
                    .or_default()
                    .push(Email::new_unchecked(address));
            }
        }
        if by_id.is_empty() {
            return Ok(());
        }
        for account in accounts {
            if let Some(mut list) = by_id.remove(account.id.as_str()) {
                list.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
                account.secondary = list;
            }
        }
        Ok(())
    }

    async fn accounts_where(
        &self,
        sql: &'static str,
        arg: String,
    ) -> Result<Vec<Account>, DirectoryError> {
        let mut accounts = Vec::new();
        let mut rows = sqlx::query(sql).bind(arg).fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            accounts.push(Self::account(&row)?);
        }
        drop(rows);
        self.with_secondary(&mut accounts).await?;
        Ok(accounts)
    }
    /// Number of accounts of the organisations `codes` (all accounts for `None`).
    pub async fn count_in(&self, codes: Option<&[String]>) -> Result<u64, DirectoryError> {
        let n: i64 = match codes {
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
                    .fetch_one(&self.pool)
                    .await?
            }
            Some(codes) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM accounts
                     WHERE organisation IN (SELECT value FROM json_each(?))",
                )
                .bind(json_array(codes))
                .fetch_one(&self.pool)
                .await?
            }
        };
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Accounts of the organisations `codes` (all for `None`) in ID order, from `offset`, at
    /// most `limit` of them (`None`: no limit), with their secondary addresses.
    pub async fn accounts_in(
        &self,
        codes: Option<&[String]>,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<Vec<Account>, DirectoryError> {
        let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let q = match codes {
            None => sqlx::query(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts a ORDER BY a.id LIMIT ? OFFSET ?"
            ))
            .bind(limit)
            .bind(offset),
            Some(codes) => sqlx::query(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts a WHERE a.organisation IN (SELECT value FROM json_each(?))
                  ORDER BY a.id LIMIT ? OFFSET ?"
            ))
            .bind(json_array(codes))
            .bind(limit)
            .bind(offset),
        };
        let mut accounts = Vec::new();
        let mut rows = q.fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            accounts.push(Self::account(&row)?);
        }
        drop(rows);
        self.with_secondary(&mut accounts).await?;
        Ok(accounts)
    }

    /// Accounts of any organisation whose ExternalSyncID is `external` (without regard to
    /// case, as the key is stored), from the index.
    pub async fn by_external_key(&self, external: &str) -> Result<Vec<Account>, DirectoryError> {
        self.accounts_where(
            concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts a WHERE a.external_sync_key = ? ORDER BY a.id"
            ),
            external.to_lowercase(),
        )
        .await
    }

    /// Number of accounts in the directory.
    pub async fn count(&self) -> Result<u64, DirectoryError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or_default())
    }
    /// Field changes recorded for an account, oldest first: (field, before, after, run).
    pub async fn history(
        &self,
        id: &str,
    ) -> Result<Vec<(String, Option<String>, Option<String>, Option<String>)>, DirectoryError> {
        let rows = sqlx::query(
            "SELECT field, before_value, after_value, run FROM history
             WHERE account_id = ? ORDER BY rowid",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }
}

impl From<SqliteError> for DirectoryError {
    fn from(e: SqliteError) -> DirectoryError {
        match e {
            SqliteError::Database(e) => DirectoryError::Database(e),
            SqliteError::Io { path, source } => DirectoryError::Io {
                path: path.display().to_string(),
                source,
            },
            e @ SqliteError::ForeignKeys { .. } => DirectoryError::Corrupt(e.to_string()),
        }
    }
}
impl LocalDirectory {
    /// Adds the accounts whose ExternalSyncID is of digits only and reads as the same number
    /// as a near key of `keys` ([`numeric_key`]), for the near keys whose number no account
    /// in `found` already has: a file whose keys all join costs no query. One scan of the
    /// organisation's accounts per [`KEY_CHUNK`] keys.
    async fn near_external(
        &self,
        keys: &Keys,
        found: &mut Vec<Account>,
    ) -> Result<(), DirectoryError> {
        let joined: HashSet<(&str, String)> = found
            .iter()
            .filter_map(|a| Some((a.organisation(), numeric_key(a.external_sync_id()?)?)))
            .collect();
        let mut near: Vec<&(String, String)> = keys
            .near_external
            .iter()
            .filter(|(org, number)| !joined.contains(&(org.as_str(), number.clone())))
            .collect();
        near.sort_unstable();
        near.dedup();
        let mut more = Vec::new();
        for same_org in near.chunk_by(|a, b| a.0 == b.0) {
            for chunk in same_org.chunks(KEY_CHUNK) {
                aggregated_accounts(
                    &self.pool,
                    concat!(
                        "SELECT ",
                        account_json!(),
                        " FROM accounts a WHERE a.organisation = ?
                           AND a.external_sync_key NOT GLOB '*[^0-9]*'
                           AND ltrim(a.external_sync_key, '0')
                               IN (SELECT value FROM json_each(?))"
                    ),
                    &[
                        chunk[0].0.clone(),
                        json_array(chunk.iter().map(|k| k.1.as_str())),
                    ],
                    &mut more,
                )
                .await?;
            }
        }
        found.append(&mut more);
        Ok(())
    }
}

impl Directory for LocalDirectory {
    async fn index_for(&self, keys: &Keys) -> Result<DirectoryIndex, DirectoryError> {
        let mut accounts = Vec::new();
        for chunk in keys.ids.chunks(KEY_CHUNK) {
            aggregated_accounts(
                &self.pool,
                concat!(
                    "SELECT ",
                    account_json!(),
                    " FROM json_each(?) j CROSS JOIN accounts a WHERE a.id = j.value"
                ),
                &[json_array(chunk)],
                &mut accounts,
            )
            .await?;
        }
        // One organisation per query, so the key is a plain value and the planner walks the
        // (organisation, external_sync_key) index once per key.
        per_organisation(
            &self.pool,
            &keys.external,
            concat!(
                "SELECT ",
                account_json!(),
                " FROM json_each(?) j CROSS JOIN accounts a
                 WHERE a.organisation = ? AND a.external_sync_key = j.value"
            ),
            &mut accounts,
        )
        .await?;
        self.near_external(keys, &mut accounts).await?;
        // Namesakes of would-be creates: live accounts of the organisation with the name key
        // and no ExternalSyncID.
        per_organisation(
            &self.pool,
            &keys.names,
            concat!(
                "SELECT ",
                account_json!(),
                " FROM json_each(?) j CROSS JOIN accounts a
                 WHERE a.name_key = j.value AND a.organisation = ?
                   AND a.status IN ('Active', 'Pending')
                   AND a.external_sync_key IS NULL"
            ),
            &mut accounts,
        )
        .await?;
        for chunk in keys.emails.chunks(KEY_CHUNK) {
            aggregated_accounts(
                &self.pool,
                concat!(
                    "SELECT ",
                    account_json!(),
                    " FROM json_each(?) j CROSS JOIN addresses ad CROSS JOIN accounts a
                     WHERE ad.address = j.value AND a.id = ad.account_id"
                ),
                &[json_array(chunk)],
                &mut accounts,
            )
            .await?;
        }
        // An account found by several keys is kept once.
        accounts.sort_unstable_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        accounts.dedup_by(|a, b| a.id == b.id);
        self.with_secondary(&mut accounts).await?;
        let mut index = DirectoryIndex::new(accounts);
        for chunk in keys.stems.chunks(KEY_CHUNK) {
            let taken: Option<String> = sqlx::query_scalar(
                "SELECT json_group_array(ad.address) FROM json_each(?) j
                 CROSS JOIN addresses ad WHERE ad.stem = j.value",
            )
            .bind(json_array(chunk))
            .fetch_one(&self.pool)
            .await?;
            let taken: Vec<String> = serde_json::from_str(taken.as_deref().unwrap_or("[]"))
                .map_err(|e| DirectoryError::Corrupt(format!("address look-up: {e}")))?;
            for address in &taken {
                index.mark_taken(address);
            }
        }
        for org in &keys.organisations {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT code FROM organisations WHERE code = ?")
                    .bind(org)
                    .fetch_optional(&self.pool)
                    .await?;
            if exists.is_none() {
                continue;
            }
            let units: Vec<String> =
                sqlx::query_scalar("SELECT code FROM organisation_units WHERE organisation = ?")
                    .bind(org)
                    .fetch_all(&self.pool)
                    .await?;
            let count: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE organisation = ?")
                    .bind(org)
                    .fetch_one(&self.pool)
                    .await?;
            index.add_organisation(
                org,
                OrganisationInfo {
                    units: units.into_iter().collect(),
                    accounts: u64::try_from(count).unwrap_or_default(),
                },
            );
        }
        Ok(index)
    }

    async fn by_id(&self, id: &PortalId) -> Result<Option<Account>, DirectoryError> {
        Ok(self
            .accounts_where(
                concat!(
                    "SELECT ",
                    account_columns!(),
                    " FROM accounts a WHERE a.id = ?"
                ),
                id.to_string(),
            )
            .await?
            .pop())
    }

    async fn by_external_sync_id(
        &self,
        organisation: &str,
        external: &str,
    ) -> Result<Option<Account>, DirectoryError> {
        let keys = Keys {
            external: vec![(organisation.to_owned(), external.to_lowercase())],
            ..Keys::default()
        };
        let index = self.index_for(&keys).await?;
        Ok(index.by_external(organisation, external).cloned())
    }

    async fn by_email(&self, email: &str) -> Result<Option<Account>, DirectoryError> {
        let keys = Keys {
            emails: vec![email.to_lowercase()],
            ..Keys::default()
        };
        Ok(self.index_for(&keys).await?.by_email(email).cloned())
    }

    async fn list(&self, organisation: &str) -> Result<Vec<Account>, DirectoryError> {
        self.accounts_where(
            concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts a WHERE a.organisation = ? ORDER BY a.email, a.id"
            ),
            organisation.to_owned(),
        )
        .await
    }

    async fn unit_exists(&self, organisation: &str, unit: &str) -> Result<bool, DirectoryError> {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT code FROM organisation_units WHERE organisation = ? AND code = ?",
        )
        .bind(organisation)
        .bind(unit)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    async fn apply(&self, ops: &[Op]) -> Result<Vec<OpOutcome>, DirectoryError> {
        self.apply_batch(ops).await
    }
}
