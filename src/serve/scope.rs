//! Which organisations a `serve` credential may act for.
//!
//! In: the ODS codes configured for the fixed bearer token or an OAuth2 client (`["*"]`: all).
//! Out: a [`Scope`] the handlers ask before every read and write, so a token of one
//! organisation can neither see nor change another's people.

use std::collections::BTreeSet;

/// The organisations a request may read and change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every organisation (the portal operator).
    All,
    /// These ODS codes, upper-cased.
    Only(BTreeSet<String>),
}

impl Scope {
    /// The scope of configured codes: `["*"]` is [`Scope::All`]; anything else the codes
    /// themselves (none: nothing at all, which the configuration check refuses).
    pub fn from_codes<S: AsRef<str>>(codes: &[S]) -> Scope {
        if codes.iter().any(|c| c.as_ref().trim() == "*") {
            return Scope::All;
        }
        Scope::Only(
            codes
                .iter()
                .map(|c| c.as_ref().trim().to_ascii_uppercase())
                .filter(|c| !c.is_empty())
                .collect(),
        )
    }

    /// Whether the scope covers `organisation` (ODS codes compare without regard to case).
    pub fn allows(&self, organisation: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(codes) => codes.contains(&organisation.trim().to_ascii_uppercase()),
        }
    }

    /// The codes, or `None` for all organisations.
    pub fn codes(&self) -> Option<&BTreeSet<String>> {
        match self {
            Scope::All => None,
            Scope::Only(codes) => Some(codes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_means_all_and_codes_compare_without_case() {
        assert_eq!(Scope::from_codes(&["*"]), Scope::All);
        let s = Scope::from_codes(&["rxx", " RYY "]);
        assert!(s.allows("RXX") && s.allows("ryy"));
        assert!(!s.allows("RZZ"));
        assert!(!Scope::from_codes::<&str>(&[]).allows("RXX"));
    }
}
