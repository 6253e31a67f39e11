//! A small EDN reader: enough of the format for Jepsen and Porcupine
//! histories, with line numbers in every error.
//!
//! Own code rather than a crate: the subset is ~300 lines, and the crates on
//! offer either pull in a parser-combinator stack or do not report
//! positions.
//!
//! Supported: nil, booleans, integers (with `N` suffix; beyond `i64` they are
//! kept as floats), floats (with `M` suffix), ratios (as floats), strings
//! with escapes, characters, keywords, symbols, lists, vectors, maps, sets,
//! tagged literals (`#inst "…"`, `#jepsen.history.Op{…}`: the tag is dropped
//! and the value kept), `;` comments and `#_` discards.

use thiserror::Error;

/// An EDN value.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Char(char),
    /// Without the leading colon.
    Keyword(String),
    Symbol(String),
    List(Vec<Edn>),
    Vector(Vec<Edn>),
    Set(Vec<Edn>),
    /// In input order; duplicate keys are kept (the last wins on lookup).
    Map(Vec<(Edn, Edn)>),
}

impl Edn {
    /// The value under keyword `name` in a map.
    pub fn get(&self, name: &str) -> Option<&Edn> {
        match self {
            Edn::Map(entries) => {
                entries.iter().rev().find(|(k, _)| matches!(k, Edn::Keyword(n) if n == name)).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Edn::Nil => "nil",
            Edn::Bool(_) => "a boolean",
            Edn::Int(_) => "an integer",
            Edn::Float(_) => "a float",
            Edn::Str(_) => "a string",
            Edn::Char(_) => "a character",
            Edn::Keyword(_) => "a keyword",
            Edn::Symbol(_) => "a symbol",
            Edn::List(_) => "a list",
            Edn::Vector(_) => "a vector",
            Edn::Set(_) => "a set",
            Edn::Map(_) => "a map",
        }
    }

    /// As JSON: keywords and symbols become strings without the colon,
    /// lists and sets become arrays, map keys become strings (non-string
    /// keys are printed as EDN).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Edn::Nil => Value::Null,
            Edn::Bool(b) => Value::Bool(*b),
            Edn::Int(i) => Value::from(*i),
            Edn::Float(f) => {
                serde_json::Number::from_f64(*f).map_or_else(|| Value::String(f.to_string()), Value::Number)
            }
            Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => Value::String(s.clone()),
            Edn::Char(c) => Value::String(c.to_string()),
            Edn::List(v) | Edn::Vector(v) | Edn::Set(v) => Value::Array(v.iter().map(Edn::to_json).collect()),
            Edn::Map(entries) => Value::Object(entries.iter().map(|(k, v)| (k.key_string(), v.to_json())).collect()),
        }
    }

    fn key_string(&self) -> String {
        match self {
            Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => s.clone(),
            other => other.to_json().to_string(),
        }
    }
}

/// Why EDN text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EdnError {
    #[error("line {line}: unexpected end of input ({context})")]
    Eof { line: usize, context: &'static str },
    #[error("line {line}: unexpected `{found}` ({context})")]
    Unexpected { line: usize, found: char, context: &'static str },
    #[error("line {line}: bad {what} `{text}`")]
    Bad { line: usize, what: &'static str, text: String },
    #[error("line {line}: a map needs an even number of forms")]
    OddMap { line: usize },
}

impl EdnError {
    pub fn line(&self) -> usize {
        match self {
            EdnError::Eof { line, .. }
            | EdnError::Unexpected { line, .. }
            | EdnError::Bad { line, .. }
            | EdnError::OddMap { line } => *line,
        }
    }
}

/// A reader over EDN text that yields forms with the line they start on.
pub struct Reader<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
}

fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '(' | ')' | '[' | ']' | '{' | '}' | '"' | ';')
}

impl<'a> Reader<'a> {
    pub fn new(src: &'a str) -> Self {
        Reader { src, pos: 0, line: 1 }
    }

