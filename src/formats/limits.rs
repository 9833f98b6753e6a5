//! How much one submission file may make the readers hold, whatever its size on the wire.
//!
//! In: the deployment's `[limits]`. Out: bounds the readers check before they expand anything
//! (a workbook's decompressed parts, its cells, the header's columns). A file over a bound is
//! refused as a whole with a [`super::ReadError::Limit`] naming the bound and its setting.

use serde::Deserialize;

/// Bounds on what a submission may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most cells a file may hold: a text file's data rows, or a workbook's every sheet counted
    /// up to each row's last value.
    pub max_cells: u64,
    /// Most columns a header row may have.
    pub max_columns: usize,
    /// Most bytes a workbook (XLSX or ODS) may decompress to, all its parts together.
    pub max_decompressed_bytes: u64,
    /// Most other lines a message about a duplicate names before "and N more lines".
    pub max_lines_named: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_cells: 1_000_000,
            max_columns: 256,
            max_decompressed_bytes: 200 * 1024 * 1024,
            max_lines_named: 10,
        }
    }
}

/// Which bound a file went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Cells,
    Columns,
    DecompressedBytes,
    /// A workbook part other than a sheet or the shared strings (styles, workbook,
    /// relationships): real ones are kilobytes; fixed at [`MAX_AUXILIARY_PART_BYTES`].
    AuxiliaryPart,
}

/// Largest decompressed size of a workbook part that is neither a sheet nor the shared strings.
pub const MAX_AUXILIARY_PART_BYTES: u64 = 16 * 1024 * 1024;

impl Limit {
    /// The setting that changes it.
    pub fn setting(self) -> &'static str {
        match self {
            Limit::Cells => "limits.max_cells",
            Limit::Columns => "limits.max_columns",
            Limit::DecompressedBytes => "limits.max_decompressed_bytes",
            Limit::AuxiliaryPart => "a fixed limit",
        }
    }

    /// What is counted, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Limit::Cells => "cells",
            Limit::Columns => "columns in the header row",
            Limit::DecompressedBytes => "bytes once decompressed",
            Limit::AuxiliaryPart => {
                "bytes in one workbook part (styles, workbook or relationships)"
            }
        }
    }
}

/// Thousands separated by commas, for counts in messages.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(19_997), "19,997");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
