//! Hostile submission files through the binary, each run under a memory cap (`prlimit --as`,
//! 1 GiB of address space) and a time cap: the verdict must be clear (exit 0, 1 or 2, never a
//! crash or an abort) and in time. Every file is made here, none is shipped.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_push-connector");
const MEMORY_CAP: u64 = 1 << 30;

/// What a capped run said.
struct Verdict {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Verdict {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", self.stdout))
    }
}

/// Runs the binary in `dir` under the memory cap; kills it and fails after `seconds`.
fn capped(dir: &Path, args: &[&str], seconds: u64) -> Verdict {
    let mut child = Command::new("prlimit")
        .arg(format!("--as={MEMORY_CAP}"))
        .arg("--")
        .arg(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .env_remove("PUSH_CONNECTOR_LOG")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs the binary");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(seconds) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: no verdict within {seconds} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&out.join().expect("stdout")).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().expect("stderr")).into_owned();
    let code = status.code().unwrap_or_else(|| {
        panic!("{args:?}: killed by a signal within the caps ({status}): {stderr}")
    });
    assert!(
        matches!(code, 0..=2),
        "{args:?}: exit {code} is not a verdict (a panic or an abort): {stderr}"
    );
    Verdict {
        code,
        stdout,
        stderr,
    }
}

fn validate_json(dir: &Path, file: &str, seconds: u64) -> Verdict {
    capped(dir, &["validate", "--json", file], seconds)
}

fn file_issue(v: &Value) -> String {
    v["file_issues"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

const HEAD: &str = "ExternalSyncID,FirstName,LastName,Organisation";

/// An XLSX with the given sheet XML and, when given, shared strings.
fn xlsx(sheet: &[u8], shared_strings: Option<&[u8]>) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut part = |name: &str, bytes: &[u8]| {
        zip.start_file(name, options).unwrap();
        zip.write_all(bytes).unwrap();
    };
    part(
        "[Content_Types].xml",
        br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#,
    );
    part(
        "_rels/.rels",
        br#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
    );
    part(
        "xl/workbook.xml",
        br#"<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Staff" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
    );
    let mut rels = String::from(
        r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>"#,
    );
    if let Some(strings) = shared_strings {
        rels.push_str(r#"<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>"#);
        part("xl/sharedStrings.xml", strings);
    }
    rels.push_str("</Relationships>");
    part("xl/_rels/workbook.xml.rels", rels.as_bytes());
    part("xl/worksheets/sheet1.xml", sheet);
    zip.finish().unwrap().into_inner()
}

fn sheet_xml(rows: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{rows}</sheetData></worksheet>"#
    )
    .into_bytes()
}

fn inline(reference: &str, text: &str) -> String {
    format!(r#"<c r="{reference}" t="inlineStr"><is><t>{text}</t></is></c>"#)
}

fn header_row() -> String {
    let cells: String = ["A1", "B1", "C1", "D1"]
        .iter()
        .zip(HEAD.split(','))
        .map(|(r, h)| inline(r, h))
        .collect();
    format!(r#"<row r="1">{cells}</row>"#)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    std::fs::write(dir.join(name), bytes).unwrap();
    name.to_owned()
}

#[test]
fn twenty_thousand_rows_sharing_one_key_are_refused_with_short_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("{HEAD}\n");
    for i in 0..20_000 {
        text.push_str(&format!("E1,Ann{},Lee,RXX\n", "a".repeat(i % 3)));
    }
    assert!(text.len() < 400_000);
    let f = write(dir.path(), "same-key.csv", text.as_bytes());
    let v = validate_json(dir.path(), &f, 60);
    assert_eq!(v.code, 1, "{}", v.stderr);
    let json = v.json();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 20_000);
    for row in rows {
        assert_eq!(row["status"], "refused");
        let message = row["issues"][0]["message"].as_str().unwrap();
        assert!(message.len() < 200, "{message}");
        assert!(
            message.contains("is also claimed by lines ")
                && message.contains(" and 19,989 more lines of this file"),
            "{message}"
        );
    }
    // Ten other lines are named, never the row's own.
    let first = rows[0]["issues"][0]["message"].as_str().unwrap();
    assert!(
        first.contains("by lines 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and"),
        "{first}"
    );
}

#[test]
fn a_shared_strings_bomb_is_refused_before_it_is_expanded() {
    let dir = tempfile::tempdir().unwrap();
    // Three million strings: 51 MB of XML in a small zip.
    let mut strings = Vec::from(
        &br#"<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#[..],
    );
    for _ in 0..3_000_000 {
        strings.extend_from_slice(b"<si><t>x</t></si>");
    }
    strings.extend_from_slice(b"</sst>");
    let sheet = sheet_xml(&header_row());
    let bomb = xlsx(&sheet, Some(&strings));
    assert!(bomb.len() < 400_000, "{}", bomb.len());
    let f = write(dir.path(), "strings.xlsx", &bomb);
    let v = validate_json(dir.path(), &f, 60);
    assert_eq!(v.code, 2, "{}", v.stdout);
    let message = file_issue(&v.json());
    assert!(
        message.contains("1,000,000 cells (limits.max_cells)"),
        "{message}"
    );

    // A count the library would reserve room for up front.
    let claim = br#"<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="40000000000"><si><t>x</t></si></sst>"#;
    let f = write(dir.path(), "claim.xlsx", &xlsx(&sheet, Some(claim)));
    let v = validate_json(dir.path(), &f, 30);
    assert_eq!(v.code, 2, "{}", v.stdout);
    assert!(file_issue(&v.json()).contains("limits.max_cells"));

    // 300 MB of white space in a sheet: over the decompressed bytes, read only up to them.
    let mut sheet = sheet_xml(&header_row());
    sheet.splice(40..40, std::iter::repeat_n(b' ', 300 << 20));
    let f = write(dir.path(), "spaces.xlsx", &xlsx(&sheet, None));
    let v = validate_json(dir.path(), &f, 60);
    assert_eq!(v.code, 2, "{}", v.stdout);
    let message = file_issue(&v.json());
    assert!(
        message.contains("209,715,200 bytes once decompressed (limits.max_decompressed_bytes)"),
        "{message}"
    );
}

#[test]
fn many_rows_reaching_a_far_column_are_refused_by_their_cells() {
    let dir = tempfile::tempdir().unwrap();
    // A header as wide as the columns read, then rows whose only cell is in column IV.
    let mut rows = String::from(r#"<row r="1">"#);
    for (i, h) in HEAD.split(',').enumerate() {
        rows.push_str(&inline(&format!("{}1", (b'A' + i as u8) as char), h));
    }
    rows.push_str(&inline("IV1", "Extra"));
    rows.push_str("</row>");
    for r in 2..400_000 {
        rows.push_str(&format!(r#"<row r="{r}"><c r="IV{r}"><v>1</v></c></row>"#));
    }
    let book = xlsx(&sheet_xml(&rows), None);
    assert!(book.len() < 4 << 20, "{}", book.len());
    let f = write(dir.path(), "far-column.xlsx", &book);
    let v = validate_json(dir.path(), &f, 60);
    assert_eq!(v.code, 2, "{}", v.stdout);
    assert!(file_issue(&v.json()).contains("1,000,000 cells (limits.max_cells)"));
}

#[test]
fn overflowing_cell_references_refuse_the_workbook_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    for reference in ["A99999999999", "XFD1048577", "XFE1", "AAAA1"] {
        let rows = format!(
            r#"{}<row r="2">{}{}{}{}</row>"#,
            header_row(),
            inline("A2", "E1"),
            inline("B2", "Ann"),
            inline("C2", "Lee"),
            inline(reference, "RXX")
        );
        let f = write(dir.path(), "refs.xlsx", &xlsx(&sheet_xml(&rows), None));
        let v = validate_json(dir.path(), &f, 30);
        assert_eq!(v.code, 2, "{reference}: {}", v.stdout);
        let message = file_issue(&v.json());
        assert!(
            message.contains(&format!("\"{reference}\"")) && message.contains("XFD"),
            "{message}"
        );
    }
    // A row number past the sheet's last row.
    let rows = format!(
        r#"{}<row r="4294967297"><c><v>1</v></c></row>"#,
        header_row()
    );
    let f = write(dir.path(), "rows.xlsx", &xlsx(&sheet_xml(&rows), None));
    let v = validate_json(dir.path(), &f, 30);
    assert_eq!(v.code, 2, "{}", v.stdout);
    assert!(file_issue(&v.json()).contains("row 4294967297"));
}

/// BIFF8 records.
fn record(typ: u16, data: &[u8]) -> Vec<u8> {
    let mut r = typ.to_le_bytes().to_vec();
    r.extend((data.len() as u16).to_le_bytes());
    r.extend_from_slice(data);
    r
}

fn label(row: u16, col: u16, text: &str) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend(row.to_le_bytes());
    d.extend(col.to_le_bytes());
    d.extend(0u16.to_le_bytes());
    d.extend((text.len() as u16).to_le_bytes());
    d.push(0);
    d.extend_from_slice(text.as_bytes());
    record(0x0204, &d)
}

fn number(row: u16, col: u16, value: f64) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend(row.to_le_bytes());
    d.extend(col.to_le_bytes());
    d.extend(0u16.to_le_bytes());
    d.extend(value.to_le_bytes());
    record(0x0203, &d)
}

/// A one-sheet BIFF8 workbook stream; `dimensions` adds a DIMENSIONS record claiming
/// (rows, columns).
fn biff(cells: &[Vec<u8>], dimensions: Option<(u32, u16)>) -> Vec<u8> {
    let bof = |dt: u16| {
        let mut d = 0x0600u16.to_le_bytes().to_vec();
        d.extend(dt.to_le_bytes());
        d.extend([0u8; 12]);
        record(0x0809, &d)
    };
    let sheet_name = b"Staff";
    let boundsheet_len = 4 + 4 + 4 + sheet_name.len();
    let globals_len = bof(5).len() + boundsheet_len + 4;
    let mut stream = bof(5);
    let mut d = (globals_len as u32).to_le_bytes().to_vec();
    d.extend([0, 0, sheet_name.len() as u8, 0]);
    d.extend_from_slice(sheet_name);
    stream.extend(record(0x0085, &d));
    stream.extend(record(0x000A, &[]));
    assert_eq!(stream.len(), globals_len);
    stream.extend(bof(0x10));
    if let Some((rows, cols)) = dimensions {
        let mut d = 0u32.to_le_bytes().to_vec();
        d.extend(rows.to_le_bytes());
        d.extend(0u16.to_le_bytes());
        d.extend(cols.to_le_bytes());
        d.extend([0, 0]);
        stream.extend(record(0x0200, &d));
    }
    for c in cells {
        stream.extend_from_slice(c);
    }
    stream.extend(record(0x000A, &[]));
    stream
}

/// An OLE compound file (version 3, 512-byte sectors) holding one `Workbook` stream.
fn compound(workbook: &[u8]) -> Vec<u8> {
    let mut stream = workbook.to_vec();
    stream.resize(stream.len().max(4096).next_multiple_of(512), 0);
    let sectors = stream.len() / 512;
    assert!(sectors + 2 <= 128);
    let mut header = vec![0u8; 512];
    header[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
    let put16 =
        |h: &mut Vec<u8>, at: usize, v: u16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |h: &mut Vec<u8>, at: usize, v: u32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put16(&mut header, 0x18, 0x003E);
    put16(&mut header, 0x1A, 3);
    put16(&mut header, 0x1C, 0xFFFE);
    put16(&mut header, 0x1E, 9);
    put16(&mut header, 0x20, 6);
    put32(&mut header, 0x2C, 1);
    put32(&mut header, 0x30, 1);
    put32(&mut header, 0x38, 4096);
    put32(&mut header, 0x3C, 0xFFFF_FFFE);
    put32(&mut header, 0x44, 0xFFFF_FFFE);
    for i in 0..109 {
        put32(
            &mut header,
            0x4C + 4 * i,
            if i == 0 { 0 } else { 0xFFFF_FFFF },
        );
    }
    let mut fat = vec![0xFFFF_FFFFu32; 128];
    fat[0] = 0xFFFF_FFFD;
    fat[1] = 0xFFFF_FFFE;
    for s in 0..sectors {
        fat[2 + s] = if s + 1 == sectors {
            0xFFFF_FFFE
        } else {
            (3 + s) as u32
        };
    }
    let mut dir = vec![0u8; 512];
    let mut entry = |i: usize, name: &str, typ: u8, child: u32, start: u32, size: u32| {
        let e = &mut dir[i * 128..i * 128 + 128];
        for (k, u) in name.encode_utf16().enumerate() {
            e[2 * k..2 * k + 2].copy_from_slice(&u.to_le_bytes());
        }
        e[64..66].copy_from_slice(&((name.len() as u16 + 1) * 2).to_le_bytes());
        e[66] = typ;
        e[67] = 1;
        e[68..72].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        e[72..76].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        e[76..80].copy_from_slice(&child.to_le_bytes());
        e[116..120].copy_from_slice(&start.to_le_bytes());
        e[120..124].copy_from_slice(&size.to_le_bytes());
    };
    entry(0, "Root Entry", 5, 1, 0xFFFF_FFFE, 0);
    entry(
        1,
        "Workbook",
        2,
        0xFFFF_FFFF,
        2,
        workbook.len().max(4096) as u32,
    );
    for i in 2..4 {
        let e = &mut dir[i * 128..i * 128 + 128];
        e[68..80].fill(0xFF);
    }
    let mut out = header;
    out.extend(fat.iter().flat_map(|v| v.to_le_bytes()));
    out.extend(dir);
    out.extend(stream);
    out
}

fn xls_cells() -> Vec<Vec<u8>> {
    let mut cells: Vec<Vec<u8>> = HEAD
        .split(',')
        .enumerate()
        .map(|(c, h)| label(0, c as u16, h))
        .collect();
    for (c, v) in ["E1", "Ann", "Lee", "RXX"].iter().enumerate() {
        cells.push(label(1, c as u16, v));
    }
    cells
}

#[test]
fn an_xls_is_read_and_one_far_cell_is_refused_before_the_sheet_is_laid_out() {
    let dir = tempfile::tempdir().unwrap();
    // The same small workbook reads normally: the compound file and records are understood.
    let plain = compound(&biff(&xls_cells(), None));
    let f = write(dir.path(), "plain.xls", &plain);
    let v = validate_json(dir.path(), &f, 30);
    assert_eq!(v.code, 0, "{}", v.stdout);
    assert_eq!(v.json()["encoding"], "workbook (xls)");

    // One number in the sheet's far corner: the library would lay out 65,536 x 256 cells.
    let mut cells = xls_cells();
    cells.push(number(65535, 255, 1.0));
    let corner = compound(&biff(&cells, None));
    assert!(corner.len() < 6 * 1024, "{}", corner.len());
    let f = write(dir.path(), "corner.xls", &corner);
    let v = validate_json(dir.path(), &f, 30);
    assert_eq!(v.code, 2, "{}", v.stdout);
    assert!(file_issue(&v.json()).contains("1,000,000 cells (limits.max_cells)"));

    // And a DIMENSIONS record claiming the whole sheet, which the library reserves up front.
    let mut cells = xls_cells();
    cells.push(number(65535, 255, 1.0));
    let claimed = compound(&biff(&cells, Some((65536, 256))));
    let f = write(dir.path(), "claimed.xls", &claimed);
    let v = validate_json(dir.path(), &f, 30);
    assert_eq!(v.code, 2, "{}", v.stdout);
    assert!(file_issue(&v.json()).contains("limits.max_cells"));
}

#[test]
fn an_800_kb_header_line_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("{HEAD}{}\nE1,Ann,Lee,RXX\n", ",x".repeat(400_000));
    assert!(text.len() > 800_000);
    let f = write(dir.path(), "wide.csv", text.as_bytes());
    let v = validate_json(dir.path(), &f, 10);
    assert_eq!(v.code, 2, "{}", v.stdout);
    let message = file_issue(&v.json());
    assert!(
        message.contains("256 columns in the header row (limits.max_columns)"),
        "{message}"
    );
    // Under the cap, columns that repeat a field are each named once, at once.
    text = format!("{HEAD}{}\nE1,Ann,Lee,RXX\n", ",Forename".repeat(250));
    let f = write(dir.path(), "repeats.csv", text.as_bytes());
    let v = validate_json(dir.path(), &f, 10);
    assert_eq!(v.code, 2, "{}", v.stdout);
    let message = file_issue(&v.json());
    assert!(
        message.contains("(column 2) and \"Forename\" (column 254)"),
        "{message}"
    );
}

#[test]
fn a_file_over_the_size_limit_is_refused_without_being_read() {
    let dir = tempfile::tempdir().unwrap();
    // 2 GiB, sparse: reading it whole would take twice the memory cap.
    let path = dir.path().join("huge.csv");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(2 << 30).unwrap();
    drop(file);
    let v = capped(dir.path(), &["validate", "--json", "huge.csv"], 20);
    assert_eq!(v.code, 2, "{}", v.stdout);
    assert!(
        file_issue(&v.json()).contains("over the limit of 36700160 bytes (service.max_file_bytes)")
    );
    for verb in ["apply", "plan"] {
        let v = capped(dir.path(), &[verb, "huge.csv"], 20);
        assert_eq!(v.code, 2, "{verb}: {}", v.stdout);
        assert!(
            v.stderr.contains("over the limit of 36700160 bytes"),
            "{verb}: {}",
            v.stderr
        );
    }
}

#[test]
fn one_bad_byte_keeps_a_utf8_file_utf8_and_refuses_only_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = format!("{HEAD}\nE1,Úša,Leź,RXX\nE2,Zoë,Brontë,RXX\n").into_bytes();
    let offset = file.len() + "E3,Bo".len();
    file.extend_from_slice(b"E3,Bo\xE9,Ng,RXX\n");
    let f = write(dir.path(), "mostly-utf8.csv", &file);
    let v = validate_json(dir.path(), &f, 30);
    assert_eq!(v.code, 1, "{}", v.stdout);
    let json = v.json();
    assert_eq!(json["encoding"], "UTF-8");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows[0]["status"], "valid");
    assert_eq!(rows[1]["status"], "valid");
    assert_eq!(rows[2]["status"], "refused");
    let message = rows[2]["issues"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("byte offset {offset}")),
        "{message}"
    );

    // Through apply, the names arrive as sent.
    common::import_samples(dir.path());
    let v = capped(dir.path(), &["apply", "--json", &f], 60);
    assert_eq!(v.code, 1, "{}", v.stderr);
    let o = capped(dir.path(), &["directory", "export"], 30);
    assert!(
        o.stdout.contains("Úša") && o.stdout.contains("Leź"),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("Ãš"), "{}", o.stdout);

    // Excel's Windows "CSV": single-byte accents and no UTF-8 sequence at all.
    let legacy: Vec<u8> = format!("{HEAD}\nE4,Zo\u{1},Bront\u{1},RXX\n")
        .bytes()
        .map(|b| if b == 1 { 0xEB } else { b })
        .collect();
    let f = write(dir.path(), "windows.csv", &legacy);
    let v = validate_json(dir.path(), &f, 30);
    assert_eq!(v.code, 0, "{}", v.stdout);
    assert_eq!(v.json()["encoding"], "windows-1252");
}

