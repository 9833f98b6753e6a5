//! An XLS (BIFF8 in an OLE compound file) checked before the spreadsheet library opens it.
//!
//! In: the file's bytes and the [`Limits`]. Out: `Ok(())`, or the [`ReadError`] naming the bound
//! it goes over. The library lays every sheet out as a dense rectangle from its first to its
//! last cell, and reserves what a sheet's DIMENSIONS record claims: one cell in the far corner
//! of a 5 KB file would cost gigabytes. So the workbook stream is found here (compound file
//! directory, FAT and mini FAT followed with every chain bounded) and each sheet's records are
//! walked as the library walks them, adding up the rectangles it would allocate.

use super::ReadError;
use super::limits::{Limit, Limits};

const FREE: u32 = 0xFFFF_FFFF;
const END_OF_CHAIN: u32 = 0xFFFF_FFFE;
/// More sheets than this is not a staff list.
const MAX_SHEETS: usize = 1024;

fn damaged(what: &str) -> ReadError {
    ReadError::Workbook(format!("the file is damaged ({what})"))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A compound file's sectors and allocation table.
struct Compound<'a> {
    bytes: &'a [u8],
    sector: usize,
    fat: Vec<u32>,
}

impl Compound<'_> {
    fn sector_bytes(&self, id: u32) -> Option<&[u8]> {
        let start = (id as usize).checked_add(1)?.checked_mul(self.sector)?;
        self.bytes.get(start..start.checked_add(self.sector)?)
    }

    /// The sectors of a chain, at most as many as the table has (a loop is damage).
    fn chain(&self, start: u32, table: &[u32]) -> Option<Vec<u32>> {
        let mut ids = Vec::new();
        let mut id = start;
        while id != END_OF_CHAIN {
            if ids.len() >= table.len() || id == FREE {
                return None;
            }
            ids.push(id);
            id = *table.get(id as usize)?;
        }
        Some(ids)
    }

    fn read_chain(&self, start: u32, limit: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for id in self.chain(start, &self.fat)? {
            if out.len() >= limit {
                break;
            }
            out.extend_from_slice(self.sector_bytes(id)?);
        }
        out.truncate(limit);
        Some(out)
    }
}

