//! SCIM filters (RFC 7644 §3.4.2.2): parsed into a [`Filter`] and evaluated on a resource's
//! JSON form.
//!
//! In: filter text such as `externalId eq "P1" and urn:…:User:organisation eq "RXX"`. Out: a
//! tree with `and`, `or`, `not`, grouping, value paths (`emails[type eq "work"]`) and the
//! operators `eq ne co sw ew gt ge lt le pr`, or a parse error for a 400 `invalidFilter`.
//! Strings compare case-insensitively except `id` and `externalId` (caseExact, RFC 7643).
//!
//! Bounded: a filter longer than [`Limits::length`] bytes, nested deeper than
//! [`Limits::depth`] (each `(`, `[` and `not` is a level) or with more than [`Limits::terms`]
//! comparisons is refused before it is built, so neither parsing, matching nor dropping the
//! tree can recurse deeper than those limits allow, whatever a client sends.

use serde_json::Value;

use super::get_ci;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare {
        path: String,
        op: Op,
        value: Value,
    },
    Present(String),
    /// `attr[filter]`, optionally followed by `.sub` compared by the outer expression.
    ValuePath {
        attr: String,
        filter: Box<Filter>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter: {0}")]
pub struct FilterError(pub String);

/// How large a filter may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest filter text, in bytes.
    pub length: usize,
    /// Deepest nesting: each `(`, `[` and `not` opens a level.
    pub depth: usize,
    /// Most comparisons (`attr op value`, `attr pr`, `attr[...]`).
    pub terms: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            length: 4096,
            depth: 16,
            terms: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

fn tokens(text: &str) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::OpenBracket,
                    _ => Token::CloseBracket,
                });
            }
            '"' => {
                chars.next();
                let mut s = String::from("\"");
                let mut closed = false;
                while let Some(c) = chars.next() {
                    s.push(c);
                    if c == '\\' {
                        if let Some(n) = chars.next() {
                            s.push(n);
                        }
                    } else if c == '"' {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err(FilterError("unterminated string".into()));
                }
                let v: String = serde_json::from_str(&s)
                    .map_err(|e| FilterError(format!("bad string {s}: {e}")))?;
                out.push(Token::Str(v));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"') {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                out.push(Token::Word(w));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    limits: Limits,
    depth: usize,
    terms: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    /// Enters a nesting level; every caller leaves it with [`Parser::leave`] on success (an
    /// error ends the parse, so the count no longer matters).
    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > self.limits.depth {
            return Err(FilterError(format!(
                "nested deeper than {} levels (each '(', '[' and 'not' is one)",
                self.limits.depth
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn term(&mut self) -> Result<(), FilterError> {
        self.terms += 1;
        if self.terms > self.limits.terms {
            return Err(FilterError(format!(
                "more than {} comparisons",
                self.limits.terms
            )));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.keyword("not") {
            self.pos += 1;
            self.enter()?;
            let inner = self.unary()?;
            self.leave();
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            self.enter()?;
            let f = self.or()?;
            if self.next() != Some(Token::Close) {
                return Err(FilterError("missing ')'".into()));
            }
            self.leave();
            return Ok(f);
        }
        let Some(Token::Word(path)) = self.next() else {
            return Err(FilterError("expected an attribute".into()));
        };
        self.term()?;
        if self.peek() == Some(&Token::OpenBracket) {
            self.pos += 1;
            self.enter()?;
            let inner = self.or()?;
            self.leave();
            if self.next() != Some(Token::CloseBracket) {
                return Err(FilterError("missing ']'".into()));
            }
            // `emails[type eq "work"].value eq "x"` is not needed; `emails[...]` alone is.
            return Ok(Filter::ValuePath {
                attr: path,
                filter: Box::new(inner),
            });
        }
        let Some(Token::Word(op)) = self.next() else {
            return Err(FilterError(format!("expected an operator after {path}")));
        };
        let op = match op.to_ascii_lowercase().as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return Err(FilterError(format!("unknown operator {other}"))),
        };
        let value = match self.next() {
            Some(Token::Str(s)) => Value::String(s),
            Some(Token::Word(w)) => match w.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                n => serde_json::from_str::<serde_json::Number>(n)
                    .map(Value::Number)
                    .map_err(|_| FilterError(format!("bad value {n}")))?,
            },
            _ => return Err(FilterError(format!("expected a value after {path}"))),
        };
        Ok(Filter::Compare { path, op, value })
    }
}

impl Filter {
    /// Parses a filter within the default [`Limits`].
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        Filter::parse_within(text, &Limits::default())
    }

    /// Parses a filter, refusing one beyond `limits`.
    pub fn parse_within(text: &str, limits: &Limits) -> Result<Filter, FilterError> {
        if text.len() > limits.length {
            return Err(FilterError(format!(
                "the filter is {} bytes; at most {} are allowed",
                text.len(),
                limits.length
            )));
        }
        let mut p = Parser {
            tokens: tokens(text)?,
            pos: 0,
            limits: *limits,
            depth: 0,
            terms: 0,
        };
        let f = p.or()?;
        if p.pos != p.tokens.len() {
            return Err(FilterError("unexpected text after the filter".into()));
        }
        Ok(f)
    }

    /// Whether a resource matches.
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(resource) && b.matches(resource),
            Filter::Or(a, b) => a.matches(resource) || b.matches(resource),
            Filter::Not(a) => !a.matches(resource),
            Filter::Present(path) => values_at(resource, path)
                .iter()
                .any(|v| !v.is_null() && *v != &Value::String(String::new())),
            Filter::Compare { path, op, value } => {
                let exact = is_case_exact(path);
                values_at(resource, path)
                    .iter()
                    .any(|v| compare(v, *op, value, exact))
            }
            Filter::ValuePath { attr, filter } => items_at(resource, attr)
                .iter()
                .any(|item| filter.matches(item)),
        }
    }

    /// The value an `attr eq "v"` term of a top-level `and` chain requires, if any: lets a
    /// server answer from an index instead of a scan.
    pub fn required_eq(&self, attr: &str) -> Option<&str> {
        match self {
            Filter::And(a, b) => a.required_eq(attr).or_else(|| b.required_eq(attr)),
            Filter::Compare {
                path,
                op: Op::Eq,
                value: Value::String(v),
            } if path.eq_ignore_ascii_case(attr) => Some(v),
            _ => None,
        }
    }
}

impl Filter {
    /// The `attr eq "v"` alternatives of an `or` chain of equality comparisons on string
    /// values (grouping allowed), found as the filter itself or as a term of its top-level
    /// `and` chain: every resource the filter matches has one of these values. Lets a server
    /// answer `userName eq "a" or userName eq "b"` from an index.
    pub fn eq_alternatives(&self) -> Option<Vec<(&str, &str)>> {
        fn chain<'a>(f: &'a Filter, out: &mut Vec<(&'a str, &'a str)>) -> bool {
            match f {
                Filter::Or(a, b) => chain(a, out) && chain(b, out),
                Filter::Compare {
                    path,
                    op: Op::Eq,
                    value: Value::String(v),
                } => {
                    out.push((path.as_str(), v.as_str()));
                    true
                }
                _ => false,
            }
        }
        if let Filter::And(a, b) = self {
            return a.eq_alternatives().or_else(|| b.eq_alternatives());
        }
        let mut out = Vec::new();
        chain(self, &mut out).then_some(out)
    }
}

