//! A SQL table or view (PostgreSQL, MariaDB/MySQL, SQLite) as a sync source.

use super::config::SqlConfig;
use super::{Batch, Cursor, Source, SourceEntry, SourceError, WriteBack};

pub struct SqlSource {
    target: String,
}

impl SqlSource {
    pub async fn open(config: &SqlConfig) -> Result<SqlSource, SourceError> {
        Err(SourceError::Config(format!(
            "{}: this kind of source is not available in this build",
            config.table
        )))
    }
}

impl Source for SqlSource {
    fn describe(&self) -> String {
        self.target.clone()
    }

    async fn read(
        &mut self,
        _attributes: &[String],
        _since: Option<&Cursor>,
    ) -> Result<Batch, SourceError> {
        Err(SourceError::Config(self.target.clone()))
    }

    async fn read_anchors(
        &mut self,
        _attributes: &[String],
        _anchors: &[String],
    ) -> Result<Vec<SourceEntry>, SourceError> {
        Err(SourceError::Config(self.target.clone()))
    }

    async fn write_back(
        &mut self,
        _writes: &[WriteBack],
    ) -> Result<Vec<Result<(), String>>, SourceError> {
        Err(SourceError::Config(self.target.clone()))
    }
}