    /// The line the reader is on.
    pub fn line(&self) -> usize {
        self.line
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips white space, commas, comments and `#_` discards.
    fn skip_ws(&mut self) -> Result<(), EdnError> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() || c == ',' => {
                    self.bump();
                }
                Some(';') => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                Some('#') if self.src[self.pos..].starts_with("#_") => {
                    self.pos += 2;
                    self.read_required("a discarded form")?;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Positions the reader at the next form; true if there is one.
    pub fn at_form(&mut self) -> Result<bool, EdnError> {
        self.skip_ws()?;
        Ok(self.peek().is_some())
    }

    /// If the next form opens a vector or list, consumes the opener and
    /// returns its closer; used to stream the elements of a top-level
    /// collection with their own line numbers.
    pub fn open_seq(&mut self) -> Result<Option<char>, EdnError> {
        self.skip_ws()?;
        let close = match self.peek() {
            Some('[') => ']',
            Some('(') => ')',
            _ => return Ok(None),
        };
        self.bump();
        Ok(Some(close))
    }

    /// Consumes `close` if it is next (after white space).
    pub fn close_seq(&mut self, close: char) -> Result<bool, EdnError> {
        self.skip_ws()?;
        if self.peek() == Some(close) {
            self.bump();
            return Ok(true);
        }
        Ok(false)
    }

    /// Reads the next form; `None` at the end of input.
    pub fn read(&mut self) -> Result<Option<(usize, Edn)>, EdnError> {
        self.skip_ws()?;
        if self.peek().is_none() {
            return Ok(None);
        }
        let line = self.line;
        Ok(Some((line, self.read_form()?)))
    }

    fn read_required(&mut self, context: &'static str) -> Result<Edn, EdnError> {
        self.skip_ws()?;
        if self.peek().is_none() {
            return Err(EdnError::Eof { line: self.line, context });
        }
        self.read_form()
    }

    fn read_form(&mut self) -> Result<Edn, EdnError> {
        let line = self.line;
        let Some(c) = self.bump() else {
            return Err(EdnError::Eof { line, context: "a form" });
        };
        match c {
            '(' => Ok(Edn::List(self.read_seq(')', "a list")?)),
            '[' => Ok(Edn::Vector(self.read_seq(']', "a vector")?)),
            '{' => self.read_map(),
            '"' => self.read_string(),
            '\\' => self.read_char(),
            ':' => {
                let t = self.token();
                if t.is_empty() {
                    return Err(EdnError::Bad { line, what: "keyword", text: ":".into() });
                }
                Ok(Edn::Keyword(t.to_string()))
            }
            '#' => match self.peek() {
                Some('{') => {
                    self.bump();
                    Ok(Edn::Set(self.read_seq('}', "a set")?))
                }
                Some(c) if c.is_alphabetic() => {
                    // A tagged literal: keep the value, drop the tag.
                    self.token();
                    self.read_required("a tagged literal")
                }
                Some(c) => Err(EdnError::Unexpected { line, found: c, context: "after `#`" }),
                None => Err(EdnError::Eof { line, context: "after `#`" }),
            },
            ')' | ']' | '}' => Err(EdnError::Unexpected { line, found: c, context: "no collection is open" }),
            _ => {
                self.pos -= c.len_utf8();
                let t = self.token();
                atom(t, line)
            }
        }
    }

    /// The characters up to the next delimiter.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if is_delimiter(c) {
                break;
            }
            self.bump();
        }
        &self.src[start..self.pos]
    }

    fn read_seq(&mut self, close: char, context: &'static str) -> Result<Vec<Edn>, EdnError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws()?;
            match self.peek() {
                None => return Err(EdnError::Eof { line: self.line, context }),
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(c @ (')' | ']' | '}')) => {
                    return Err(EdnError::Unexpected { line: self.line, found: c, context });
                }
                Some(_) => items.push(self.read_form()?),
            }
        }
    }

    fn read_map(&mut self) -> Result<Edn, EdnError> {
        let line = self.line;
        let items = self.read_seq('}', "a map")?;
        if items.len() % 2 != 0 {
            return Err(EdnError::OddMap { line });
        }
        let mut entries = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            entries.push((k, v));
        }
        Ok(Edn::Map(entries))
    }

    fn read_string(&mut self) -> Result<Edn, EdnError> {
        let line = self.line;
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(EdnError::Eof { line, context: "a string" }),
                Some('"') => return Ok(Edn::Str(s)),
                Some('\\') => {
                    let esc_line = self.line;
                    match self.bump() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('r') => s.push('\r'),
                        Some('b') => s.push('\u{8}'),
                        Some('f') => s.push('\u{c}'),
                        Some(c @ ('"' | '\\' | '/')) => s.push(c),
                        Some('u') => {
                            let hex = self.src.get(self.pos..self.pos + 4).unwrap_or("");
                            let c = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32).ok_or_else(|| {
                                EdnError::Bad { line: esc_line, what: "unicode escape", text: format!("\\u{hex}") }
                            })?;
                            self.pos += 4;
                            s.push(c);
                        }
                        Some(c) => return Err(EdnError::Unexpected { line: esc_line, found: c, context: "an escape" }),
                        None => return Err(EdnError::Eof { line, context: "a string" }),
                    }
                }
                Some(c) => s.push(c),
            }
        }
    }

    fn read_char(&mut self) -> Result<Edn, EdnError> {
        let line = self.line;
        // The first character is taken even if it is a delimiter (`\(`).
        let Some(first) = self.bump() else {
            return Err(EdnError::Eof { line, context: "a character" });
        };
        let rest = self.token();
        let c = match (first, rest) {
            (c, "") => c,
            ('n', "ewline") => '\n',
            ('s', "pace") => ' ',
            ('t', "ab") => '\t',
            ('r', "eturn") => '\r',
            ('u', hex) if hex.len() == 4 => u32::from_str_radix(hex, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| EdnError::Bad { line, what: "character", text: format!("\\u{hex}") })?,
            (c, rest) => return Err(EdnError::Bad { line, what: "character", text: format!("\\{c}{rest}") }),
        };
        Ok(Edn::Char(c))
    }
}