fn is_case_exact(path: &str) -> bool {
    path.eq_ignore_ascii_case("id") || path.eq_ignore_ascii_case("externalId")
}

/// The values at a path; a multi-valued complex attribute without a sub-attribute means its
/// `value` sub-attributes (RFC 7644 §3.4.2.2). Extension paths are `urn:…:User:attr.sub`.
pub fn values_at<'a>(resource: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for v in raw_at(resource, path) {
        match v {
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(m) => {
                            if let Some(x) = get_ci(m, "value") {
                                out.push(x);
                            } else {
                                out.push(item);
                            }
                        }
                        _ => out.push(item),
                    }
                }
            }
            _ => out.push(v),
        }
    }
    out
}

/// The items of a (multi-valued) attribute, as they are.
fn items_at<'a>(resource: &'a Value, path: &str) -> Vec<&'a Value> {
    raw_at(resource, path)
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![other],
        })
        .collect()
}

fn raw_at<'a>(resource: &'a Value, path: &str) -> Vec<&'a Value> {
    let (root, rest) = split_urn(resource, path);
    let mut current: Vec<&Value> = vec![root];
    for part in rest.split('.').filter(|p| !p.is_empty()) {
        let mut next = Vec::new();
        for v in current {
            match v {
                Value::Object(m) => {
                    if let Some(x) = get_ci(m, part) {
                        next.push(x);
                    }
                }
                Value::Array(items) => {
                    for item in items {
                        if let Value::Object(m) = item
                            && let Some(x) = get_ci(m, part)
                        {
                            next.push(x);
                        }
                    }
                }
                _ => {}
            }
        }
        current = next;
    }
    current
}

