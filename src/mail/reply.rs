//! A command in an administrator's reply: `CONFIRM <code>` (approve a held run) or
//! `CANCEL <code>` (withdraw a waiting file, or drop a held run).
//!
//! In: the subject and the text the sender wrote (the plain-text part, or the HTML part cut
//! before its quoted original, see [`crate::mail::mime`]). Out: the command, or none. Only
//! what the sender wrote counts: quoted lines (`> …`), everything from the quoted original's
//! header (Outlook's `-----Original Message-----` and `From:` block) and the signature
//! (`-- `, "Sent from my …") on are ignored, as is the `On … wrote:` line of Thunderbird,
//! Apple Mail and Gmail above their `>`-quoted original, since the
//! e-mail being answered itself carries the code. The command is looked for in the first
//! [`LINES_LOOKED_AT`] lines the sender wrote, then in the subject (after `Re:` and the like).
//! Pure: no I/O.

/// How many of the lines the sender wrote (blank ones aside) are looked at.
pub const LINES_LOOKED_AT: usize = 5;

pub use crate::store::mail::Verb;

/// A command and the code as written (upper-cased, without `-` and spaces), possibly empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub verb: Verb,
    pub code: String,
}

/// The command of a reply, when it carries one.
pub fn command(subject: &str, written: &str) -> Option<Command> {
    written_lines(written)
        .iter()
        .find_map(|l| command_line(l))
        .or_else(|| command_line(strip_reply_prefixes(subject)))
}

/// The first [`LINES_LOOKED_AT`] lines the sender wrote, trimmed, blank ones left out: up
/// to the quoted original or the signature, quoted lines skipped. Reads no further than
/// those, however long the text.
fn written_lines(text: &str) -> Vec<&str> {
    let mut lines = text.lines().map(str::trim).peekable();
    let mut out = Vec::new();
    while out.len() < LINES_LOOKED_AT
        && let Some(line) = lines.next()
    {
        let next = lines.peek().copied().unwrap_or("");
        if starts_original(line) {
            break;
        }
        if line.is_empty() || line.starts_with('>') || attribution(line, next) {
            continue;
        }
        out.push(line);
    }
    out
}

/// Whether a line starts the quoted original or the signature.
fn starts_original(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    line == "--"
        || line.starts_with("-- ")
        || (line.starts_with("---") && lower.contains("original message"))
        || (line.len() >= 8 && line.chars().all(|c| c == '_'))
        || lower.starts_with("from:")
        || lower.starts_with("sent from my")
}

/// Whether a line is (part of) the "On Tue, 2 Dec 2026 at 04:00, Connector <…> wrote:" line
/// above `>`-quoted text, which clients wrap: skipped, since the sender may write below the
/// quote too.
fn attribution(line: &str, next: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    lower.ends_with("wrote:")
        || (lower.starts_with("on ") && next.to_ascii_lowercase().ends_with("wrote:"))
}

/// A subject without its `Re:`, `RE:`, `AW:`, `Fwd:`, `[EXTERNAL]` prefixes.
fn strip_reply_prefixes(subject: &str) -> &str {
    let mut s = subject.trim();
    loop {
        // Each prefix compared where it stands, so a subject of many prefixes costs its length.
        let cut = ["re:", "aw:", "sv:", "fw:", "fwd:", "[external]"]
            .iter()
            .find(|p| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p)))
            .map(|p| p.len());
        match cut {
            Some(n) => s = s[n..].trim_start(),
            None => return s,
        }
    }
}

