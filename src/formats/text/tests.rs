use super::*;

const HEAD: &str = "ExternalSyncID,FirstName,LastName,Organisation";

fn read_str(s: &str) -> Submission {
    read(s.as_bytes(), &Limits::default()).expect("readable")
}

fn decoded(bytes: &[u8]) -> (String, TextEncoding) {
    let d = decode(bytes).expect("decodable");
    (d.text.into_owned(), d.encoding)
}

#[test]
fn encodings_are_detected() {
    assert_eq!(decoded(b"a,b").1, TextEncoding::Utf8);
    assert_eq!(decoded(b"\xEF\xBB\xBFa").1, TextEncoding::Utf8Bom);
    let (t, e) = decoded(b"Ren\xE9e");
    assert_eq!((t.as_str(), e), ("Renée", TextEncoding::Windows1252));
    let (t, e) = decoded(b"\xFF\xFEa\0\xE9\0");
    assert_eq!((t.as_str(), e), ("aé", TextEncoding::Utf16Le));
    let (t, e) = decoded(b"\xFE\xFF\0a\0\xE9");
    assert_eq!((t.as_str(), e), ("aé", TextEncoding::Utf16Be));
}

#[test]
fn a_few_bad_bytes_do_not_make_utf8_windows_1252() {
    // Valid UTF-8 names, and one line with a stray byte: UTF-8, that line refused.
    let mut file = format!("{HEAD}\n").into_bytes();
    for i in 0..20 {
        file.extend_from_slice(format!("E{i},Úša,Leź,RXX\n").as_bytes());
    }
    let bad_at = file.len() + "E99,Bo".len();
    file.extend_from_slice(b"E99,Bo\xE9,Ng,RXX\n");
    let sub = read(&file, &Limits::default()).expect("readable");
    assert!(matches!(
        sub.container,
        Container::Text {
            encoding: TextEncoding::Utf8,
            ..
        }
    ));
    assert_eq!(&sub.rows[0].cells[1], "Úša");
    assert!(sub.rows[..20].iter().all(|r| r.issues.is_empty()));
    let last = &sub.rows[20];
    assert_eq!(last.line, 22);
    assert!(
        last.issues[0]
            .message
            .contains(&format!("byte offset {bad_at}")),
        "{:?}",
        last.issues
    );
    // Excel's Windows "CSV": accents as single bytes, no UTF-8 sequence at all.
    let sub = read(
        format!("{HEAD}\nE1,Zo\u{eb},Bront\u{eb},RXX\n")
            .replace('\u{eb}', "\u{1}")
            .as_bytes()
            .iter()
            .map(|&b| if b == 1 { 0xEB } else { b })
            .collect::<Vec<u8>>()
            .as_slice(),
        &Limits::default(),
    )
    .expect("readable");
    assert_eq!(sub.container.encoding_label(), "windows-1252");
    assert_eq!(&sub.rows[0].cells[1], "Zoë");
    assert!(sub.rows[0].issues.is_empty());
}

#[test]
fn delimiter_comes_from_the_header_line() {
    let sub = read_str("ExternalSyncID;FirstName;LastName;Organisation\n1;A;B;RXX\n");
    assert!(matches!(
        sub.container,
        Container::Text {
            delimiter: b';',
            ..
        }
    ));
    assert_eq!(sub.value_separator(), '|');
    assert_eq!(&sub.rows[0].cells[1], "A");
}

#[test]
fn cr_lf_and_crlf_files_are_numbered_alike() {
    // A blank line, and a quoted cell holding a line break (the file's own).
    for end in ["\n", "\r\n", "\r"] {
        let rows = [
            String::new(),
            "1,A,B,RXX".to_owned(),
            String::new(),
            format!("2,\"C{end}c\",D,RXX"),
            "3,E,F,RXX".to_owned(),
        ];
        let mut text = format!("{HEAD}{end}");
        for r in rows {
            text.push_str(&r);
            text.push_str(end);
        }
        let sub = read_str(&text);
        let lines: Vec<u64> = sub.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 5, 7], "{end:?}");
        assert_eq!(&sub.rows[2].cells[1], "E");
    }
}

