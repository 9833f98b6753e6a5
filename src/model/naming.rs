//! Generated names: primary addresses and display names of new or renamed accounts.
//!
//! In: first name, last name, organisation, the service domain, and which addresses are
//! taken. Out: `firstname.lastname@domain` folded to ASCII and lower-cased, with a number from
//! 2 upwards on a clash (`anne.lee2@nhs.net`); display names as `Lee, Anne (RXX)`. Pure.

/// The local-part form of one name: ASCII, lower case, letters and digits, words joined by `-`.
fn fold(name: &str) -> String {
    let ascii = deunicode::deunicode(name).to_lowercase();
    let mut out = String::with_capacity(ascii.len());
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if (c == ' ' || c == '-') && !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "x".to_owned() } else { out }
}

/// One name as a person is recognised by when looking for their account: ASCII
/// (deunicode), lower case, and nothing but letters and digits, so `Siobhán`, `siobhan` and
/// `SIOBHAN` are one name, and so are `O'Neill`, `O Neill` and `oneill`.
fn fold_key(name: &str) -> String {
    deunicode::deunicode(name)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The key of a person's first and last name, each folded as [`fold_key`] says and joined
/// by `|` (so `Ann Elee` is not `Anne Lee`): what an account of the same person is looked
/// up by.
pub fn name_key(first: &str, last: &str) -> String {
    format!("{}|{}", fold_key(first), fold_key(last))
}

/// The address every numbered variant is built from: `anne.lee@nhs.net`.
pub fn stem(first: &str, last: &str, domain: &str) -> String {
    format!(
        "{}.{}@{}",
        fold(first),
        fold(last),
        domain.to_ascii_lowercase()
    )
}

/// The `n`th candidate of a stem: n = 1 is the stem itself, then `anne.lee2@…`.
pub fn numbered(stem: &str, n: u32) -> String {
    if n <= 1 {
        return stem.to_owned();
    }
    match stem.split_once('@') {
        Some((local, domain)) => format!("{local}{n}@{domain}"),
        None => format!("{stem}{n}"),
    }
}

/// The stem a generated address was built from (trailing digits of the local part removed).
pub fn stem_of(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => format!(
            "{}@{}",
            local.trim_end_matches(|c: char| c.is_ascii_digit()),
            domain
        ),
        None => address.to_owned(),
    }
}

/// The first free address for a person.
pub fn free_address(stem: &str, is_taken: impl Fn(&str) -> bool) -> String {
    (1..)
        .map(|n| numbered(stem, n))
        .find(|a| !is_taken(a))
        .unwrap_or_else(|| stem.to_owned())
}

/// The first free numbered address of each stem, for a plan or a batch that gives out many
/// addresses of a few stems: the numbers of a stem are walked once in all, not once per
/// address given out, so a name with thousands of namesakes costs no more per new account
/// than a name of its own. Valid while the addresses `is_taken` says are taken only grow
/// (a plan's index and the addresses it has given out), which is how a plan and a batch
/// use it; an address given out is taken from then on.
#[derive(Debug, Clone, Default)]
pub struct Numbering {
    /// Stem → the lowest number not known to be taken.
    lowest: std::collections::HashMap<String, u32>,
}

impl Numbering {
    /// The first free address of `stem` ([`free_address`], from where the last call for the
    /// stem stopped).
    pub fn free(&mut self, stem: &str, is_taken: impl Fn(&str) -> bool) -> String {
        let n = match self.lowest.get_mut(stem) {
            Some(n) => n,
            None => self.lowest.entry(stem.to_owned()).or_insert(1),
        };
        loop {
            let address = numbered(stem, *n);
            if !is_taken(&address) || *n == u32::MAX {
                return address;
            }
            *n += 1;
        }
    }
}

/// The generated display name: `Lee, Anne (RXX)`.
pub fn display_name(first: &str, last: &str, organisation: &str) -> String {
    format!("{last}, {first} ({organisation})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_fold_to_ascii_and_number_on_clash() {
        let cases = [
            ("Anne", "Lee", "anne.lee@nhs.net"),
            ("Zoë", "Brontë", "zoe.bronte@nhs.net"),
            ("Siobhán", "O'Neill", "siobhan.oneill@nhs.net"),
            ("Mary Jane", "Smith-Jones", "mary-jane.smith-jones@nhs.net"),
            ("Łukasz", "Żółw", "lukasz.zolw@nhs.net"),
        ];
        for (first, last, want) in cases {
            assert_eq!(stem(first, last, "NHS.net"), want);
        }
        let taken = ["anne.lee@nhs.net", "anne.lee2@nhs.net"];
        assert_eq!(
            free_address("anne.lee@nhs.net", |a| taken.contains(&a)),
            "anne.lee3@nhs.net"
        );
        assert_eq!(stem_of("anne.lee12@nhs.net"), "anne.lee@nhs.net");
        assert_eq!(display_name("Anne", "Lee", "RXX"), "Lee, Anne (RXX)");
    }

    #[test]
    fn numbering_gives_the_same_addresses_as_walking_from_one() {
        // Gaps in what is taken are filled first, then numbers past the last one.
        let mut taken: std::collections::HashSet<String> = [
            "anne.lee@nhs.net",
            "anne.lee2@nhs.net",
            "anne.lee4@nhs.net",
            "anne.lee5@nhs.net",
            "bo.li@nhs.net",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let mut numbering = Numbering::default();
        let mut given = Vec::new();
        for stem in [
            "anne.lee@nhs.net",
            "bo.li@nhs.net",
            "anne.lee@nhs.net",
            "anne.lee@nhs.net",
            "cy.wu@nhs.net",
        ] {
            let walked = free_address(stem, |a| taken.contains(a));
            let address = numbering.free(stem, |a| taken.contains(a));
            assert_eq!(address, walked);
            taken.insert(address.clone());
            given.push(address);
        }
        assert_eq!(
            given,
            [
                "anne.lee3@nhs.net",
                "bo.li2@nhs.net",
                "anne.lee6@nhs.net",
                "anne.lee7@nhs.net",
                "cy.wu@nhs.net",
            ]
        );
        // An address not taken after all is given again.
        assert_eq!(
            numbering.free("cy.wu@nhs.net", |a| a == "x"),
            "cy.wu@nhs.net"
        );
    }

    #[test]
    fn name_keys_fold_case_accents_and_punctuation() {
        for (first, last, want) in [
            ("Siobhán", "O'Neill", "siobhan|oneill"),
            ("siobhan", "oneill", "siobhan|oneill"),
            ("SIOBHAN", "O NEILL", "siobhan|oneill"),
            ("Mary-Jane", "Smith Jones", "maryjane|smithjones"),
            ("Zoë", "Brontë", "zoe|bronte"),
            ("Ann", "Elee", "ann|elee"),
            ("Anne", "Lee", "anne|lee"),
        ] {
            assert_eq!(name_key(first, last), want, "{first} {last}");
        }
    }
}