/// `CONFIRM <code>` or `CANCEL <code>` at the start of a line (any case, an optional `:`,
/// `*` of bold text around it): the code is the next word.
fn command_line(line: &str) -> Option<Command> {
    let line = line.trim_start_matches(['*', ' ', '\t']);
    let mut words = line.split_whitespace();
    let first = words.next()?;
    let first = first.trim_end_matches([':', '*']);
    let verb = if first.eq_ignore_ascii_case("confirm") {
        Verb::Confirm
    } else if first.eq_ignore_ascii_case("cancel") {
        Verb::Cancel
    } else {
        return None;
    };
    let code = words
        .next()
        .unwrap_or("")
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    Some(Command { verb, code })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirm(code: &str) -> Option<Command> {
        Some(Command {
            verb: Verb::Confirm,
            code: code.into(),
        })
    }

    fn cancel(code: &str) -> Option<Command> {
        Some(Command {
            verb: Verb::Cancel,
            code: code.into(),
        })
    }

    /// The notice being answered, as each client quotes it: it carries a code of its own.
    const NOTICE: &str = "The nightly run is HELD for approval.\n\n    CONFIRM QQQQQ-QQQQQ\n\n\
        To drop it:\n    CANCEL QQQQQ-QQQQQ\n";

    #[test]
    fn commands_come_from_what_the_sender_wrote() {
        let outlook = format!(
            "CONFIRM ABCDE-FGHJK\r\n\r\nKind regards,\r\nJo Bloggs\r\nHR Systems\r\n\r\n\
             ________________________________\r\nFrom: Staff directory connector \
             <connector@connector.test>\r\nSent: 02 December 2026 04:00\r\nTo: Jo Bloggs\r\n\
             Subject: Held for approval\r\n\r\n{NOTICE}"
        );
        let outlook_old =
            format!("Cancel abcde-fghjk\n\n-----Original Message-----\nFrom: connector\n{NOTICE}");
        let quoted = |text: &str| {
            text.lines()
                .map(|l| format!("> {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let thunderbird = format!(
            "On 02/12/2026 04:00, Staff directory connector wrote:\n{}\nconfirm ABCDEFGHJK\n",
            NOTICE
                .lines()
                .map(|l| format!("> {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let apple = format!(
            "Confirm: ABCDE-FGHJK\n\nSent from my iPhone\n\n> On 2 Dec 2026, at 04:00, \
             Staff directory connector <connector@connector.test> wrote:\n>\n> {NOTICE}"
        );
        let gmail_wrapped = format!(
            "Hello,\n\nCONFIRM ABCDE-FGHJK.\n\nThanks\n\nOn Wed, 2 Dec 2026 at 04:00, Staff \
             directory connector <\nconnector@connector.test> wrote:\n\n{}",
            quoted(NOTICE)
        );
        let thunderbird_top = format!(
            "Cancel ABCDE-FGHJK\n\nOn 02/12/2026 04:00, Staff directory connector wrote:\n{}",
            quoted(NOTICE)
        );
        let bottom_posted = format!(
            "> {}\n\nCANCEL ABCDE-FGHJK\n-- \nJo Bloggs\nCONFIRM ZZZZZ-ZZZZZ\n",
            NOTICE.replace('\n', "\n> ")
        );
        let html_as_text = "**CONFIRM** ABCDE-FGHJK\n\nJo\n";
        let cases: &[(&str, &str, &str, Option<Command>)] = &[
            (
                "outlook",
                "RE: Held for approval",
                &outlook,
                confirm("ABCDEFGHJK"),
            ),
            ("outlook 2010", "RE: x", &outlook_old, cancel("ABCDEFGHJK")),
            ("thunderbird", "Re: x", &thunderbird, confirm("ABCDEFGHJK")),
            ("apple mail", "Re: x", &apple, confirm("ABCDEFGHJK")),
            ("gmail", "Re: x", &gmail_wrapped, confirm("ABCDEFGHJK")),
            (
                "thunderbird top",
                "Re: x",
                &thunderbird_top,
                cancel("ABCDEFGHJK"),
            ),
            (
                "attribution only",
                "Re: x",
                &format!("On Tue someone wrote:\n{}", quoted(NOTICE)),
                None,
            ),
            (
                "bottom-posted",
                "Re: x",
                &bottom_posted,
                cancel("ABCDEFGHJK"),
            ),
            (
                "bold from html",
                "Re: x",
                html_as_text,
                confirm("ABCDEFGHJK"),
            ),
            (
                "subject only",
                "RE: AW: confirm ABCDE-FGHJK",
                "",
                confirm("ABCDEFGHJK"),
            ),
            (
                "external tag",
                "[EXTERNAL] Re: CANCEL abcdefghjk",
                "Thanks",
                cancel("ABCDEFGHJK"),
            ),
            ("no code", "Re: x", "CONFIRM\n", confirm("")),
            // The quoted notice's own code is never taken.
            (
                "only quoted",
                "RE: Held for approval",
                &format!(
                    "Thanks, looks fine.\n\n\
              -----Original Message-----\n{NOTICE}"
                ),
                None,
            ),
            ("quoted lines", "Re: x", "> CONFIRM QQQQQ-QQQQQ\nok\n", None),
            ("signature", "Re: x", "ok\n-- \nCONFIRM QQQQQ-QQQQQ\n", None),
            (
                "prose",
                "Re: x",
                "Please confirm the changes are right.\n",
                None,
            ),
            (
                "too far down",
                "Re: x",
                "a\nb\nc\nd\ne\nCONFIRM ABCDE-FGHJK\n",
                None,
            ),
            ("a file's subject", "staff list", "Please apply.", None),
        ];
        for (client, subject, body, expected) in cases {
            assert_eq!(&command(subject, body), expected, "{client}");
        }
    }
}
