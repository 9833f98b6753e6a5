//! What differs between PostgreSQL, MariaDB/MySQL and SQLite for the SQL source: checked
//! identifiers and their quoting, placeholders, reading any column as text, the catalog
//! query that lists a table's columns, and how a text parameter is compared with (or stored
//! in) a column of a given type. Pure: the SQL text is built here, run elsewhere.
//!
//! Every value reaches the database as a bound text parameter; where the database would not
//! compare text with the column's type correctly (or would skip the index), the parameter,
//! never the column, is cast to the column's type.

/// The database behind a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

impl Dialect {
    /// The dialect of a `postgres://`, `postgresql://`, `mysql://`, `mariadb://` or
    /// `sqlite:` URL.
    pub fn from_url(url: &str) -> Option<Dialect> {
        let scheme = url.split(':').next()?.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "mysql" | "mariadb" => Some(Dialect::MySql),
            "sqlite" => Some(Dialect::Sqlite),
            _ => None,
        }
    }

    /// A checked identifier, quoted.
    pub fn quote(self, name: &str) -> String {
        match self {
            Dialect::MySql => format!("`{name}`"),
            Dialect::Postgres | Dialect::Sqlite => format!("\"{name}\""),
        }
    }

    /// A table name (`schema.table` or `table`), each part quoted.
    pub fn quote_table(self, table: &TableName) -> String {
        match &table.schema {
            Some(s) => format!("{}.{}", self.quote(s), self.quote(&table.name)),
            None => self.quote(&table.name),
        }
    }

    /// The `n`th parameter (from 1).
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::MySql | Dialect::Sqlite => "?".to_owned(),
        }
    }

    /// An expression giving a (quoted) column's value as text, NULL staying NULL.
    pub fn as_text(self, column: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST({column} AS text)"),
            Dialect::MySql => format!("CAST({column} AS CHAR)"),
            Dialect::Sqlite => format!("CAST({column} AS TEXT)"),
        }
    }

    /// Statements run once on a new connection: times in UTC, so a cursor read from a
    /// timestamp column means the same instant on every run.
    pub fn session_setup(self) -> &'static [&'static str] {
        match self {
            Dialect::Postgres => &["SET TIME ZONE 'UTC'"],
            Dialect::MySql => &["SET time_zone = '+00:00'"],
            Dialect::Sqlite => &[],
        }
    }

    /// The query listing the columns of the tables or views whose name matches the first
    /// parameter case-insensitively, in the schema named by the second (or the connection's
    /// default one): rows of (table name, column name, declared type), all text.
    pub fn columns_query(self) -> &'static str {
        match self {
            Dialect::Postgres => {
                "SELECT CAST(c.relname AS text), CAST(a.attname AS text), \
                        format_type(a.atttypid, NULL) \
                 FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE lower(c.relname) = lower($1) \
                   AND n.nspname = COALESCE($2, current_schema()) \
                   AND c.relkind IN ('r', 'v', 'm', 'p', 'f') \
                   AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY c.relname, a.attnum"
            }
            Dialect::MySql => {
                "SELECT CAST(table_name AS CHAR), CAST(column_name AS CHAR), \
                        CAST(column_type AS CHAR) \
                 FROM information_schema.columns \
                 WHERE LOWER(table_name) = LOWER(?) AND table_schema = COALESCE(?, DATABASE()) \
                 ORDER BY table_name, ordinal_position"
            }
            // SQLite names are case-insensitive already; `?2` is the schema (`main` when
            // NULL).
            Dialect::Sqlite => {
                "SELECT ?1, name, type FROM pragma_table_info(?1, COALESCE(?2, 'main')) \
                 ORDER BY cid"
            }
        }
    }

    /// The kind of a column from its declared type, as the catalog spells it.
    pub fn kind(self, declared: &str) -> Kind {
        let t = declared.to_ascii_lowercase();
        let t = t.trim();
        match self {
            Dialect::Postgres => match t {
                "smallint" | "integer" | "bigint" => Kind::Integer { unsigned: false },
                "text" | "character varying" | "name" => Kind::Text,
                "uuid" => Kind::Uuid,
                _ => Kind::Other,
            },
            Dialect::MySql => {
                let base = t.split(['(', ' ']).next().unwrap_or_default();
                match base {
                    "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
                        Kind::Integer {
                            unsigned: t.contains("unsigned"),
                        }
                    }
                    "decimal" | "numeric" => Kind::Decimal,
                    "float" | "double" | "real" => Kind::Float,
                    "datetime" | "timestamp" => Kind::Timestamp,
                    "date" => Kind::Date,
                    "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                        Kind::Text
                    }
                    _ => Kind::Other,
                }
            }
            // SQLite's column affinity rules (https://sqlite.org/datatype3.html, 3.1).
            Dialect::Sqlite => {
                if t.contains("int") {
                    Kind::Integer { unsigned: false }
                } else if t.contains("char") || t.contains("clob") || t.contains("text") {
                    Kind::Text
                } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
                    Kind::Float
                } else {
                    Kind::Other
                }
            }
        }
    }

    /// A text parameter as a value to compare with, or order against, a column of this
    /// type; `None` when only the column's text can be compared (PostgreSQL types a text
    /// parameter cannot be cast to without risk of an error).
    fn typed(self, column: &Column, placeholder: &str) -> String {
        match (self, column.kind) {
            (_, Kind::Text) => placeholder.to_owned(),
            (Dialect::Postgres, Kind::Integer { .. }) => format!("CAST({placeholder} AS bigint)"),
            (Dialect::Postgres, _) => format!("CAST({placeholder} AS {})", column.declared),
            (Dialect::MySql, Kind::Integer { unsigned: false }) => {
                format!("CAST({placeholder} AS SIGNED)")
            }
            (Dialect::MySql, Kind::Integer { unsigned: true }) => {
                format!("CAST({placeholder} AS UNSIGNED)")
            }
            (Dialect::MySql, Kind::Decimal) => format!("CAST({placeholder} AS DECIMAL(65,30))"),
            (Dialect::MySql, Kind::Float) => format!("CAST({placeholder} AS DOUBLE)"),
            (Dialect::MySql, Kind::Timestamp) => format!("CAST({placeholder} AS DATETIME(6))"),
            (Dialect::MySql, Kind::Date) => format!("CAST({placeholder} AS DATE)"),
            (Dialect::Sqlite, Kind::Integer { .. }) => format!("CAST({placeholder} AS INTEGER)"),
            (Dialect::Sqlite, Kind::Float) => format!("CAST({placeholder} AS REAL)"),
            _ => placeholder.to_owned(),
        }
    }

    /// `column >= parameter` for the change column: the parameter is a value this column
    /// gave as text, so it casts back to the column's type and compares as that type.
    pub fn at_least(self, column: &Column, placeholder: &str) -> String {
        format!(
            "{} >= {}",
            self.quote(&column.name),
            self.typed(column, placeholder)
        )
    }

    /// `column = parameter` for the anchor, using the column's index where there is one.
    /// Text that cannot be a value of the column's type is left out beforehand
    /// ([`Column::may_hold`]), so the cast never fails.
    pub fn equals(self, column: &Column, placeholder: &str) -> String {
        let quoted = self.quote(&column.name);
        match (self, column.kind) {
            (Dialect::Postgres, Kind::Other) => {
                format!("{} = {placeholder}", self.as_text(&quoted))
            }
            _ => format!("{quoted} = {}", self.typed(column, placeholder)),
        }
    }

    /// `column = parameter` in an UPDATE's SET list.
    pub fn assign(self, column: &Column, placeholder: &str) -> String {
        let value = match self {
            Dialect::Postgres => self.typed(column, placeholder),
            // MariaDB and SQLite convert text to the column's type on their own.
            Dialect::MySql | Dialect::Sqlite => placeholder.to_owned(),
        };
        format!("{} = {value}", self.quote(&column.name))
    }
}

