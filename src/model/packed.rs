//! A validated row kept in one allocation for as long as its submission is worked on.
//!
//! In: a [`Person`]. Out: a [`PackedPerson`] holding every field's text end to end, where each
//! ends, which are present, the line and the `NewAccount` flag, in one exactly sized block;
//! [`PackedPerson::person`] gives the [`Person`] back, equal to the one packed. A `Person` is
//! eighteen slots of 24 bytes plus an allocation per value given, about 700 bytes a row; a
//! million rows kept that way cost most of a file's memory. Packed, a row costs its text and
//! about 60 bytes.

use std::fmt;

use super::{Email, ExternalSyncId, Field, OdsCode, Person, Phone, PortalId};

/// Separates the values of a multi-valued field in the packed text. Validation refuses
/// control characters in every cell, so no value contains it.
const SEPARATOR: char = '\u{1f}';

/// Header: line (8 bytes), present fields (4), flags (1), then one end per field.
const LINE: usize = 0;
const PRESENT: usize = 8;
const FLAGS: usize = 12;
const ENDS: usize = 13;
const FIELDS: usize = Field::ALL.len();

/// Flag bits.
const NEW_ACCOUNT: u8 = 1;
/// Ends are four bytes each (the row's text is 64 KiB or more); else two.
const WIDE: u8 = 2;

/// A validated row in one allocation (see the module documentation).
#[derive(Clone, PartialEq, Eq)]
pub struct PackedPerson {
    bytes: Box<[u8]>,
}

impl PackedPerson {
    /// Packs a person; [`PackedPerson::person`] gives an equal one back.
    pub fn pack(p: &Person) -> PackedPerson {
        let mut text = String::new();
        let mut ends = [0usize; FIELDS];
        let mut present = 0u32;
        for field in Field::ALL {
            let given = match field {
                Field::ClinicalRole | Field::ClinicalSpeciality | Field::WorkArea => {
                    multi(p, field).map(|values| {
                        for (i, v) in values.iter().enumerate() {
                            if i > 0 {
                                text.push(SEPARATOR);
                            }
                            text.push_str(v);
                        }
                    })
                }
                _ => single(p, field).map(|v| text.push_str(v)),
            };
            if given.is_some() {
                present |= 1 << field.index();
            }
            ends[field.index()] = text.len();
        }
        let wide = text.len() > usize::from(u16::MAX);
        let width = if wide { 4 } else { 2 };
        let mut bytes = Vec::with_capacity(ENDS + FIELDS * width + text.len());
        bytes.extend_from_slice(&p.line.to_le_bytes());
        bytes.extend_from_slice(&present.to_le_bytes());
        bytes.push(if p.new_account { NEW_ACCOUNT } else { 0 } | if wide { WIDE } else { 0 });
        for end in ends {
            if wide {
                bytes.extend_from_slice(&(end as u32).to_le_bytes());
            } else {
                bytes.extend_from_slice(&(end as u16).to_le_bytes());
            }
        }
        bytes.extend_from_slice(text.as_bytes());
        PackedPerson {
            bytes: bytes.into_boxed_slice(),
        }
    }

