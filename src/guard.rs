//! The mass-change guard: whether a plan changes too much of an organisation to run unseen.
//!
//! In: a [`Plan`], the organisation's account count and its thresholds. Out: a [`Verdict`]
//! (pass, or held with every reason). A measure holds a run only when it is above the floor
//! and above either its count or its share of the organisation's accounts; a field measure
//! (the accounts on which one field's value is replaced or cleared) holds a run above the
//! floor and above its share, tighter for the identity-bearing fields. Pure.

use serde::Deserialize;

use crate::model::Field;
use crate::plan::{Action, Plan};

/// Thresholds of the mass-change guard. A run is held when, for any measure, the number of
/// accounts concerned is above `floor` and above either the count or the share of the
/// organisation's accounts.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// A run touching this many accounts or fewer (per measure) is never held.
    pub floor: u64,
    /// Most accounts one run may update before it is held.
    pub max_updated: u64,
    /// Largest share (0–1) of the organisation's accounts one run may update.
    pub max_updated_share: f64,
    /// Most accounts whose first or last name one run may change.
    pub max_renamed: u64,
    /// Largest share (0–1) of the organisation's accounts one run may rename.
    pub max_renamed_share: f64,
    /// Most accounts one run may create.
    pub max_created: u64,
    /// Largest share (0–1) of the organisation's existing accounts one run may create.
    pub max_created_share: f64,
    /// Largest share (0–1) of the organisation's accounts on which one run may replace or
    /// clear the value of any one field (filling a blank field is not counted).
    pub max_field_share: f64,
    /// The same for the identity-bearing fields ([`IDENTITY_FIELDS`]: names, display name,
    /// e-mail), which people and other systems recognise an account by.
    pub max_identity_field_share: f64,
    /// Largest held run (accounts it would create or update) an administrator of the
    /// organisation may approve by replying `CONFIRM <code>` to the held notice; unset, only
    /// an operator approves (`approve RUN`). Administrators may always drop a held run with
    /// `CANCEL <code>`.
    pub admin_confirm_max: Option<u64>,
    /// A held run changing more accounts than this needs the `CONFIRM` of two different
    /// administrators of the organisation (within `admin_confirm_max`); unset, one is enough.
    pub admin_confirm_two_person_above: Option<u64>,
}

/// The fields people and other systems recognise an account by: a mistake in one of them
/// on many accounts renames people or moves their mail, so their field measure is tighter.
pub const IDENTITY_FIELDS: [Field; 4] = [
    Field::FirstName,
    Field::LastName,
    Field::DisplayName,
    Field::Email,
];

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            floor: 50,
            max_updated: 5000,
            max_updated_share: 0.2,
            max_renamed: 500,
            max_renamed_share: 0.05,
            max_created: 5000,
            max_created_share: 0.2,
            max_field_share: 0.1,
            max_identity_field_share: 0.05,
            admin_confirm_max: None,
            admin_confirm_two_person_above: None,
        }
    }
}

/// Per-organisation changes to the guard; unset values fall back to `[guard]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardOverride {
    /// See `[guard] floor`.
    pub floor: Option<u64>,
    /// See `[guard] max_updated`.
    pub max_updated: Option<u64>,
    /// See `[guard] max_updated_share`.
    pub max_updated_share: Option<f64>,
    /// See `[guard] max_renamed`.
    pub max_renamed: Option<u64>,
    /// See `[guard] max_renamed_share`.
    pub max_renamed_share: Option<f64>,
    /// See `[guard] max_created`.
    pub max_created: Option<u64>,
    /// See `[guard] max_created_share`.
    pub max_created_share: Option<f64>,
    /// See `[guard] max_field_share`.
    pub max_field_share: Option<f64>,
    /// See `[guard] max_identity_field_share`.
    pub max_identity_field_share: Option<f64>,
    /// See `[guard] admin_confirm_max`.
    pub admin_confirm_max: Option<u64>,
    /// See `[guard] admin_confirm_two_person_above`.
    pub admin_confirm_two_person_above: Option<u64>,
}