/// What a column holds, as far as comparing it with text is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer { unsigned: bool },
    Decimal,
    Float,
    Timestamp,
    Date,
    Uuid,
    Text,
    Other,
}

/// A column as the catalog gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its exact name.
    pub name: String,
    /// Its declared type (PostgreSQL: without length or precision, so casts never cut).
    pub declared: String,
    pub kind: Kind,
}

impl Column {
    /// Whether a value of this column can be written as `text` (no value of an integer
    /// column is `abc`): looked-up values that cannot are left out rather than cast.
    pub fn may_hold(&self, text: &str) -> bool {
        match self.kind {
            Kind::Integer { unsigned: false } => text.trim().parse::<i64>().is_ok(),
            Kind::Integer { unsigned: true } => text.trim().parse::<u64>().is_ok(),
            Kind::Uuid => uuid::Uuid::parse_str(text.trim()).is_ok(),
            _ => true,
        }
    }
}

/// A table or view name from the configuration: `name` or `schema.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn parse(text: &str) -> Result<TableName, String> {
        let mut parts = text.split('.');
        let (schema, name) = match (parts.next(), parts.next(), parts.next()) {
            (Some(name), None, _) => (None, name),
            (Some(schema), Some(name), None) => (Some(schema), name),
            _ => {
                return Err(format!(
                    "\"{text}\" is not a table name (name or schema.name)"
                ));
            }
        };
        for part in schema.iter().chain([&name]) {
            check_identifier(part).map_err(|e| format!("table \"{text}\": {e}"))?;
        }
        Ok(TableName {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
        })
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A column or table name: ASCII letters, digits and `_`, at most 63 characters (what every
/// one of the three databases accepts unchanged inside quotes).
pub fn check_identifier(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 63
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!(
            "\"{name}\" is not a column or table name (letters, digits and _, at most 63)"
        ));
    }
    Ok(())
}

