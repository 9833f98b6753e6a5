//! The embedded directory's schema: its versions, applied in order when it is opened.

use crate::store::sqlite::Migration;

/// Schema versions, applied in order, each once.
pub(super) const MIGRATIONS: &[Migration] = &[
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
    (
        3,
        "name key of every account (likely duplicates), filled when the directory is opened",
        "ALTER TABLE accounts ADD COLUMN name_key TEXT;
    CREATE INDEX accounts_name_key ON accounts (name_key, organisation);",
    ),
    (
        4,
        "index of secondary addresses only (a plan looks every joined account's up)",
        // Nearly every address is a primary one: probing this index for an account without
        // secondary addresses reads a few pages instead of the account's address row.
        "CREATE INDEX addresses_secondary ON addresses (account_id) WHERE is_primary = 0;",
    ),
];