#[test]
fn invisible_characters_and_full_width_letters_do_not_make_new_people() {
    let dir = tempfile::tempdir().unwrap();
    common::import_samples(dir.path());
    let before = capped(dir.path(), &["directory", "export"], 30).stdout;
    // RXX0001..RXX0003 exist. Each row names one of them, disguised.
    let text = format!(
        "{HEAD}\nRXX0001\u{200B},Anne,Lee,RXX\n\u{FEFF}RXX0002,Ben,Carter,RXX\n\
         RXX\u{2060}0003,Chloe,Davies,RXX\nRXX\u{AD}0003,Chloe,Davies,RXX\n\
         \u{FF32}\u{FF38}\u{FF38}\u{FF10}\u{FF10}\u{FF10}\u{FF11},Anne,Lee,RXX\n"
    );
    let f = write(dir.path(), "disguised.csv", text.as_bytes());
    let v = capped(
        dir.path(),
        &["apply", "--json", &f, "--organisation", "RXX"],
        60,
    );
    let json = v.json();
    let rows = json["rows"].as_array().unwrap();
    let result = |line: u64| {
        rows.iter()
            .find(|r| r["line"] == line)
            .unwrap_or_else(|| panic!("line {line}: {json}"))
    };
    for (line, code) in [(2, "U+200B"), (3, "U+FEFF"), (4, "U+2060"), (5, "U+00AD")] {
        let r = result(line);
        assert_eq!(r["result"], "Rejected", "{r}");
        assert!(r["message"].as_str().unwrap().contains(code), "{r}");
    }
    // Full-width letters are the same key: the existing account, not a new one.
    assert_ne!(result(6)["result"], "Created", "{json}");
    assert_eq!(json["counts"]["created"], 0, "{json}");
    let after = capped(dir.path(), &["directory", "export"], 30).stdout;
    assert_eq!(before.lines().count(), after.lines().count(), "{after}");
}