/// A database URL without its password (user info and `password=` parameters).
pub fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = url[..start].to_owned();
    match authority.rfind('@') {
        Some(at) => {
            let user = authority[..at].split(':').next().unwrap_or_default();
            out.push_str(user);
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    match tail.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(tail),
    }
    out
}

/// The password a URL carries (user info or a `password=` parameter), as written and
/// percent-decoded, to scrub from error messages.
pub fn passwords(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(start) = url.find("://").map(|i| i + 3) {
        let rest = &url[start..];
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if let Some((user_info, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = user_info.split_once(':')
        {
            found.push(password.to_owned());
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        for p in query.split('&') {
            if let Some((k, v)) = p.split_once('=')
                && k.eq_ignore_ascii_case("password")
            {
                found.push(v.to_owned());
            }
        }
    }
    let decoded: Vec<String> = found.iter().map(|p| percent_decode(p)).collect();
    found.extend(decoded);
    found.retain(|p| p.len() >= 4);
    found.sort();
    found.dedup();
    found
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact("postgres://connector:s3cr%40t@db:5432/staff?sslmode=require&password=x"),
            "postgres://connector@db:5432/staff?sslmode=require&password=***"
        );
        assert_eq!(redact("sqlite:///var/staff.db"), "sqlite:///var/staff.db");
        assert_eq!(
            passwords("mysql://u:s3cr%40t@h/d"),
            ["s3cr%40t".to_owned(), "s3cr@t".to_owned()]
        );
    }

    #[test]
    fn identifiers_are_letters_digits_and_underscores() {
        assert!(check_identifier("updated_at2").is_ok());
        for bad in ["", "a b", "a\"b", "a`b", "x;DROP", "é", &"a".repeat(64)] {
            assert!(check_identifier(bad).is_err(), "{bad}");
        }
        assert_eq!(
            TableName::parse("hr.staff").unwrap(),
            TableName {
                schema: Some("hr".to_owned()),
                name: "staff".to_owned()
            }
        );
        assert!(TableName::parse("a.b.c").is_err());
        assert!(TableName::parse("staff; --").is_err());
        assert_eq!(
            Dialect::MySql.quote_table(&TableName::parse("hr.staff").unwrap()),
            "`hr`.`staff`"
        );
    }

    #[test]
    fn parameters_are_cast_to_the_column_type() {
        let col = |d: Dialect, declared: &str| Column {
            name: "c".to_owned(),
            declared: declared.to_owned(),
            kind: d.kind(declared),
        };
        let pg = Dialect::Postgres;
        assert_eq!(
            pg.equals(&col(pg, "integer"), "$1"),
            "\"c\" = CAST($1 AS bigint)"
        );
        assert_eq!(pg.equals(&col(pg, "text"), "$1"), "\"c\" = $1");
        assert_eq!(
            pg.equals(&col(pg, "bpchar"), "$1"),
            "CAST(\"c\" AS text) = $1"
        );
        assert_eq!(
            pg.at_least(&col(pg, "timestamp with time zone"), "$2"),
            "\"c\" >= CAST($2 AS timestamp with time zone)"
        );
        let my = Dialect::MySql;
        assert_eq!(
            my.at_least(&col(my, "datetime(6)"), "?"),
            "`c` >= CAST(? AS DATETIME(6))"
        );
        assert_eq!(
            my.equals(&col(my, "bigint(20) unsigned"), "?"),
            "`c` = CAST(? AS UNSIGNED)"
        );
        assert!(!col(my, "int(11)").may_hold("'); DROP TABLE x; --"));
        assert!(col(my, "int(11)").may_hold("42"));
        let lite = Dialect::Sqlite;
        assert_eq!(lite.kind("VARCHAR(20)"), Kind::Text);
        assert_eq!(
            lite.equals(&col(lite, "INTEGER"), "?"),
            "\"c\" = CAST(? AS INTEGER)"
        );
    }
}