impl GuardConfig {
    /// These thresholds with an organisation's overrides applied.
    pub fn with(self, o: &GuardOverride) -> GuardConfig {
        GuardConfig {
            floor: o.floor.unwrap_or(self.floor),
            max_updated: o.max_updated.unwrap_or(self.max_updated),
            max_updated_share: o.max_updated_share.unwrap_or(self.max_updated_share),
            max_renamed: o.max_renamed.unwrap_or(self.max_renamed),
            max_renamed_share: o.max_renamed_share.unwrap_or(self.max_renamed_share),
            max_created: o.max_created.unwrap_or(self.max_created),
            max_created_share: o.max_created_share.unwrap_or(self.max_created_share),
            max_field_share: o.max_field_share.unwrap_or(self.max_field_share),
            max_identity_field_share: o
                .max_identity_field_share
                .unwrap_or(self.max_identity_field_share),
            admin_confirm_max: o.admin_confirm_max.or(self.admin_confirm_max),
            admin_confirm_two_person_above: o
                .admin_confirm_two_person_above
                .or(self.admin_confirm_two_person_above),
        }
    }

    /// Who may approve a held run changing `changed` accounts by reply: none (an operator
    /// must), one administrator, or two different ones.
    pub fn confirmers(&self, changed: u64) -> Confirmers {
        match (self.admin_confirm_max, self.admin_confirm_two_person_above) {
            (Some(max), _) if changed > max => Confirmers::Operator { max: Some(max) },
            (None, _) => Confirmers::Operator { max: None },
            (Some(_), Some(above)) if changed > above => Confirmers::TwoAdministrators,
            _ => Confirmers::OneAdministrator,
        }
    }
}

/// Who may approve a held run by reply (see [`GuardConfig::confirmers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmers {
    /// Only an operator (`approve RUN`): administrators may not confirm runs (`max` unset)
    /// or not runs this large.
    Operator {
        max: Option<u64>,
    },
    OneAdministrator,
    TwoAdministrators,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Why the run is held; empty when it may go ahead.
    pub reasons: Vec<String>,
}