#[test]
fn formulas_behind_spaces_or_a_dash_are_refused_and_neutralised_in_reports() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{HEAD},JobTitle,Notes,OfficePhone\n\
         E1,Ann,Lee,RXX,-2+3+cmd|' /C calc'!A0,,\n\
         E2,Bo,Ng,RXX,, =1+1,\n\
         E3,Cy,Day,RXX,Ward 3 - nights,-,+44 113 496 0123\n"
    );
    let f = write(dir.path(), "formulas.csv", text.as_bytes());
    let v = capped(
        dir.path(),
        &["validate", "--json", &f, "--report", "report.csv"],
        30,
    );
    assert_eq!(v.code, 1, "{}", v.stdout);
    let json = v.json();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows[0]["status"], "refused");
    assert!(
        rows[0]["issues"][0]["message"]
            .as_str()
            .unwrap()
            .contains("formula")
    );
    assert_eq!(rows[1]["status"], "refused");
    assert_eq!(rows[2]["status"], "valid", "{}", rows[2]);
    let report = std::fs::read_to_string(dir.path().join("report.csv")).unwrap();
    assert!(report.contains(",'-2+3+cmd|"), "{report}");
    assert!(report.contains(",' =1+1,"), "{report}");
}

/// An ODS spreadsheet whose one table holds `rows` (content.xml table rows).
fn ods(rows: &str) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
        .unwrap();
    zip.start_file("META-INF/manifest.xml", deflated).unwrap();
    zip.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#)
        .unwrap();
    zip.start_file("content.xml", deflated).unwrap();
    write!(
        zip,
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Staff">{rows}</table:table></office:spreadsheet></office:body></office:document-content>"#
    )
    .unwrap();
    zip.finish().unwrap().into_inner()
}