#[test]
fn line_numbers_are_the_files_own() {
    let sub = read_str(&format!(
        "\n{HEAD}\r\n1,A,B,RXX\r\n\r\n2,C,D,RXX\r\n,,,\r\n3,E,F,RXX"
    ));
    let lines: Vec<u64> = sub.rows.iter().map(|r| r.line).collect();
    assert_eq!(lines, [3, 5, 7]);
}

#[test]
fn connector_line_is_read_and_skipped() {
    let sub = read_str(
        "Connector,RXX Connector\nOrganisation Code,Local Unique Identifier,First Name,Last Name\nRXX,1,A,B\n",
    );
    assert_eq!(sub.connector.as_deref(), Some("RXX Connector"));
    assert_eq!(sub.rows[0].line, 3);
}

#[test]
fn unclosed_quote_is_one_lines_issue_and_later_rows_survive() {
    let sub = read_str(&format!(
        "{HEAD},Notes\n1,A,B,RXX,\"never closed\n2,C,D,RXX,fine\n3,E,F,RXX,\"ok\nnote\"\n"
    ));
    assert_eq!(sub.rows.len(), 3, "{:?}", sub.rows);
    assert_eq!(sub.rows[0].line, 2);
    assert!(sub.rows[0].issues[0].message.contains("never closed"));
    assert_eq!(sub.rows[1].line, 3);
    assert_eq!(&sub.rows[1].cells[1], "C");
    assert!(sub.rows[1].issues.is_empty());
    // A legitimate quoted line break stays one cell.
    assert_eq!(sub.rows[2].line, 4);
    assert_eq!(&sub.rows[2].cells[4], "ok\nnote");
    assert!(sub.rows[2].issues.is_empty());
}

#[test]
fn a_large_file_read_in_parts_matches_one_piece() {
    let mut text = format!("\r\n{HEAD},Notes\r\n");
    for i in 0..200_000 {
        if i % 1000 == 0 {
            text.push_str("\r\n,,,,\r\n");
        }
        text.push_str(&format!("E{i},Ann,\"Lee, {i}\",RXX,x\r\n"));
    }
    assert!(text.len() > PARALLEL_FROM);
    let parts = read_str(&text);
    // The same file with one quoted line break somewhere is read in one piece.
    let single = read_str(&text.replacen("Lee, 5\"", "Lee,\n5\"", 1));
    assert_eq!(parts.rows.len(), 200_000);
    assert_eq!(parts.rows.len(), single.rows.len());
    // Row E5 (line 10) holds the line break in the second file: later lines move by one.
    for (a, b) in parts.rows.iter().zip(&single.rows) {
        let shift = u64::from(a.line > 10);
        assert_eq!(a.line + shift, b.line);
        if a.line != 10 {
            assert_eq!(a.cells, b.cells);
        }
    }
    // Line numbers count the blank lines and the leading blank line.
    assert_eq!(parts.rows[0].line, 5);
    assert_eq!(parts.rows[1000].line, 1000 + 5 + 2);
}

#[test]
fn wrong_cell_count_is_a_row_issue() {
    let sub = read_str(&format!("{HEAD}\n1,A,B\n"));
    assert!(
        sub.rows[0].issues[0]
            .message
            .contains("3 cells but the header has 4")
    );
}