impl Verdict {
    pub fn held(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// Measures a plan against the thresholds.
pub fn check(plan: &Plan, accounts: u64, limits: &GuardConfig) -> Verdict {
    let counts = plan.counts();
    let measures = [
        (
            "update",
            counts.updated,
            limits.max_updated,
            limits.max_updated_share,
        ),
        (
            "rename",
            counts.renamed,
            limits.max_renamed,
            limits.max_renamed_share,
        ),
        (
            "create",
            counts.created,
            limits.max_created,
            limits.max_created_share,
        ),
    ];
    let mut reasons = Vec::new();
    for (verb, n, max, share) in measures {
        if n <= limits.floor {
            continue;
        }
        let share_limit = share_limit(share, accounts);
        if n > max {
            reasons.push(format!(
                "it would {verb} {n} accounts of {}, more than the limit of {max}",
                plan.organisation
            ));
        } else if n > share_limit {
            reasons.push(format!(
                "it would {verb} {n} of {}'s {accounts} accounts, more than {:.0}%",
                plan.organisation,
                share * 100.0
            ));
        }
    }
    for (field, n) in replaced_per_field(plan) {
        let identity = IDENTITY_FIELDS.contains(&field);
        let share = if identity {
            limits.max_identity_field_share
        } else {
            limits.max_field_share
        };
        if n <= limits.floor || n <= share_limit(share, accounts) {
            continue;
        }
        reasons.push(format!(
            "it would replace or clear {} on {n} of {}'s {accounts} accounts, more than {}% \
             for {}",
            field.name(),
            plan.organisation,
            percent(share),
            if identity {
                "a field accounts are known by"
            } else {
                "one field"
            }
        ));
    }
    Verdict { reasons }
}

/// A share of the organisation as a count, in integers: n / accounts > share ⇔ n > this.
fn share_limit(share: f64, accounts: u64) -> u64 {
    (share * accounts as f64).floor() as u64
}

/// A share as a percentage, without a fraction when it has none (`5`, `2.5`).
fn percent(share: f64) -> String {
    let p = share * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

/// For each field, the accounts on which the plan replaces or clears a value (a blank
/// filled in is not counted), in field order.
fn replaced_per_field(plan: &Plan) -> Vec<(Field, u64)> {
    let mut counts = [0u64; Field::ALL.len()];
    for row in &plan.rows {
        if let Action::Update { changes, .. } = &row.action {
            for change in changes.iter().filter(|c| c.before.is_some()) {
                if let Some(i) = Field::ALL.iter().position(|f| *f == change.field) {
                    counts[i] += 1;
                }
            }
        }
    }
    Field::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(f, n)| (*f, n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Account, Change, Status};
    use crate::model::{Field, OdsCode, PortalId};
    use crate::plan::{Action, PlannedRow};

    fn plan(updates: u64, renames: u64, creates: u64) -> Plan {
        let org = OdsCode::new_unchecked("RXX");
        let mut rows = Vec::new();
        for i in 0..updates {
            rows.push(PlannedRow {
                line: i + 2,
                action: Action::Update {
                    id: PortalId::new_unchecked(format!("P{i}")),
                    changes: vec![Change {
                        field: Field::JobTitle,
                        before: None,
                        after: Some("Nurse".into()),
                    }],
                    renamed: i < renames,
                },
                message: String::new(),
            });
        }
        for i in 0..creates {
            rows.push(PlannedRow {
                line: 1000 + i,
                action: Action::Create {
                    account: Box::new(Account::new(
                        PortalId::new_unchecked(""),
                        Status::Active,
                        &org,
                    )),
                },
                message: String::new(),
            });
        }
        Plan {
            run: "r1".into(),
            organisation: org,
            rows,
        }
    }

    #[test]
    fn who_may_confirm_a_held_run_by_reply() {
        let limits = |max, two| GuardConfig {
            admin_confirm_max: max,
            admin_confirm_two_person_above: two,
            ..GuardConfig::default()
        };
        let cases = [
            (None, None, 10, Confirmers::Operator { max: None }),
            (Some(100), None, 100, Confirmers::OneAdministrator),
            (
                Some(100),
                None,
                101,
                Confirmers::Operator { max: Some(100) },
            ),
            (Some(100), Some(20), 20, Confirmers::OneAdministrator),
            (Some(100), Some(20), 21, Confirmers::TwoAdministrators),
            (
                Some(100),
                Some(20),
                101,
                Confirmers::Operator { max: Some(100) },
            ),
            (None, Some(20), 21, Confirmers::Operator { max: None }),
        ];
        for (max, two, changed, expected) in cases {
            assert_eq!(
                limits(max, two).confirmers(changed),
                expected,
                "{max:?} {two:?} {changed}"
            );
        }
        let org = GuardOverride {
            admin_confirm_max: Some(5),
            ..GuardOverride::default()
        };
        assert_eq!(
            limits(Some(100), Some(2)).with(&org).admin_confirm_max,
            Some(5)
        );
        assert_eq!(
            limits(Some(100), Some(2))
                .with(&org)
                .admin_confirm_two_person_above,
            Some(2)
        );
    }

    #[test]
    fn thresholds_hold_only_above_floor_and_limit() {
        let limits = GuardConfig {
            floor: 5,
            max_updated: 100,
            max_updated_share: 0.2,
            max_renamed: 10,
            max_renamed_share: 0.05,
            max_created: 50,
            max_created_share: 0.5,
            max_field_share: 1.0,
            max_identity_field_share: 1.0,
            ..GuardConfig::default()
        };
        // (updates, renames, creates, accounts, held)
        let cases = [
            (5, 5, 5, 10, false),       // at the floor: a small practice may change everyone
            (6, 0, 0, 10, true),        // above floor, above 20% of 10
            (20, 0, 0, 100, false),     // exactly 20%
            (21, 0, 0, 100, true),      // above 20%
            (101, 0, 0, 100_000, true), // above the count
            (100, 6, 0, 1000, false),   // renames: 6 <= 5% of 1000 = 50
            (100, 11, 0, 1000, true),   // renames above count 10
            (0, 0, 51, 10_000, true),   // creates above count
            (0, 0, 40, 100, false),     // creates 40 <= 50% of 100
        ];
        for (u, r, c, accounts, held) in cases {
            let v = check(&plan(u, r, c), accounts, &limits);
            assert_eq!(v.held(), held, "{u} {r} {c} of {accounts}: {:?}", v.reasons);
        }
    }

    /// A plan of `n` updates, each changing `field` from `before` to a new value.
    fn field_plan(field: Field, n: u64, before: Option<&str>) -> Plan {
        let mut p = plan(0, 0, 0);
        p.rows = (0..n)
            .map(|i| PlannedRow {
                line: i + 2,
                action: Action::Update {
                    id: PortalId::new_unchecked(format!("P{i}")),
                    changes: vec![Change {
                        field,
                        before: before.map(str::to_owned),
                        after: Some(format!("new {i}")),
                    }],
                    renamed: false,
                },
                message: String::new(),
            })
            .collect();
        p
    }

    #[test]
    fn one_field_replaced_on_too_many_accounts_holds_naming_the_field() {
        let limits = GuardConfig {
            floor: 5,
            max_updated_share: 1.0,
            max_renamed_share: 1.0,
            max_field_share: 0.1,
            max_identity_field_share: 0.05,
            ..GuardConfig::default()
        };
        // (field, accounts changed, value before, organisation size, held)
        let cases = [
            (Field::MobilePhone, 10, Some("07700 900123"), 100, false), // exactly 10%
            (Field::MobilePhone, 11, Some("07700 900123"), 100, true),  // above 10%
            (Field::MobilePhone, 11, None, 100, false), // filling blanks is not counted
            (Field::JobTitle, 5, Some("Nurse"), 10, false), // at the floor
            (Field::JobTitle, 6, Some("Nurse"), 10, true),
            (Field::Email, 6, Some("a@nhs.net"), 100, true), // identity: above 5%
            (Field::Email, 5, Some("a@nhs.net"), 100, false), // the floor still applies
            (Field::DisplayName, 51, Some("Lee, Anne"), 1000, true),
            (Field::DisplayName, 50, Some("Lee, Anne"), 1000, false), // exactly 5%
            (Field::Notes, 50, Some("x"), 1000, false), // an ordinary field: 5% is fine
        ];
        for (field, n, before, accounts, held) in cases {
            let v = check(&field_plan(field, n, before), accounts, &limits);
            assert_eq!(
                v.held(),
                held,
                "{field:?} x{n} of {accounts}: {:?}",
                v.reasons
            );
            if held {
                assert_eq!(v.reasons.len(), 1, "{:?}", v.reasons);
                assert!(
                    v.reasons[0].contains(&format!(
                        "replace or clear {} on {n} of RXX's {accounts} accounts",
                        field.name()
                    )),
                    "{:?}",
                    v.reasons
                );
            }
        }
        let v = check(&field_plan(Field::LastName, 6, Some("Lee")), 100, &limits);
        assert_eq!(
            v.reasons,
            [
                "it would replace or clear LastName on 6 of RXX's 100 accounts, more than 5% \
              for a field accounts are known by"
            ]
        );
    }

    #[test]
    fn an_organisation_override_changes_the_field_shares() {
        let o = GuardOverride {
            max_field_share: Some(0.5),
            max_identity_field_share: Some(0.01),
            ..GuardOverride::default()
        };
        let limits = GuardConfig::default().with(&o);
        assert_eq!(limits.max_field_share, 0.5);
        assert_eq!(limits.max_identity_field_share, 0.01);
        assert_eq!(limits.floor, GuardConfig::default().floor);
    }
}