/// The workbook stream (`Workbook`, or `Book` in older files) of a compound file.
fn workbook_stream(bytes: &[u8]) -> Option<Vec<u8>> {
    let shift = u16_at(bytes, 0x1E)?;
    let mini_shift = u16_at(bytes, 0x20)?;
    if !(7..=16).contains(&shift) || mini_shift >= shift {
        return None;
    }
    let sector = 1usize << shift;
    let per_sector = sector / 4;
    let fat_sectors = u32_at(bytes, 0x2C)? as usize;
    let first_dir = u32_at(bytes, 0x30)?;
    let cutoff = u32_at(bytes, 0x38)? as usize;
    let first_mini_fat = u32_at(bytes, 0x3C)?;
    let mut difat_next = u32_at(bytes, 0x44)?;
    let difat_sectors = u32_at(bytes, 0x48)? as usize;
    let most_sectors = bytes.len() / sector + 1;
    if fat_sectors > most_sectors || difat_sectors > most_sectors {
        return None;
    }
    let mut fat_ids: Vec<u32> = (0..109)
        .filter_map(|i| u32_at(bytes, 0x4C + 4 * i))
        .filter(|&id| id != FREE)
        .collect();
    let mut cf = Compound {
        bytes,
        sector,
        fat: Vec::new(),
    };
    for _ in 0..difat_sectors {
        if difat_next == END_OF_CHAIN || difat_next == FREE {
            break;
        }
        let s = cf.sector_bytes(difat_next)?;
        fat_ids.extend(
            (0..per_sector - 1)
                .filter_map(|i| u32_at(s, 4 * i))
                .filter(|&id| id != FREE),
        );
        difat_next = u32_at(s, 4 * (per_sector - 1))?;
    }
    fat_ids.truncate(fat_sectors);
    let mut fat = Vec::with_capacity(fat_ids.len() * per_sector);
    for id in fat_ids {
        let s = cf.sector_bytes(id)?;
        fat.extend((0..per_sector).filter_map(|i| u32_at(s, 4 * i)));
    }
    cf.fat = fat;

    let directory = cf.read_chain(first_dir, bytes.len())?;
    let entry = |i: usize| directory.get(i * 128..i * 128 + 128);
    let root = entry(0)?;
    let size_of = |e: &[u8]| -> Option<usize> {
        let low = u32_at(e, 120)? as usize;
        // Version 3 files (512-byte sectors) may leave garbage in the size's high half.
        let high = if sector == 512 {
            0
        } else {
            u32_at(e, 124)? as usize
        };
        Some(low | (high << 32))
    };
    let stream = (0..directory.len() / 128).find_map(|i| {
        let e = entry(i)?;
        let name_len = (u16_at(e, 64)? as usize).min(64);
        let name: Vec<u16> = (0..name_len / 2)
            .filter_map(|k| u16_at(e, 2 * k))
            .take_while(|&c| c != 0)
            .collect();
        let name = String::from_utf16_lossy(&name);
        (e[66] == 2 && (name == "Workbook" || name == "Book")).then_some(e)
    })?;
    let start = u32_at(stream, 116)?;
    let size = size_of(stream)?.min(bytes.len());
    if size >= cutoff {
        return cf.read_chain(start, size);
    }
    // A small stream lives in the mini stream, in 64-byte sectors.
    let mini = cf.read_chain(u32_at(root, 116)?, size_of(root)?.min(bytes.len()))?;
    let mini_fat_bytes = cf.read_chain(first_mini_fat, bytes.len())?;
    let mini_fat: Vec<u32> = (0..mini_fat_bytes.len() / 4)
        .filter_map(|i| u32_at(&mini_fat_bytes, 4 * i))
        .collect();
    let mini_sector = 1usize << mini_shift;
    let mut out = Vec::with_capacity(size);
    for id in cf.chain(start, &mini_fat)? {
        let at = (id as usize).checked_mul(mini_sector)?;
        out.extend_from_slice(mini.get(at..at + mini_sector)?);
        if out.len() >= size {
            break;
        }
    }
    out.truncate(size);
    Some(out)
}

/// BIFF records: (type, data). Continue records come as records of their own, as the
/// library skips them when it looks for cells.
fn records(stream: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let typ = u16_at(stream, at)?;
        let len = u16_at(stream, at + 2)? as usize;
        let data = stream.get(at + 4..at + 4 + len)?;
        at += 4 + len;
        Some((typ, data))
    })
}

/// The smallest rectangle holding some cells.
#[derive(Default)]
struct Extent(Option<(u32, u32, u32, u32)>);

impl Extent {
    fn add(&mut self, row: u32, col: u32) {
        self.0 = Some(match self.0 {
            None => (row, row, col, col),
            Some((r0, r1, c0, c1)) => (r0.min(row), r1.max(row), c0.min(col), c1.max(col)),
        });
    }

    fn area(&self) -> u64 {
        self.0.map_or(0, |(r0, r1, c0, c1)| {
            (u64::from(r1) - u64::from(r0) + 1) * (u64::from(c1) - u64::from(c0) + 1)
        })
    }
}

/// What the library allocates for one sheet starting at `pos` (the cells it reserves and
/// the dense rectangles of values and of formulas), and the bytes of records it reads.
fn sheet_cells(stream: &[u8], pos: usize) -> (u64, usize) {
    let Some(sheet) = stream.get(pos..) else {
        return (0, 0);
    };
    let mut read = 0;
    let (mut values, mut formulas) = (Extent::default(), Extent::default());
    let (mut reserved, mut cells) = (0u64, 0u64);
    let (mut seen_bof, mut depth) = (false, 0usize);
    for (typ, data) in records(sheet) {
        read += 4 + data.len();
        if depth > 0 {
            match typ {
                0x0809 => depth += 1,
                0x000A => depth -= 1,
                _ => {}
            }
            continue;
        }
        let at = |data: &[u8]| Some((u32::from(u16_at(data, 0)?), u32::from(u16_at(data, 2)?)));
        match typ {
            0x0809 if seen_bof => depth += 1,
            0x0809 => seen_bof = true,
            0x0200 => reserved = reserved.saturating_add(dimensions(data)),
            0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD => {
                if let Some((row, col)) = at(data) {
                    values.add(row, col);
                    cells += 1;
                }
            }
            0x00BD => {
                if let (Some((row, first)), Some(last)) = (
                    at(data),
                    data.len().checked_sub(2).and_then(|e| u16_at(data, e)),
                ) {
                    let last = u32::from(last);
                    if last >= first {
                        values.add(row, first);
                        values.add(row, last);
                        cells += u64::from(last - first + 1);
                    }
                }
            }
            0x0006 => {
                if let Some((row, col)) = at(data) {
                    values.add(row, col);
                    formulas.add(row, col);
                    cells += 2;
                }
            }
            0x000A => break,
            _ => {}
        }
    }
    let total = reserved
        .saturating_add(cells)
        .saturating_add(values.area())
        .saturating_add(formulas.area());
    (total, read)
}

