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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use futures_util::TryStreamExt as _;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::naming;
use super::{
    Account, Change, Directory, DirectoryError, DirectoryIndex, Keys, Op, OpOutcome,
    OrganisationInfo, Status,
};
use crate::model::{Email, Field, OdsCode, PortalId};
use crate::store::sqlite::{self, Migration, SqliteError};

/// Schema versions, applied in order, each once.
const MIGRATIONS: &[Migration] = &[
    (
        1,
        "organisations, units, accounts, addresses, history",
        "CREATE TABLE organisations (
        code TEXT PRIMARY KEY,
        name TEXT
    );
    CREATE TABLE organisation_units (
        organisation TEXT NOT NULL REFERENCES organisations (code),
        code TEXT NOT NULL,
        PRIMARY KEY (organisation, code)
    );
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        external_sync_id TEXT,
        external_sync_key TEXT,
        title TEXT,
        first_name TEXT NOT NULL,
        last_name TEXT NOT NULL,
        display_name TEXT,
        email TEXT,
        job_title TEXT,
        organisation TEXT NOT NULL REFERENCES organisations (code),
        organisation_unit TEXT,
        office_phone TEXT,
        mobile_phone TEXT,
        fax TEXT,
        pager TEXT,
        notes TEXT,
        clinical_role TEXT,
        clinical_speciality TEXT,
        work_area TEXT
    );
    CREATE UNIQUE INDEX accounts_external ON accounts (organisation, external_sync_key);
    CREATE INDEX accounts_organisation ON accounts (organisation, email);
    CREATE TABLE addresses (
        address TEXT PRIMARY KEY,
        stem TEXT NOT NULL,
        account_id TEXT NOT NULL REFERENCES accounts (id),
        is_primary INTEGER NOT NULL
    );
    CREATE INDEX addresses_stem ON addresses (stem);
    CREATE INDEX addresses_account ON addresses (account_id);
    CREATE TABLE history (
        account_id TEXT NOT NULL,
        field TEXT NOT NULL,
        before_value TEXT,
        after_value TEXT,
        run TEXT
    );
    CREATE INDEX history_account ON history (account_id);",
    ),
    (
        2,
        "ExternalSyncID index across organisations (SCIM externalId filters)",
        "CREATE INDEX accounts_external_key ON accounts (external_sync_key);",
    ),
];

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
    let rows: Vec<AccountValues> = serde_json::from_str(text.unwrap_or("[]"))
        .map_err(|e| DirectoryError::Corrupt(format!("account look-up: {e}")))?;
    out.reserve(rows.len());
    for values in rows {
        out.push(account_of(values)?);
    }
    Ok(())
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
        Ok(LocalDirectory { pool })
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