/// Splits `urn:…:User:attr.sub` into the extension object and `attr.sub`.
fn split_urn<'a, 'p>(resource: &'a Value, path: &'p str) -> (&'a Value, &'p str) {
    if path.to_ascii_lowercase().starts_with("urn:")
        && let Value::Object(m) = resource
    {
        let lower = path.to_ascii_lowercase();
        for (k, v) in m {
            let key = k.to_ascii_lowercase();
            if lower.starts_with(&key) && lower.as_bytes().get(key.len()) == Some(&b':') {
                return (v, &path[key.len() + 1..]);
            }
        }
        // The path names the core schema explicitly, or an extension the resource lacks.
        if let Some(i) = path.rfind(':') {
            let prefix = &lower[..i];
            if prefix == super::CORE_USER {
                return (resource, &path[i + 1..]);
            }
            return (&Value::Null, "");
        }
    }
    (resource, path)
}

fn compare(actual: &Value, op: Op, wanted: &Value, exact: bool) -> bool {
    match (actual, wanted) {
        (Value::String(a), Value::String(w)) => {
            let (a, w) = if exact {
                (a.clone(), w.clone())
            } else {
                (a.to_lowercase(), w.to_lowercase())
            };
            match op {
                Op::Eq => a == w,
                Op::Ne => a != w,
                Op::Co => a.contains(&w),
                Op::Sw => a.starts_with(&w),
                Op::Ew => a.ends_with(&w),
                Op::Gt => a > w,
                Op::Ge => a >= w,
                Op::Lt => a < w,
                Op::Le => a <= w,
            }
        }
        (Value::Bool(a), Value::Bool(w)) => match op {
            Op::Eq => a == w,
            Op::Ne => a != w,
            _ => false,
        },
        (Value::Number(a), Value::Number(w)) => {
            let (a, w) = (a.as_f64().unwrap_or(0.0), w.as_f64().unwrap_or(0.0));
            match op {
                Op::Eq => a == w,
                Op::Ne => a != w,
                Op::Gt => a > w,
                Op::Ge => a >= w,
                Op::Lt => a < w,
                Op::Le => a <= w,
                _ => false,
            }
        }
        (_, Value::Null) => match op {
            Op::Eq => actual.is_null(),
            Op::Ne => !actual.is_null(),
            _ => false,
        },
        _ => op == Op::Ne,
    }
}

/// A string as a filter literal.
pub fn quote(value: &str) -> String {
    Value::String(value.to_owned()).to_string()
}

#[cfg(test)]
mod tests;
