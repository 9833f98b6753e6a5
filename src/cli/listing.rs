//! The plan as a person reads it: every change, grouped (updates field by field, creates,
//! refusals), each group cut at a limit with "… and N more".
//!
//! In: a [`Plan`] and the validation results it was made from (for the column and value of
//! each refused cell). Out: the lines `plan` and a held `apply` print under their summary.

use std::collections::HashMap;

use push_connector::directory::{Account, Change};
use push_connector::model::{Field, RowIssue};
use push_connector::plan::{Action, Plan, PlannedRow};
use push_connector::report::shown;
use push_connector::validate::RowResult;

/// Rows shown per group when no `--limit` is given.
pub const DEFAULT_LIMIT: usize = 50;

/// The grouped listing, indented for the summary it follows. `limit` is the most rows a
/// group shows (0: all of them).
pub fn plan_lines(plan: &Plan, validated: &[RowResult], limit: usize) -> Vec<String> {
    let mut updates = Group::new("would update", limit);
    let mut creates = Group::new("would create", limit);
    let mut refusals = Group::new("refused", limit);
    let issues: HashMap<u64, &[RowIssue]> = validated
        .iter()
        .filter(|r| !r.is_valid())
        .map(|r| (r.line, r.issues()))
        .collect();
    for row in &plan.rows {
        match &row.action {
            Action::Update { id, changes, .. } => updates.push(|| {
                let who = account_of(row, id.as_str());
                changes
                    .iter()
                    .map(|c| format!("line {}, {who}: {}", row.line, change(c)))
                    .collect()
            }),
            Action::Create { account } => {
                creates.push(|| vec![format!("line {}: {}", row.line, new_account(account))])
            }
            Action::Rejected => refusals.push(|| refusal(row, issues.get(&row.line))),
            Action::Unchanged { .. } => {}
        }
    }
    let mut out = Vec::new();
    for group in [updates, creates, refusals] {
        group.write(&mut out);
    }
    out
}

/// One group of rows: a heading with the number of rows, then each row's lines.
struct Group {
    heading: &'static str,
    limit: usize,
    rows: usize,
    lines: Vec<String>,
}

impl Group {
    fn new(heading: &'static str, limit: usize) -> Group {
        Group {
            heading,
            limit,
            rows: 0,
            lines: Vec::new(),
        }
    }

    /// Counts a row; its lines are made only when the group shows it.
    fn push(&mut self, lines: impl FnOnce() -> Vec<String>) {
        if self.limit == 0 || self.rows < self.limit {
            self.lines.extend(lines());
        }
        self.rows += 1;
    }

    fn write(self, out: &mut Vec<String>) {
        if self.rows == 0 {
            return;
        }
        let noun = if self.rows == 1 { "row" } else { "rows" };
        out.push(format!("  {} {} {noun}:", self.heading, self.rows));
        out.extend(self.lines.into_iter().map(|l| format!("    {l}")));
        if self.limit != 0 && self.rows > self.limit {
            let more = self.rows - self.limit;
            let noun = if more == 1 { "row" } else { "rows" };
            out.push(format!(
                "    … and {more} more {noun} (--limit 0 shows them all)"
            ));
        }
    }
}

/// The account an update touches, as reconcile described it (`e-mail (ID n)`).
fn account_of(row: &PlannedRow, id: &str) -> String {
    match row.message.split_once(": changed ") {
        Some((who, _)) if !who.is_empty() => who.to_owned(),
        _ => format!("ID {id}"),
    }
}

/// `JobTitle: "Nurse" → "Senior Nurse"`; a blank value is `(blank)`.
fn change(c: &Change) -> String {
    format!(
        "{}: {} → {}",
        c.field.name(),
        value(c.before.as_deref()),
        value(c.after.as_deref())
    )
}

pub(super) fn value(v: Option<&str>) -> String {
    match v.filter(|v| !v.is_empty()) {
        Some(v) => format!("\"{}\"", shown(v)),
        None => "(blank)".to_owned(),
    }
}

