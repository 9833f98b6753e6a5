//! Realistic generated staff lists and measuring helpers for the `bench` verbs.
//!
//! In: a row count and a seed. Out: the bytes of a new-format CSV such as an NHS trust's
//! payroll export would give (names with accents and apostrophes, UK phones in mixed shapes,
//! multi-valued roles, a few bad rows), always the same for the same seed.

use std::fmt::Write as _;

/// A small deterministic generator (xorshift64*): benchmarks must be repeatable.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Anne", "Zoë", "Mohammed", "Siân", "Oliver", "Amelia", "Raj", "Chloë", "José", "Łukasz",
    "Grace", "Noah", "Aoife", "Priya", "Tomasz", "Fatima", "Jack", "Isla", "Dafydd", "Mei",
];
const LAST: &[&str] = &[
    "Smith",
    "O'Brien",
    "Jones",
    "Patel",
    "Smith-Jones",
    "Nowak",
    "Williams",
    "Ng",
    "Brontë",
    "Taylor",
    "Davies",
    "Khan",
    "MacDonald",
    "Evans",
    "Wright",
    "Ó Súilleabháin",
    "Begum",
];
const TITLES: &[&str] = &["Mr", "Mrs", "Ms", "Miss", "Dr", "Mx", "Prof", ""];
const JOBS: &[&str] = &[
    "Staff Nurse",
    "Consultant Cardiologist",
    "Ward Clerk",
    "Physiotherapist",
    "Porter",
    "Healthcare Assistant",
    "Pharmacist",
    "Radiographer",
    "Midwife",
    "Junior Doctor",
];
const ROLES: &[&str] = &[
    "Doctor",
    "Nurse",
    "Midwife",
    "Allied Health Professional",
    "Pharmacist",
];
const AREAS: &[&str] = &[
    "Ward 1",
    "Ward 2",
    "Cardiology",
    "Outpatients",
    "Theatres",
    "A&E",
];

/// The header of generated files.
pub const HEADER: &str = "ExternalSyncID,Title,FirstName,LastName,Email,JobTitle,Organisation,\
OfficePhone,MobilePhone,ClinicalRole,WorkArea,Notes";

/// Lower-case letters for a number (names hold no digits): 0 → `a`, 26 → `ab`.
fn letters(mut n: u64) -> String {
    let mut s = String::new();
    loop {
        s.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            return s;
        }
    }
}

/// One generated row (without line break); about one row in 200 has a problem.
pub fn row(rng: &mut Rng, i: u64, out: &mut String) {
    let first = rng.pick(FIRST);
    // A surname of the list made the row's own by letters from its number, so a file's
    // people do not share names far more than a real organisation's (20 first names and 17
    // surnames would give 340 people in all).
    let last = format!("{}{}", rng.pick(LAST), letters(i));
    let last = last.as_str();
    let ascii = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_alphabetic())
            .collect::<String>()
            .to_lowercase()
    };
    let email = if rng.below(3) == 0 {
        String::new()
    } else if rng.below(200) == 0 {
        format!("{}.{}{i}@gmail.com", ascii(first), ascii(last))
    } else {
        format!("{}.{}{i}@nhs.net", ascii(first), ascii(last))
    };
    let office = match rng.below(4) {
        0 => String::new(),
        1 => format!("0113 496 {:04}", rng.below(10_000)),
        2 => format!("+44 (0)20 7946 {:04}", rng.below(10_000)),
        _ => format!("0161{:07}", rng.below(10_000_000)),
    };
    let mobile = match rng.below(3) {
        0 => String::new(),
        1 => format!("07911 0{:05}", rng.below(100_000)),
        _ => format!("+447400{:06}", rng.below(1_000_000)),
    };
    let roles = if rng.below(2) == 0 {
        format!("{};{}", rng.pick(ROLES), rng.pick(ROLES))
    } else {
        rng.pick(ROLES).to_owned()
    };
    let notes = if rng.below(10) == 0 {
        "\"Part time, Mon–Wed\""
    } else {
        ""
    };
    let _ = write!(
        out,
        "E{i:08},{},{first},{last},{email},{},RXX,{office},{mobile},{roles},{},{notes}",
        rng.pick(TITLES),
        rng.pick(JOBS),
        rng.pick(AREAS),
    );
}

