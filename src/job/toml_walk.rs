//! Reading a TOML document key by key, collecting every mistake with its line instead of
//! stopping at the first: unknown keys, wrong types, and values the caller refuses. The
//! job file's decoder ([`super::config`]) is written against this.

use std::collections::BTreeSet;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// A mistake in the document, at a line (1-based).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The document's text (for line numbers) and the problems found so far.
pub struct Doc<'t> {
    text: &'t str,
    pub problems: Vec<Problem>,
    /// Where the decoder looks up environment variables (none: the process's).
    pub env: Option<crate::secret::EnvLookup<'t>>,
}

impl<'t> Doc<'t> {
    pub fn new(text: &'t str) -> Doc<'t> {
        Doc {
            text,
            problems: Vec::new(),
            env: None,
        }
    }

    /// The line of byte `at`.
    pub fn line(&self, at: usize) -> usize {
        let at = at.min(self.text.len());
        self.text.as_bytes()[..at]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    pub fn problem(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let line = self.line(span.start);
        self.problems.push(Problem {
            line,
            message: message.into(),
        });
    }
}

/// A value with where it was written.
#[derive(Clone, Debug)]
pub struct At<T> {
    pub value: T,
    pub span: Range<usize>,
}

/// One table of the document, its keys taken one by one; [`Table::finish`] reports the
/// keys nobody took.
pub struct Table<'a, 'i> {
    table: &'a DeTable<'i>,
    /// Where the table is (its header, or the whole document).
    pub span: Range<usize>,
    /// Its dotted path, for messages (`job "nightly".target`).
    pub path: String,
    taken: BTreeSet<String>,
}

fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a number",
        DeValue::Boolean(_) => "true or false",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn new(table: &'a DeTable<'i>, span: Range<usize>, path: impl Into<String>) -> Self {
        Table {
            table,
            span,
            path: path.into(),
            taken: BTreeSet::new(),
        }
    }

    fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&mut self, key: &str) -> Option<&'a toml::Spanned<DeValue<'i>>> {
        self.taken.insert(key.to_string());
        self.table.get(key)
    }

    /// Where `key`'s value is, if the table has it (and takes it).
    pub fn span_of(&mut self, key: &str) -> Option<Range<usize>> {
        self.get(key).map(|v| v.span())
    }

    /// Whether `key` is there (and takes it).
    pub fn has(&mut self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn wrong(&self, doc: &mut Doc<'_>, key: &str, v: &toml::Spanned<DeValue<'_>>, want: &str) {
        let (name, found) = (self.name(key), kind(v.get_ref()));
        doc.problem(&v.span(), format!("{name} must be {want}, not {found}"));
    }

    pub fn string(&mut self, doc: &mut Doc<'_>, key: &str) -> Option<At<String>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(At {
                value: s.to_string(),
                span: v.span(),
            }),
            _ => {
                self.wrong(doc, key, v, "a string");
                None
            }
        }
    }

    pub fn boolean(&mut self, doc: &mut Doc<'_>, key: &str) -> Option<At<bool>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(At {
                value: *b,
                span: v.span(),
            }),
            _ => {
                self.wrong(doc, key, v, "true or false");
                None
            }
        }
    }

    /// A whole number from `min` to `max`.
    pub fn integer(&mut self, doc: &mut Doc<'_>, key: &str, min: i64, max: i64) -> Option<At<i64>> {
        let v = self.get(key)?;
        let n = match v.get_ref() {
            DeValue::Integer(i) => {
                i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok()
            }
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(At {
                value: n,
                span: v.span(),
            }),
            Some(n) => {
                let name = self.name(key);
                doc.problem(
                    &v.span(),
                    format!("{name} = {n}: must be from {min} to {max}"),
                );
                None
            }
            None => {
                self.wrong(doc, key, v, &format!("a whole number from {min} to {max}"));
                None
            }
        }
    }

    /// A number from `min` to `max` (an integer is taken as one).
    pub fn number(&mut self, doc: &mut Doc<'_>, key: &str, min: f64, max: f64) -> Option<At<f64>> {
        let v = self.get(key)?;
        let n = match v.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(i) => i.as_str().replace('_', "").parse::<f64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n >= min && n <= max => Some(At {
                value: n,
                span: v.span(),
            }),
            _ => {
                self.wrong(doc, key, v, &format!("a number from {min} to {max}"));
                None
            }
        }
    }

    /// A list of strings.
    pub fn strings(&mut self, doc: &mut Doc<'_>, key: &str) -> Vec<At<String>> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong(doc, key, v, "a list of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(At {
                    value: s.to_string(),
                    span: item.span(),
                }),
                other => {
                    let name = self.name(key);
                    let found = kind(other);
                    doc.problem(
                        &item.span(),
                        format!("{name}: each entry must be a string, not {found}"),
                    );
                }
            }
        }
        out
    }

    /// A sub-table (`[a.b]` or `b = { … }`).
    pub fn table(&mut self, doc: &mut Doc<'_>, key: &str) -> Option<Table<'a, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Table::new(t, v.span(), self.name(key))),
            _ => {
                self.wrong(doc, key, v, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[a.b]]`).
    pub fn tables(&mut self, doc: &mut Doc<'_>, key: &str) -> Vec<Table<'a, 'i>> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong(doc, key, v, "a list of tables ([[…]])");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (n, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(t) => out.push(Table::new(
                    t,
                    item.span(),
                    format!("{}[{n}]", self.name(key)),
                )),
                other => {
                    let name = self.name(key);
                    let found = kind(other);
                    doc.problem(
                        &item.span(),
                        format!("{name}: each entry must be a table, not {found}"),
                    );
                }
            }
        }
        out
    }

    /// Reports every key of the table no one took, naming the keys it may have.
    pub fn finish(self, doc: &mut Doc<'_>) {
        for (k, v) in self.table.iter() {
            if self.taken.contains(k.get_ref().as_ref()) {
                continue;
            }
            let known: Vec<&str> = self.taken.iter().map(String::as_str).collect();
            let name = self.name(k.get_ref());
            let span = if k.span().is_empty() {
                v.span()
            } else {
                k.span()
            };
            doc.problem(
                &span,
                format!("unknown key {name} (known here: {})", known.join(", ")),
            );
        }
    }
}