/// The cells a DIMENSIONS record makes the library reserve (as it reads the record).
fn dimensions(r: &[u8]) -> u64 {
    let (first_row, last_row, first_col, last_col) = match r.len() {
        10 => (
            u64::from(u16_at(r, 0).unwrap_or(0)),
            u64::from(u16_at(r, 2).unwrap_or(0)),
            u64::from(u16_at(r, 4).unwrap_or(0)),
            u64::from(u16_at(r, 6).unwrap_or(0)),
        ),
        14 | 16 => (
            u64::from(u32_at(r, 0).unwrap_or(0)),
            u64::from(u32_at(r, 4).unwrap_or(0)),
            u64::from(u16_at(r, 8).unwrap_or(0)),
            u64::from(u16_at(r, 10).unwrap_or(0)),
        ),
        _ => return 0,
    };
    let first_col = if first_col > 0xFF || last_col < first_col {
        0
    } else {
        first_col
    };
    if last_row == 0 || last_col == 0 {
        return 1;
    }
    // A last row before the first wraps around in the library: as large as it gets.
    let rows = last_row.checked_sub(first_row).unwrap_or(u64::MAX);
    let cols = last_col.checked_sub(first_col).unwrap_or(u64::MAX);
    rows.saturating_mul(cols)
}

/// Checks an XLS file against the limits before the library expands it.
pub(super) fn check(bytes: &[u8], limits: &Limits) -> Result<(), ReadError> {
    let stream =
        workbook_stream(bytes).ok_or_else(|| damaged("its workbook stream cannot be found"))?;
    let mut sheets = Vec::new();
    for (typ, data) in records(&stream) {
        match typ {
            0x0085 => {
                if let Some(pos) = u32_at(data, 0) {
                    sheets.push(pos as usize);
                }
            }
            0x000A => break,
            _ => {}
        }
        if sheets.len() > MAX_SHEETS {
            return Err(ReadError::Workbook(format!(
                "it has more than {MAX_SHEETS} sheets"
            )));
        }
    }
    // Sheets are parts of the stream one after the other; sheets pointing into one another
    // would make the library read the stream again for each.
    let most_read = stream.len().saturating_mul(2);
    let (mut total, mut read) = (0u64, 0usize);
    for pos in sheets {
        let (cells, bytes) = sheet_cells(&stream, pos);
        read = read.saturating_add(bytes);
        if read > most_read {
            return Err(damaged("its sheets overlap"));
        }
        total = total.saturating_add(cells);
        if total > limits.max_cells {
            return Err(ReadError::Limit {
                limit: Limit::Cells,
                max: limits.max_cells,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_count_as_the_library_reserves_them() {
        let biff8 = |r0: u32, r1: u32, c0: u16, c1: u16| {
            let mut d = Vec::new();
            d.extend(r0.to_le_bytes());
            d.extend(r1.to_le_bytes());
            d.extend(c0.to_le_bytes());
            d.extend(c1.to_le_bytes());
            d.extend([0, 0]);
            d
        };
        assert_eq!(dimensions(&biff8(0, 10, 0, 4)), 40);
        assert_eq!(dimensions(&biff8(0, 65536, 0, 256)), 65536 * 256);
        assert_eq!(dimensions(&biff8(20, 10, 0, 4)), u64::MAX);
    }
}