fn ods_row(cells: &[&str]) -> String {
    let cells: String = cells
        .iter()
        .map(|c| {
            format!(r#"<table:table-cell office:value-type="string"><text:p>{c}</text:p></table:table-cell>"#)
        })
        .collect();
    format!("<table:table-row>{cells}</table:table-row>")
}

#[test]
fn an_ods_is_read_and_repeated_cells_are_counted_as_they_expand() {
    let dir = tempfile::tempdir().unwrap();
    // As LibreOffice writes it: trailing empty columns and rows as repeats, which cost nothing.
    let rows = format!(
        r#"{}{}<table:table-row table:number-rows-repeated="1048574"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>"#,
        ods_row(&HEAD.split(',').collect::<Vec<_>>()),
        ods_row(&["E1", "Ann", "Lee", "RXX"]),
    );
    let f = write(dir.path(), "plain.ods", &ods(&rows));
    let v = validate_json(dir.path(), &f, 30);
    assert_eq!(v.code, 0, "{}", v.stdout);
    assert_eq!(v.json()["encoding"], "workbook (ods)");

    // A row of 16,384 values repeated 6,000 times: 98 million cells from a few hundred bytes.
    let rows = format!(
        r#"{}<table:table-row table:number-rows-repeated="6000"><table:table-cell office:value-type="float" office:value="1" table:number-columns-repeated="16384"><text:p>1</text:p></table:table-cell></table:table-row>"#,
        ods_row(&HEAD.split(',').collect::<Vec<_>>()),
    );
    let bomb = ods(&rows);
    assert!(bomb.len() < 2048, "{}", bomb.len());
    let f = write(dir.path(), "repeated.ods", &bomb);
    let v = validate_json(dir.path(), &f, 30);
    assert_eq!(v.code, 2, "{}", v.stdout);
    assert!(file_issue(&v.json()).contains("1,000,000 cells (limits.max_cells)"));
}

#[test]
fn the_limits_come_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[limits]\nmax_lines_named = 2\nmax_columns = 6\nmax_cells = 16\n",
    )
    .unwrap();
    let f = write(
        dir.path(),
        "dups.csv",
        format!("{HEAD}\nE1,Ann,Lee,RXX\nE1,Bo,Ng,RXX\nE1,Cy,Day,RXX\nE1,Di,Fox,RXX\n").as_bytes(),
    );
    let v = capped(
        dir.path(),
        &["--config", "c.toml", "validate", "--json", &f],
        30,
    );
    assert_eq!(v.code, 1, "{}", v.stderr);
    let message = v.json()["rows"][0]["issues"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("by lines 3, 4 and 1 more line of"),
        "{message}"
    );

    let f = write(
        dir.path(),
        "wide.csv",
        format!("{HEAD},A,B,C\nE1,Ann,Lee,RXX,,,\n").as_bytes(),
    );
    let v = capped(
        dir.path(),
        &["--config", "c.toml", "validate", "--json", &f],
        30,
    );
    assert_eq!(v.code, 2, "{}", v.stdout);
    assert!(file_issue(&v.json()).contains("more than 6 columns"));

    // Five rows of four cells are more than sixteen cells, in a text file and in a workbook.
    let f = write(
        dir.path(),
        "cells.csv",
        format!("{HEAD}\nE1,A,B,RXX\nE2,A,B,RXX\nE3,A,B,RXX\nE4,A,B,RXX\nE5,A,B,RXX\n").as_bytes(),
    );
    let v = capped(
        dir.path(),
        &["--config", "c.toml", "validate", "--json", &f],
        30,
    );
    assert_eq!(v.code, 2, "{}", v.stdout);
    assert!(file_issue(&v.json()).contains("more than 16 cells (limits.max_cells)"));
    let mut rows = header_row();
    for r in 2..=5 {
        rows.push_str(&format!(
            "<row r=\"{r}\">{}{}{}{}</row>",
            inline(&format!("A{r}"), &format!("E{r}")),
            inline(&format!("B{r}"), "Ann"),
            inline(&format!("C{r}"), "Lee"),
            inline(&format!("D{r}"), "RXX")
        ));
    }
    let f = write(dir.path(), "cells.xlsx", &xlsx(&sheet_xml(&rows), None));
    let v = capped(
        dir.path(),
        &["--config", "c.toml", "validate", "--json", &f],
        30,
    );
    assert_eq!(v.code, 2, "{}", v.stdout);
    assert!(file_issue(&v.json()).contains("more than 16 cells (limits.max_cells)"));
    let v = capped(dir.path(), &["validate", "--json", &f], 30);
    assert_eq!(v.code, 0, "{}", v.stdout);
}