/// `grace.hughes@nhs.net, Grace Hughes`.
fn new_account(a: &Account) -> String {
    let name: Vec<&str> = [Field::FirstName, Field::LastName]
        .into_iter()
        .filter_map(|f| a.get(f))
        .collect();
    let email = a.email().unwrap_or("(no address yet)");
    if name.is_empty() {
        email.to_owned()
    } else {
        format!("{email}, {}", shown(&name.join(" ")))
    }
}

/// A refused row: one line per refused cell (line, column, value, reason) when validation
/// refused it, else the reason the plan gives.
fn refusal(row: &PlannedRow, issues: Option<&&[RowIssue]>) -> Vec<String> {
    let issues = issues.copied().unwrap_or_default();
    if issues.is_empty() {
        return vec![format!("line {}: {}", row.line, row.message)];
    }
    issues
        .iter()
        .map(|i| match (i.column.is_empty(), i.value.is_empty()) {
            (true, _) => format!("line {}: {}", row.line, i.message),
            (false, true) => format!("line {}, {} (blank): {}", row.line, i.column, i.message),
            (false, false) => format!(
                "line {}, {} \"{}\": {}",
                row.line,
                i.column,
                shown(&i.value),
                i.message
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use push_connector::model::{OdsCode, PortalId};
    use push_connector::validate::RowOutcome;

    fn update(line: u64, n: usize) -> PlannedRow {
        PlannedRow {
            line,
            action: Action::Update {
                id: PortalId::new_unchecked(format!("{}", 1000 + line)),
                changes: (0..n)
                    .map(|i| Change {
                        field: if i == 0 {
                            Field::JobTitle
                        } else {
                            Field::Notes
                        },
                        before: if i == 0 { None } else { Some("a\nb".into()) },
                        after: Some(format!("v{i}")),
                    })
                    .collect(),
                renamed: false,
            },
            message: format!("p{line}@nhs.net (ID {}): changed JobTitle", 1000 + line),
        }
    }

    fn plan(rows: Vec<PlannedRow>) -> Plan {
        Plan {
            run: "R".into(),
            organisation: OdsCode::new_unchecked("RXX"),
            rows,
        }
    }

    #[test]
    fn updates_show_every_field_and_the_account() {
        let lines = plan_lines(&plan(vec![update(3, 2)]), &[], 50);
        assert_eq!(
            lines,
            [
                "  would update 1 row:",
                "    line 3, p3@nhs.net (ID 1003): JobTitle: (blank) → \"v0\"",
                "    line 3, p3@nhs.net (ID 1003): Notes: \"a\\nb\" → \"v1\"",
            ]
        );
    }

    #[test]
    fn a_group_past_its_limit_says_how_many_more() {
        let rows = (2..9).map(|l| update(l, 1)).collect();
        let lines = plan_lines(&plan(rows), &[], 5);
        assert_eq!(lines[0], "  would update 7 rows:");
        assert_eq!(lines.len(), 1 + 5 + 1);
        assert_eq!(lines[6], "    … and 2 more rows (--limit 0 shows them all)");
        let all = plan_lines(&plan((2..9).map(|l| update(l, 1)).collect()), &[], 0);
        assert_eq!(all.len(), 1 + 7);
    }

    #[test]
    fn refusals_give_line_column_value_and_reason() {
        let rows = vec![
            PlannedRow {
                line: 4,
                action: Action::Rejected,
                message: "OfficePhone \"12\" is too short".into(),
            },
            PlannedRow {
                line: 5,
                action: Action::Rejected,
                message: "the row points at two different accounts".into(),
            },
        ];
        let validated = vec![RowResult {
            line: 4,
            outcome: RowOutcome::Refused(vec![
                RowIssue {
                    line: 4,
                    column: "OfficePhone".into(),
                    value: "12".into(),
                    message: "is too short".into(),
                },
                RowIssue {
                    line: 4,
                    column: "LastName".into(),
                    value: String::new(),
                    message: "is required".into(),
                },
            ]),
        }];
        assert_eq!(
            plan_lines(&plan(rows), &validated, 50),
            [
                "  refused 2 rows:",
                "    line 4, OfficePhone \"12\": is too short",
                "    line 4, LastName (blank): is required",
                "    line 5: the row points at two different accounts",
            ]
        );
    }
}