/// Inserts accounts and their addresses with multi-row statements.
async fn insert_accounts(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    accounts: &[Account],
) -> Result<(), DirectoryError> {
    const COLUMNS: usize = 20;
    for chunk in accounts.chunks(MAX_BINDS / COLUMNS) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO accounts (id, status, external_sync_key, external_sync_id, title, \
             first_name, last_name, display_name, email, job_title, organisation, \
             organisation_unit, office_phone, mobile_phone, fax, pager, notes, clinical_role, \
             clinical_speciality, work_area) ",
        );
        q.push_values(chunk, |mut b, a| {
            b.push_bind(a.id.to_string())
                .push_bind(a.status.as_str())
                .push_bind(a.external_sync_id().map(str::to_lowercase));
            for field in Field::ALL.iter().skip(1) {
                b.push_bind(a.get(*field).map(str::to_owned));
            }
        });
        q.build().execute(&mut **tx).await?;
    }
    let addresses: Vec<(String, &str, bool)> = accounts
        .iter()
        .flat_map(|a| {
            a.email()
                .map(|e| (e.to_owned(), a.id.as_str(), true))
                .into_iter()
                .chain(
                    a.secondary
                        .iter()
                        .map(|e| (e.to_string(), a.id.as_str(), false)),
                )
        })
        .collect();
    for chunk in addresses.chunks(MAX_BINDS / 4) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO addresses (address, stem, account_id, is_primary) ");
        q.push_values(chunk, |mut b, (address, id, primary)| {
            b.push_bind(address.clone())
                .push_bind(naming::stem_of(address))
                .push_bind(id.to_string())
                .push_bind(i64::from(*primary));
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// A history line waiting for the batch's multi-row insert.
struct HistoryLine {
    account: String,
    field: &'static str,
    before: Option<String>,
    after: Option<String>,
    run: String,
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
        let mut external: Vec<&(String, String)> = keys.external.iter().collect();
        external.sort_unstable();
        external.dedup();
        for same_org in external.chunk_by(|a, b| a.0 == b.0) {
            for chunk in same_org.chunks(KEY_CHUNK) {
                aggregated_accounts(
                    &self.pool,
                    concat!(
                        "SELECT ",
                        account_json!(),
                        " FROM json_each(?) j CROSS JOIN accounts a
                         WHERE a.organisation = ? AND a.external_sync_key = j.value"
                    ),
                    &[
                        json_array(chunk.iter().map(|k| k.1.as_str())),
                        chunk[0].0.clone(),
                    ],
                    &mut accounts,
                )
                .await?;
            }
        }
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Current state of every account the batch names, in one query each way.
        let mut ids = Vec::new();
        let mut ext = Vec::new();
        let mut stems = Vec::new();
        for op in ops {
            match op {
                Op::Create(new) => {
                    let a = &new.account;
                    ids.push(a.id.to_string());
                    if let Some(e) = a.external_sync_id() {
                        ext.push((a.organisation().to_owned(), e.to_lowercase()));
                    }
                    if let Some(email) = a.email() {
                        stems.push(naming::stem_of(email));
                    }
                }
                Op::Update { id, changes, .. } => {
                    ids.push(id.to_string());
                    for c in changes.iter().filter(|c| c.field == Field::Email) {
                        if let Some(after) = &c.after {
                            stems.push(naming::stem_of(after));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        aggregated_accounts(
            &mut *tx,
            concat!(
                "SELECT ",
                account_json!(),
                " FROM json_each(?) j CROSS JOIN accounts a WHERE a.id = j.value"
            ),
            &[json_array(&ids)],
            &mut found,
        )
        .await?;
        ext.sort_unstable();
        ext.dedup();
        for same_org in ext.chunk_by(|a, b| a.0 == b.0) {
            aggregated_accounts(
                &mut *tx,
                concat!(
                    "SELECT ",
                    account_json!(),
                    " FROM json_each(?) j CROSS JOIN accounts a
                     WHERE a.organisation = ? AND a.external_sync_key = j.value"
                ),
                &[
                    json_array(same_org.iter().map(|k| k.1.as_str())),
                    same_org[0].0.clone(),
                ],
                &mut found,
            )
            .await?;
        }
        let mut current: HashMap<String, Account> = HashMap::with_capacity(found.len());
        let mut by_ext: HashMap<(String, String), String> = HashMap::new();
        for a in found {
            if let Some(e) = a.external_sync_id() {
                by_ext.insert(
                    (a.organisation().to_owned(), e.to_lowercase()),
                    a.id.to_string(),
                );
            }
            current.insert(a.id.to_string(), a);
        }
        stems.sort_unstable();
        stems.dedup();
        let taken: Option<String> = sqlx::query_scalar(
            "SELECT json_group_array(json_array(ad.address, ad.account_id)) FROM json_each(?) j
             CROSS JOIN addresses ad WHERE ad.stem = j.value",
        )
        .bind(json_array(&stems))
        .fetch_one(&mut *tx)
        .await?;
        let taken: Vec<(String, String)> =
            serde_json::from_str(taken.as_deref().unwrap_or("[]"))
                .map_err(|e| DirectoryError::Corrupt(format!("address look-up: {e}")))?;
        let mut taken: HashMap<String, String> = taken.into_iter().collect();
        // Field values to set, by field then account (a later operation on the same account
        // and field wins, as it would one statement at a time).
        let mut sets: BTreeMap<Field, HashMap<String, Option<String>>> = BTreeMap::new();

        let mut outcomes = Vec::with_capacity(ops.len());
        let mut history = Vec::new();
        let mut created = Vec::new();
        for op in ops {
            let outcome = match op {
                Op::Create(new) => {
                    let a = &new.account;
                    let same_key = a
                        .external_sync_id()
                        .and_then(|e| by_ext.get(&(a.organisation().to_owned(), e.to_lowercase())))
                        .and_then(|id| current.get(id));
                    match (current.get(a.id.as_str()), same_key) {
                        (Some(found), _) => OpOutcome::Created(found.clone()),
                        (None, Some(found)) => OpOutcome::Exists(found.clone()),
                        (None, None) => {
                            let mut a = a.clone();
                            if let Some(email) = a.email().map(str::to_owned)
                                && taken.contains_key(&email)
                            {
                                let free = naming::free_address(&naming::stem_of(&email), |x| {
                                    taken.contains_key(x)
                                });
                                a.set(Field::Email, Some(&free));
                            }
                            if let Some(email) = a.email() {
                                taken.insert(email.to_owned(), a.id.to_string());
                            }
                            if let Some(e) = a.external_sync_id() {
                                by_ext.insert(
                                    (a.organisation().to_owned(), e.to_lowercase()),
                                    a.id.to_string(),
                                );
                            }
                            current.insert(a.id.to_string(), a.clone());
                            history.push(HistoryLine {
                                account: a.id.to_string(),
                                field: "created",
                                before: None,
                                after: a.email().map(str::to_owned),
                                run: String::new(),
                            });
                            created.push(a.clone());
                            OpOutcome::Created(a)
                        }
                    }
                }
                Op::Update { id, changes, run } => {
                    match update_one(&mut tx, &mut current, &mut taken, &mut sets, id, changes)
                        .await?
                    {
                        Ok(applied) => {
                            for c in applied {
                                history.push(HistoryLine {
                                    account: id.to_string(),
                                    field: column(c.field),
                                    before: c.before.clone(),
                                    after: c.after.clone(),
                                    run: run.clone(),
                                });
                            }
                            OpOutcome::Updated
                        }
                        Err(reason) => OpOutcome::Failed(reason),
                    }
                }
            };
            outcomes.push(outcome);
        }
        for (field, values) in sets {
            set_column(&mut tx, field, values).await?;
        }
        insert_accounts(&mut tx, &created).await?;
        for chunk in history.chunks(MAX_BINDS / 5) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO history (account_id, field, before_value, after_value, run) ",
            );
            q.push_values(chunk, |mut b, h| {
                b.push_bind(h.account.clone())
                    .push_bind(h.field)
                    .push_bind(h.before.clone())
                    .push_bind(h.after.clone())
                    .push_bind(h.run.clone());
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// Compare-and-set of one account's changes. `Ok(Err(reason))` refuses the operation; the
/// changes that were needed (not already in place) are returned for the history, and their
/// values added to `sets` for the batch's column updates.
async fn update_one<'c>(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    current: &mut HashMap<String, Account>,
    taken: &mut HashMap<String, String>,
    sets: &mut BTreeMap<Field, HashMap<String, Option<String>>>,
    id: &PortalId,
    changes: &'c [Change],
) -> Result<Result<Vec<&'c Change>, String>, DirectoryError> {
    let Some(account) = current.get_mut(id.as_str()) else {
        return Ok(Err(format!(
            "account ID {id} is no longer in the directory"
        )));
    };
    let mut needed = Vec::new();
    for c in changes {
        match account.still_to_make(c) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(refusal) => return Ok(Err(refusal)),
        }
        if c.field == Field::Email
            && let Some(after) = &c.after
            && taken.get(after).is_some_and(|owner| owner != id.as_str())
        {
            return Ok(Err(format!(
                "Email {after} is already the address of another account: nothing was changed"
            )));
        }
        needed.push(c);
    }
    for c in &needed {
        sets.entry(c.field)
            .or_default()
            .insert(id.to_string(), c.after.clone());
        account.set(c.field, c.after.as_deref());
        if c.field == Field::Email {
            move_primary(tx, id.as_str(), c.after.as_deref()).await?;
            if let Some(after) = &c.after {
                taken.insert(after.clone(), id.to_string());
            }
        }
    }
    Ok(Ok(needed))
}

/// Sets one column of many accounts: the (ID, value) pairs go to a temporary table, and one
/// UPDATE driven by it (a primary-key look-up per account) replaces a statement per account.
async fn set_column(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    field: Field,
    values: HashMap<String, Option<String>>,
) -> Result<(), DirectoryError> {
    sqlx::query(
        "CREATE TEMP TABLE IF NOT EXISTS column_values (
            id TEXT PRIMARY KEY,
            value TEXT,
            key TEXT
        )",
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM temp.column_values")
        .execute(&mut **tx)
        .await?;
    let values: Vec<(String, Option<String>)> = values.into_iter().collect();
    for chunk in values.chunks(MAX_BINDS / 3) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO temp.column_values (id, value, key) ");
        q.push_values(chunk, |mut b, (id, value)| {
            b.push_bind(id.as_str())
                .push_bind(value.as_deref())
                .push_bind(value.as_deref().map(str::to_lowercase));
        });
        q.build().execute(&mut **tx).await?;
    }
    let column = column(field);
    // The ExternalSyncID's look-up key (lower case, as Rust folds it) moves with it.
    let key = if field == Field::ExternalSyncId {
        ", external_sync_key = (SELECT v.key FROM temp.column_values v WHERE v.id = accounts.id)"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE accounts SET {column} = \
         (SELECT v.value FROM temp.column_values v WHERE v.id = accounts.id){key} \
         WHERE id IN (SELECT id FROM temp.column_values)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM temp.column_values")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Makes `address` the account's primary (keeping the old primary as a secondary address).
async fn move_primary(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    id: &str,
    address: Option<&str>,
) -> Result<(), DirectoryError> {
    sqlx::query("UPDATE addresses SET is_primary = 0 WHERE account_id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    if let Some(address) = address {
        sqlx::query(
            "INSERT INTO addresses (address, stem, account_id, is_primary) VALUES (?, ?, ?, 1)
             ON CONFLICT (address) DO UPDATE SET is_primary = 1",
        )
        .bind(address)
        .bind(naming::stem_of(address))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