/// A whole file of `rows` data rows (UTF-8 with BOM, CRLF, as Excel saves it).
pub fn submission(rows: u64, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(rows as usize * 180 + 200);
    out.push('\u{feff}');
    out.push_str(HEADER);
    out.push_str("\r\n");
    for i in 0..rows {
        row(&mut rng, i, &mut out);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// The process's peak resident memory in bytes (VmHWM), where the system tells it.
pub fn peak_memory() -> Option<u64> {
    vm_hwm("/proc/self/status")
}

/// Another process's peak resident memory in bytes (VmHWM), where the system tells it.
pub fn peak_memory_of(pid: u32) -> Option<u64> {
    vm_hwm(&format!("/proc/{pid}/status"))
}

fn vm_hwm(path: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{formats, validate};

    #[test]
    fn generated_files_are_repeatable_and_mostly_valid() {
        let a = submission(2000, 7);
        assert_eq!(a, submission(2000, 7));
        let sub = formats::read(&a, &formats::Limits::default()).expect("readable");
        assert_eq!(sub.rows.len(), 2000);
        let results = validate::validate(&sub, &validate::Rules::default());
        let counts = validate::counts(&results);
        assert!(counts.refused > 0 && counts.refused < 40, "{counts:?}");
    }

    /// No false alarm: a generated file against the sample directory (every row a create)
    /// and a second file with the same keys against the accounts the first made (every row
    /// joins, with other names) raise no swapped columns, and likely duplicates only for the
    /// generator's repeated names among one file's creates.
    #[test]
    fn generated_files_raise_neither_a_likely_duplicate_nor_swapped_columns() {
        use crate::model::{DirectoryIndex, OrganisationInfo, PortalId, Status};
        use crate::reconcile::{self, swapped::Tally};
        let rows: u64 = std::env::var("BENCH_FALSE_ALARM_ROWS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(20_000);
        let sample = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/samples/directory.csv"
        ))
        .expect("sample directory");
        let sample = crate::directory::portable::read(&sample)
            .expect("export")
            .accounts;
        let validated = |seed| {
            let limits = formats::Limits {
                max_cells: u64::MAX,
                ..formats::Limits::default()
            };
            let sub = formats::read(&submission(rows, seed), &limits).expect("readable");
            validate::validate(&sub, &validate::Rules::default())
        };
        let config = crate::config::Config::default();
        let policy =
            crate::deployment::policy(&config, &crate::model::OdsCode::new_unchecked("RXX"));
        let flags = |results: &[validate::RowResult], index: &DirectoryIndex| {
            let mut tally = Tally::default();
            tally.add(results, index, &policy);
            let plan = reconcile::reconcile("r", results, index, &policy);
            let duplicates = plan
                .rows
                .iter()
                .filter(|r| r.message.starts_with(reconcile::LIKELY_DUPLICATE))
                .count();
            (duplicates, tally.verdict(), plan.counts())
        };
        let index = |accounts: Vec<crate::model::Account>| {
            let mut index = DirectoryIndex::new(accounts);
            index.add_organisation("RXX", OrganisationInfo::default());
            index
        };
        let first = validated(7);
        let (duplicates, swapped, counts) = flags(&first, &index(sample.clone()));
        // The generator draws names from short lists, so its files repeat names far more
        // than a real organisation's: each repeat after the first is a second row of one
        // file creating the same name, which is flagged (and only those; no account of the
        // sample directory is anyone's namesake).
        let mut seen = std::collections::HashSet::new();
        let repeats = first
            .iter()
            .filter_map(|r| match &r.outcome {
                validate::RowOutcome::Valid(p) => Some(p),
                validate::RowOutcome::Refused(_) => None,
            })
            .filter(|p| {
                !seen.insert(crate::model::naming::name_key(
                    p.first_name(),
                    p.last_name(),
                ))
            })
            .count();
        assert_eq!((duplicates, swapped), (repeats, None));
        assert!(
            counts.created + duplicates as u64 > rows * 9 / 10,
            "{counts:?}"
        );
        // The first file's people, as accounts, beside the sample's.
        let mut accounts = sample;
        for (i, r) in first.iter().enumerate() {
            if let validate::RowOutcome::Valid(p) = &r.outcome {
                let id = PortalId::new_unchecked(format!("G{i}"));
                accounts.push(crate::model::Account::from_person(
                    id,
                    Status::Active,
                    &p.person(),
                ));
            }
        }
        let made: std::collections::HashSet<String> = first
            .iter()
            .filter_map(|r| match &r.outcome {
                validate::RowOutcome::Valid(p) => Some(p.external_sync_id().to_owned()),
                validate::RowOutcome::Refused(_) => None,
            })
            .collect();
        let second = validated(42);
        // The few rows whose key the first file did not create (it refused them) are creates
        // again, and so flagged only where they repeat a name among themselves.
        let mut seen = std::collections::HashSet::new();
        let second_repeats = second
            .iter()
            .filter_map(|r| match &r.outcome {
                validate::RowOutcome::Valid(p) if !made.contains(p.external_sync_id()) => Some(p),
                _ => None,
            })
            .filter(|p| {
                !seen.insert(crate::model::naming::name_key(
                    p.first_name(),
                    p.last_name(),
                ))
            })
            .count();
        let (second_duplicates, swapped, counts) = flags(&second, &index(accounts));
        assert_eq!((second_duplicates, swapped), (second_repeats, None));
        assert!(counts.updated > rows * 9 / 10, "{counts:?}");
        println!(
            "{rows} rows: {duplicates} then {second_duplicates} likely duplicates, each a \
             generated name repeated among one file's creates; no swapped columns: {counts:?}"
        );
    }
}