/// A message from `from` with one attachment, base64 encoded.
fn mail_with(from: &str, id: &str, name: &str, body: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(body);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: Admin <{from}>\r\nTo: connector@connector.test\r\nSubject: staff list\r\n\
         Message-ID: <{id}>\r\nDate: Tue, 3 Jun 2025 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nPlease apply.\r\n\
         --B\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--B--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

#[test]
fn the_mail_connector_refuses_a_workbook_over_the_cell_limit_within_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("connector.toml"),
        "[mail]\naddress = \"connector@connector.test\"\n\
         [[organisation]]\ncode = \"RXX\"\nadministrators = [\"admin@rxx.nhs.uk\"]\n",
    )
    .unwrap();
    let mut rows = header_row();
    for r in 2..400_000 {
        rows.push_str(&format!(r#"<row r="{r}"><c r="IV{r}"><v>1</v></c></row>"#));
    }
    let book = xlsx(&sheet_xml(&rows), None);
    let inbox = dir.path().join("var/mail/inbox/new");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(
        inbox.join("1.bomb"),
        mail_with("admin@rxx.nhs.uk", "m1@rxx", "staff.xlsx", &book),
    )
    .unwrap();
    let v = capped(
        dir.path(),
        &["--config", "connector.toml", "run", "--once"],
        120,
    );
    assert_eq!(v.code, 0, "{}\n{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("1 rejected"), "{}", v.stdout);
    let replies: Vec<String> = std::fs::read_dir(dir.path().join("var/outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(replies.len(), 1);
    let unfolded = replies[0].replace("=\r\n", "").replace("\r\n", " ");
    assert!(unfolded.contains("limits.max_cells"), "{}", replies[0]);
}

/// Rows without quotes are kept as where they are in the file's text and cut at the
/// delimiter when read: one row of 300,000 delimiters, and 150,000 one-cell rows, each read
/// within the caps and refused at its own line.
#[test]
fn rows_of_delimiters_or_of_one_cell_are_refused_within_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    let wide = format!("{HEAD}\nE1{}\n", ",".repeat(300_000));
    let f = write(dir.path(), "wide.csv", wide.as_bytes());
    let v = validate_json(dir.path(), &f, 60);
    assert_eq!(v.code, 1, "{}", v.stderr);
    let json = v.json();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["line"], 2);
    let message = rows[0]["issues"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("the row has 300001 cells but the header has 4"),
        "{message}"
    );

    let mut many = format!("{HEAD}\n");
    for _ in 0..150_000 {
        many.push_str("x\n");
    }
    let f = write(dir.path(), "many.csv", many.as_bytes());
    let v = validate_json(dir.path(), &f, 60);
    assert_eq!(v.code, 1, "{}", v.stderr);
    let json = v.json();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 150_000);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["line"], i + 2);
        assert_eq!(row["status"], "refused");
    }
    let message = rows[149_999]["issues"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("1 cells but the header has 4"),
        "{message}"
    );
}