/// Every record's cells, however they are held, are the csv reader's record.
fn assert_cells_are_the_records(text: &str, delimiter: u8) -> usize {
    let shared = Arc::new(text.to_owned());
    let mut records = Records::new(&shared, delimiter, 0, text.len(), 1);
    let mut held_shared = 0;
    while let Some(item) = records.next() {
        if let Ok((_, cells)) = item {
            let expected = Cells::from(&records.record);
            assert_eq!(cells.len(), records.record.len(), "{text:?}");
            assert_eq!(cells, expected, "{text:?}");
            assert_eq!(
                cells.iter().rev().collect::<Vec<_>>(),
                records.record.iter().rev().collect::<Vec<_>>()
            );
            for i in 0..=cells.len() {
                assert_eq!(cells.get(i), records.record.get(i), "{text:?} cell {i}");
            }
            held_shared += usize::from(cells.is_shared());
        }
    }
    held_shared
}

#[test]
fn rows_without_quotes_point_into_the_text_and_read_as_the_csv_reader_reads_them() {
    let text = "a,b,,c\r\n\r\n\"q,1\",x\n é ,\t,\nlast,";
    assert_eq!(assert_cells_are_the_records(text, b','), 3);
    assert_eq!(assert_cells_are_the_records("a;b\n1;\"2\"\n;\n", b';'), 2);
    let sub = read_str(&format!(
        "{HEAD}\nE1,Zoë,\"Smith, Jr\",RXX\nE2,Ann,Lee,RXX\n"
    ));
    assert_eq!(sub.rows[0].cells.get(2), Some("Smith, Jr"));
    assert!(!sub.rows[0].cells.is_shared());
    assert!(sub.rows[1].cells.is_shared());
    assert_eq!(
        sub.rows[1].cells.iter().collect::<Vec<_>>(),
        ["E2", "Ann", "Lee", "RXX"]
    );
}

proptest::proptest! {
    #[test]
    fn any_text_reads_as_the_csv_reader_reads_it(
        text in "[ab,;\"\r\n \té]{0,80}",
        semicolon in proptest::bool::ANY,
    ) {
        assert_cells_are_the_records(&text, if semicolon { b';' } else { b',' });
    }
}

/// What `read` and `read_owned` make of the same bytes, as text.
fn both_reads(bytes: &[u8]) -> (String, String) {
    let show = |r: Result<Submission, ReadError>| format!("{r:?}");
    (
        show(read(bytes, &Limits::default())),
        show(read_owned(bytes.to_vec(), &Limits::default())),
    )
}

#[test]
fn bytes_handed_over_read_as_bytes_lent() {
    let body = format!("{HEAD}\r\nE1,Zoë,\"Smith, Jr\",RXX\r\nE2,Ann,Lee,RXX\r\n");
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(body.as_bytes());
    let cp1252 = format!("{HEAD}\nE1,Ren\u{e9}e,Lee,RXX\n").replace('\u{e9}', "\u{1}");
    let mut cp1252 = cp1252.into_bytes();
    let at = cp1252.iter().position(|&b| b == 1).unwrap();
    cp1252[at] = 0xE9;
    let mac = format!("{HEAD}\rE1,Ann,Lee,RXX\r");
    for bytes in [
        body.as_bytes(),
        &bom,
        &cp1252,
        mac.as_bytes(),
        b"",
        b"\xFF\xFEa\0",
    ] {
        let (lent, owned) = both_reads(bytes);
        assert_eq!(lent, owned, "{bytes:?}");
    }
    let sub = read_owned(bom, &Limits::default()).unwrap();
    assert!(matches!(
        sub.container,
        Container::Text {
            encoding: TextEncoding::Utf8Bom,
            ..
        }
    ));
    assert_eq!(sub.rows[1].cells.get(1), Some("Ann"));
}

proptest::proptest! {
    #[test]
    fn any_bytes_read_alike_lent_or_handed_over(
        body in proptest::collection::vec(proptest::sample::select(
            b"ab,;\"\r\n \t\xC3\xA9\xE9\xEF\xBB\xBF".to_vec()), 0..120),
    ) {
        let mut bytes = format!("{HEAD}\n").into_bytes();
        bytes.extend_from_slice(&body);
        let (lent, owned) = both_reads(&bytes);
        proptest::prop_assert_eq!(lent, owned);
    }
}