    /// The row's line in its file (header = 1); 0 for rows of other sources.
    pub fn line(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.bytes[LINE..LINE + 8]);
        u64::from_le_bytes(b)
    }

    fn flags(&self) -> u8 {
        self.bytes[FLAGS]
    }

    /// Whether the row says it is a new person (`NewAccount` yes).
    pub fn new_account(&self) -> bool {
        self.flags() & NEW_ACCOUNT != 0
    }

    fn width(&self) -> usize {
        if self.flags() & WIDE != 0 { 4 } else { 2 }
    }

    fn end(&self, i: usize) -> usize {
        let at = ENDS + i * self.width();
        if self.width() == 4 {
            let mut b = [0u8; 4];
            b.copy_from_slice(&self.bytes[at..at + 4]);
            u32::from_le_bytes(b) as usize
        } else {
            usize::from(u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]]))
        }
    }

    fn text(&self) -> &str {
        let start = ENDS + FIELDS * self.width();
        // Only `pack` makes the bytes, from a `String`, so they are UTF-8.
        std::str::from_utf8(&self.bytes[start..]).unwrap_or_default()
    }

    fn present(&self, field: Field) -> bool {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.bytes[PRESENT..PRESENT + 4]);
        u32::from_le_bytes(b) & (1 << field.index()) != 0
    }

    /// The text of a field the row gives; a multi-valued field's values are separated by
    /// U+001F (see [`PackedPerson::values`]).
    fn raw(&self, field: Field) -> Option<&str> {
        if !self.present(field) {
            return None;
        }
        let i = field.index();
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        self.text().get(start..self.end(i))
    }

    /// A single-valued field's normalised value, or `None` when the row left it blank.
    pub fn get(&self, field: Field) -> Option<&str> {
        if field.is_multi_valued() {
            return None;
        }
        self.raw(field)
    }

    /// A multi-valued field's values, or `None` when the row left it blank.
    pub fn values(&self, field: Field) -> Option<Vec<String>> {
        if !field.is_multi_valued() {
            return None;
        }
        self.raw(field).map(|text| {
            if text.is_empty() {
                Vec::new()
            } else {
                text.split(SEPARATOR).map(str::to_owned).collect()
            }
        })
    }

    pub fn external_sync_id(&self) -> &str {
        self.raw(Field::ExternalSyncId).unwrap_or_default()
    }

    pub fn organisation(&self) -> &str {
        self.raw(Field::Organisation).unwrap_or_default()
    }

    pub fn id(&self) -> Option<&str> {
        self.raw(Field::Id)
    }

    pub fn email(&self) -> Option<&str> {
        self.raw(Field::Email)
    }

    pub fn first_name(&self) -> &str {
        self.raw(Field::FirstName).unwrap_or_default()
    }

    pub fn last_name(&self) -> &str {
        self.raw(Field::LastName).unwrap_or_default()
    }

    /// The person packed.
    pub fn person(&self) -> Person {
        let s = |f: Field| self.raw(f).map(str::to_owned);
        Person {
            line: self.line(),
            id: self.id().map(PortalId::new_unchecked),
            external_sync_id: ExternalSyncId::new_unchecked(self.external_sync_id()),
            organisation: OdsCode::new_unchecked(self.organisation()),
            organisation_unit: self
                .raw(Field::OrganisationUnit)
                .map(OdsCode::new_unchecked),
            email: self.email().map(Email::new_unchecked),
            title: s(Field::Title),
            first_name: self.first_name().to_owned(),
            last_name: self.last_name().to_owned(),
            display_name: s(Field::DisplayName),
            job_title: s(Field::JobTitle),
            office_phone: self.raw(Field::OfficePhone).map(Phone::new_unchecked),
            mobile_phone: self.raw(Field::MobilePhone).map(Phone::new_unchecked),
            fax: self.raw(Field::Fax).map(Phone::new_unchecked),
            pager: s(Field::Pager),
            notes: s(Field::Notes),
            clinical_role: self.values(Field::ClinicalRole),
            clinical_speciality: self.values(Field::ClinicalSpeciality),
            work_area: self.values(Field::WorkArea),
            new_account: self.new_account(),
        }
    }
}

impl From<&Person> for PackedPerson {
    fn from(p: &Person) -> PackedPerson {
        PackedPerson::pack(p)
    }
}

impl From<Person> for PackedPerson {
    fn from(p: Person) -> PackedPerson {
        PackedPerson::pack(&p)
    }
}

impl fmt::Debug for PackedPerson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.person().fmt(f)
    }
}

fn single(p: &Person, field: Field) -> Option<&str> {
    match field {
        Field::Id => p.id.as_ref().map(PortalId::as_str),
        Field::ExternalSyncId => Some(p.external_sync_id.as_str()),
        Field::Title => p.title.as_deref(),
        Field::FirstName => Some(&p.first_name),
        Field::LastName => Some(&p.last_name),
        Field::DisplayName => p.display_name.as_deref(),
        Field::Email => p.email.as_ref().map(Email::as_str),
        Field::JobTitle => p.job_title.as_deref(),
        Field::Organisation => Some(p.organisation.as_str()),
        Field::OrganisationUnit => p.organisation_unit.as_ref().map(OdsCode::as_str),
        Field::OfficePhone => p.office_phone.as_ref().map(Phone::as_str),
        Field::MobilePhone => p.mobile_phone.as_ref().map(Phone::as_str),
        Field::Fax => p.fax.as_ref().map(Phone::as_str),
        Field::Pager => p.pager.as_deref(),
        Field::Notes => p.notes.as_deref(),
        Field::ClinicalRole | Field::ClinicalSpeciality | Field::WorkArea => None,
    }
}