/// nil, booleans, numbers and symbols.
fn atom(t: &str, line: usize) -> Result<Edn, EdnError> {
    match t {
        "nil" => return Ok(Edn::Nil),
        "true" => return Ok(Edn::Bool(true)),
        "false" => return Ok(Edn::Bool(false)),
        _ => {}
    }
    let bad = || EdnError::Bad { line, what: "number", text: t.to_string() };
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if !digits.starts_with(|c: char| c.is_ascii_digit()) {
        if t.is_empty() {
            return Err(bad());
        }
        return Ok(Edn::Symbol(t.to_string()));
    }
    if let Some(int) = t.strip_suffix('N').or(Some(t)).filter(|s| s.bytes().skip(1).all(|b| b.is_ascii_digit())) {
        return match int.parse::<i64>() {
            Ok(i) => Ok(Edn::Int(i)),
            // Beyond i64: keep the magnitude rather than fail.
            Err(_) => int.parse::<f64>().map(Edn::Float).map_err(|_| bad()),
        };
    }
    if let Some((n, d)) = t.split_once('/') {
        let (n, d) = (n.parse::<f64>().map_err(|_| bad())?, d.parse::<f64>().map_err(|_| bad())?);
        return Ok(Edn::Float(n / d));
    }
    t.strip_suffix('M').unwrap_or(t).parse::<f64>().map(Edn::Float).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(s: &str) -> Result<Vec<Edn>, EdnError> {
        let mut r = Reader::new(s);
        let mut out = Vec::new();
        while let Some((_, f)) = r.read()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn scalars_and_collections() {
        let v = read_all(r#"nil true -3 4N 2.5 1/2 "a\"b\n" \x \newline :k/w sym [1 (2) #{3}] {:a 1, "b" [2]}"#)
            .expect("reads");
        assert_eq!(
            v,
            vec![
                Edn::Nil,
                Edn::Bool(true),
                Edn::Int(-3),
                Edn::Int(4),
                Edn::Float(2.5),
                Edn::Float(0.5),
                Edn::Str("a\"b\n".into()),
                Edn::Char('x'),
                Edn::Char('\n'),
                Edn::Keyword("k/w".into()),
                Edn::Symbol("sym".into()),
                Edn::Vector(vec![Edn::Int(1), Edn::List(vec![Edn::Int(2)]), Edn::Set(vec![Edn::Int(3)])]),
                Edn::Map(vec![
                    (Edn::Keyword("a".into()), Edn::Int(1)),
                    (Edn::Str("b".into()), Edn::Vector(vec![Edn::Int(2)]))
                ]),
            ]
        );
    }

    #[test]
    fn comments_discards_and_tags() {
        let v = read_all("; c\n#_ {:x 1} #inst \"2020\" #jepsen.history.Op{:f :read} -").expect("reads");
        assert_eq!(v[0], Edn::Str("2020".into()));
        assert_eq!(v[1].get("f"), Some(&Edn::Keyword("read".into())));
        assert_eq!(v[2], Edn::Symbol("-".into()));
    }

    #[test]
    fn errors_name_lines() {
        assert_eq!(read_all("\n\n[1 2").expect_err("eof").line(), 3);
        assert!(matches!(read_all("{:a}"), Err(EdnError::OddMap { line: 1 })));
        assert!(matches!(read_all("\n(1]"), Err(EdnError::Unexpected { line: 2, found: ']', .. })));
        assert!(matches!(read_all("1.2.3"), Err(EdnError::Bad { what: "number", .. })));
        assert!(matches!(read_all("\"abc"), Err(EdnError::Eof { .. })));
    }

    #[test]
    fn json() {
        let v = read_all("{:x [1 :a] 2 nil}").expect("reads");
        assert_eq!(v[0].to_json(), serde_json::json!({"x": [1, "a"], "2": null}));
    }
}
