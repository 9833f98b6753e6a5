//! Writes to the embedded directory: a batch of creates and compare-and-set updates in one
//! transaction, with the history of every field it changes.

use std::collections::{BTreeMap, HashMap};

use sqlx::{QueryBuilder, Sqlite};

use super::{LocalDirectory, MAX_BINDS, aggregated_accounts, column, json_array};
use crate::directory::naming;
use crate::directory::{Account, Change, DirectoryError, Op, OpOutcome};
use crate::model::{Field, PortalId};

/// Inserts accounts and their addresses with multi-row statements.
pub(super) async fn insert_accounts(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    accounts: &[Account],
) -> Result<(), DirectoryError> {
    const COLUMNS: usize = 21;
    // In key order, so each statement walks the primary key's B-tree forwards instead of
    // jumping between its pages for random IDs.
    let mut accounts: Vec<&Account> = accounts.iter().collect();
    accounts.sort_unstable_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    for chunk in accounts.chunks(MAX_BINDS / COLUMNS) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO accounts (id, status, name_key, external_sync_key, external_sync_id, title, \
             first_name, last_name, display_name, email, job_title, organisation, \
             organisation_unit, office_phone, mobile_phone, fax, pager, notes, clinical_role, \
             clinical_speciality, work_area) ",
        );
        q.push_values(chunk, |mut b, a| {
            b.push_bind(a.id.to_string())
                .push_bind(a.status.as_str())
                .push_bind(name_key(a))
                .push_bind(a.external_sync_id().map(str::to_lowercase));
            for field in Field::ALL.iter().skip(1) {
                b.push_bind(a.get(*field).map(str::to_owned));
            }
        });
        q.build().execute(&mut **tx).await?;
    }
    let mut addresses: Vec<(String, &str, bool)> = accounts
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
    addresses.sort_unstable();
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

/// The look-up key of an account's name ([`crate::model::naming::name_key`]).
pub(super) fn name_key(a: &Account) -> String {
    crate::model::naming::name_key(
        a.get(Field::FirstName).unwrap_or_default(),
        a.get(Field::LastName).unwrap_or_default(),
    )
}

/// A history line waiting for the batch's multi-row insert.
struct HistoryLine {
    account: String,
    field: &'static str,
    before: Option<String>,
    after: Option<String>,
    run: String,
}

impl LocalDirectory {
    /// Applies a batch in one transaction (the [`crate::directory::Directory::apply`] of the
    /// embedded directory): the accounts it names are read first, then every operation is
    /// decided in order, then the changes are written a column at a time.
    pub(super) async fn apply_batch(&self, ops: &[Op]) -> Result<Vec<OpOutcome>, DirectoryError> {
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
        // An address planned before another account took it is numbered again here.
        let mut numbering = naming::Numbering::default();
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
                                let free = numbering
                                    .free(&naming::stem_of(&email), |x| taken.contains_key(x));
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
                                run: new.run.clone(),
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
        // A renamed account's name key moves with its name.
        let renamed: HashMap<String, Option<String>> = [Field::FirstName, Field::LastName]
            .iter()
            .filter_map(|f| sets.get(f))
            .flat_map(HashMap::keys)
            .filter_map(|id| Some((id.clone(), Some(name_key(current.get(id)?)))))
            .collect();
        for (field, values) in sets {
            set_column(&mut tx, column(field), values).await?;
        }
        if !renamed.is_empty() {
            set_column(&mut tx, "name_key", renamed).await?;
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
pub(super) async fn set_column(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    column: &'static str,
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
    // The ExternalSyncID's look-up key (lower case, as Rust folds it) moves with it.
    let key = if column == "external_sync_id" {
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