fn multi(p: &Person, field: Field) -> Option<&[String]> {
    match field {
        Field::ClinicalRole => p.clinical_role.as_deref(),
        Field::ClinicalSpeciality => p.clinical_speciality.as_deref(),
        Field::WorkArea => p.work_area.as_deref(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[^\u{1f}]{0,20}"
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        prop::option::of(text())
    }

    fn opt_list() -> impl Strategy<Value = Option<Vec<String>>> {
        prop::option::of(prop::collection::vec("[^\u{1f}]{1,12}", 0..4))
    }

    prop_compose! {
        fn person()(
            line in any::<u64>(),
            keys in (opt_text(), text(), text(), opt_text(), opt_text()),
            names in (opt_text(), text(), text(), opt_text(), opt_text()),
            phones in (opt_text(), opt_text(), opt_text(), opt_text(), opt_text()),
            lists in (opt_list(), opt_list(), opt_list()),
            new_account in any::<bool>(),
        ) -> Person {
            Person {
                line,
                id: keys.0.map(PortalId::new_unchecked),
                external_sync_id: ExternalSyncId::new_unchecked(keys.1),
                organisation: OdsCode::new_unchecked(keys.2),
                organisation_unit: keys.3.map(OdsCode::new_unchecked),
                email: keys.4.map(Email::new_unchecked),
                title: names.0,
                first_name: names.1,
                last_name: names.2,
                display_name: names.3,
                job_title: names.4,
                office_phone: phones.0.map(Phone::new_unchecked),
                mobile_phone: phones.1.map(Phone::new_unchecked),
                fax: phones.2.map(Phone::new_unchecked),
                pager: phones.3,
                notes: phones.4,
                clinical_role: lists.0,
                clinical_speciality: lists.1,
                work_area: lists.2,
                new_account,
            }
        }
    }

    proptest! {
        #[test]
        fn a_packed_person_unpacks_equal(p in person()) {
            let packed = PackedPerson::pack(&p);
            prop_assert_eq!(packed.person(), p.clone());
            prop_assert_eq!(packed.line(), p.line);
            prop_assert_eq!(packed.external_sync_id(), p.external_sync_id.as_str());
            prop_assert_eq!(packed.email(), p.email.as_ref().map(Email::as_str));
            for field in Field::ALL {
                if !field.is_multi_valued() {
                    prop_assert_eq!(packed.get(field).map(str::to_owned), p.value(field));
                }
            }
        }
    }

    fn base() -> Person {
        Person {
            line: 2,
            id: None,
            external_sync_id: ExternalSyncId::new_unchecked("E1234567"),
            organisation: OdsCode::new_unchecked("RXX"),
            organisation_unit: None,
            email: None,
            title: None,
            first_name: "Anne".into(),
            last_name: "Lee".into(),
            display_name: None,
            job_title: None,
            office_phone: None,
            mobile_phone: None,
            fax: None,
            pager: None,
            notes: None,
            clinical_role: None,
            clinical_speciality: None,
            work_area: None,
            new_account: false,
        }
    }

    #[test]
    fn an_empty_value_is_not_a_blank_one() {
        let mut p = base();
        p.title = Some(String::new());
        p.work_area = Some(Vec::new());
        let back = PackedPerson::pack(&p).person();
        assert_eq!(back.title, Some(String::new()));
        assert_eq!(back.work_area, Some(Vec::new()));
        assert_eq!(back.notes, None);
    }

    #[test]
    fn a_row_of_64_kib_or_more_keeps_every_field() {
        let notes = "n".repeat(70_000);
        let p = Person {
            notes: Some(notes.clone()),
            work_area: Some(vec!["Ward 1".into(), "Ward 2".into()]),
            ..base()
        };
        let packed = PackedPerson::pack(&p);
        assert_eq!(packed.width(), 4);
        assert_eq!(packed.person(), p);
        assert_eq!(packed.get(Field::Notes), Some(notes.as_str()));
    }

    #[test]
    fn a_typical_row_costs_its_text_and_a_small_header() {
        let p = Person {
            email: Some(Email::new_unchecked("anne.lee@nhs.net")),
            office_phone: Some(Phone::new_unchecked("+441134960000")),
            ..base()
        };
        let packed = PackedPerson::pack(&p);
        let text = 8 + 3 + 4 + 3 + 16 + 13;
        assert_eq!(packed.bytes.len(), ENDS + FIELDS * 2 + text);
        assert!(packed.bytes.len() < 100);
    }
}
