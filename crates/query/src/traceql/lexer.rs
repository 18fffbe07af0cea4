//! TraceQL tokens. The lexer is bounded by the query's length (the caller
//! caps it, [`super::MAX_QUERY_BYTES`]) and never backtracks.

use super::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    And,
    Or,
    Not,
    Eq,
    Ne,
    Re,
    NotRe,
    Gt,
    Ge,
    Lt,
    Le,
    Desc,
    /// Operators TraceQL has and Meridian does not evaluate; the text is
    /// kept for the error.
    Unsupported(&'static str),
    Str(String),
    Int(i64),
    Float(f64),
    /// A duration literal, in nanoseconds.
    Duration(u64),
    /// An attribute path or a bare word (`span.http.method`, `.foo`,
    /// `name`, `span:name`, `error`, `true`).
    Word(String),
}

/// Characters that end a word.
fn ends_word(c: char) -> bool {
    c.is_whitespace() || "{}()=!<>&|~\",`".contains(c)
}

pub(super) fn lex(text: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    while let Some(&(pos, c)) = chars.get(i) {
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = at(i + 1);
        let two = |t: Tok| (2, t);
        let one = |t: Tok| (1, t);
        let op = match (c, next) {
            ('{', _) => Some(one(Tok::LBrace)),
            ('}', _) => Some(one(Tok::RBrace)),
            ('(', _) => Some(one(Tok::LParen)),
            (')', _) => Some(one(Tok::RParen)),
            ('&', Some('&')) => Some(two(Tok::And)),
            ('&', Some('>')) => Some(two(Tok::Unsupported("&>"))),
            ('&', Some('<')) => Some(two(Tok::Unsupported("&<"))),
            ('&', Some('~')) => Some(two(Tok::Unsupported("&~"))),
            ('|', Some('|')) => Some(two(Tok::Or)),
            ('|', _) => Some(one(Tok::Unsupported("| (pipeline)"))),
            ('=', Some('~')) => Some(two(Tok::Re)),
            ('=', _) => Some(one(Tok::Eq)),
            ('!', Some('=')) => Some(two(Tok::Ne)),
            ('!', Some('~')) => Some(two(Tok::NotRe)),
            ('!', Some('>')) => Some(two(Tok::Unsupported("!>"))),
            ('!', Some('<')) => Some(two(Tok::Unsupported("!<"))),
            ('!', _) => Some(one(Tok::Not)),
            ('>', Some('>')) => Some(two(Tok::Desc)),
            ('>', Some('=')) => Some(two(Tok::Ge)),
            ('>', _) => Some(one(Tok::Gt)),
            ('<', Some('<')) => Some(two(Tok::Unsupported("<< (ancestor)"))),
            ('<', Some('=')) => Some(two(Tok::Le)),
            ('<', _) => Some(one(Tok::Lt)),
            ('~', _) => Some(one(Tok::Unsupported("~ (sibling)"))),
            ('+' | '*' | '/' | '%' | '^', _) => Some(one(Tok::Unsupported("arithmetic"))),
            (',', _) => Some(one(Tok::Unsupported(", (argument list)"))),
            _ => None,
        };
        if let Some((len, tok)) = op {
            out.push((pos, tok));
            i += len;
            continue;
        }
        if c == '"' || c == '`' {
            let (s, end) = string(&chars, i, c)?;
            out.push((pos, Tok::Str(s)));
            i = end;
            continue;
        }
        if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) {
            let start = i;
            i += 1;
            while at(i).is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == 'µ') {
                i += 1;
            }
            let word: String = chars[start..i].iter().map(|&(_, c)| c).collect();
            out.push((pos, number(&word, pos)?));
            continue;
        }
        if c == '-' {
            return Err(ParseError::unsupported(pos, "arithmetic"));
        }
        let start = i;
        while at(i).is_some_and(|c| !ends_word(c)) {
            i += 1;
        }
        // `span."attr with spaces"`: a quoted attribute name.
        let mut word: String = chars[start..i].iter().map(|&(_, c)| c).collect();
        if word.ends_with('.') && at(i) == Some('"') {
            let (quoted, end) = string(&chars, i, '"')?;
            word.push_str(&quoted);
            i = end;
        }
        if word.is_empty() {
            return Err(ParseError::at(pos, format!("unexpected character {c:?}")));
        }
        out.push((pos, Tok::Word(word)));
    }
    Ok(out)
}

/// A string literal from `chars[open]` (its quote) to the closing quote;
/// returns the text and the index after the close. Backquoted strings are
/// raw; double-quoted ones take `\"`, `\\`, `\n` and `\t`.
fn string(
    chars: &[(usize, char)],
    open: usize,
    quote: char,
) -> Result<(String, usize), ParseError> {
    let pos = chars.get(open).map_or(0, |&(p, _)| p);
    let mut s = String::new();
    let mut i = open + 1;
    while let Some(&(_, c)) = chars.get(i) {
        if c == quote {
            return Ok((s, i + 1));
        }
        if c == '\\' && quote == '"' {
            let escaped = chars.get(i + 1).map(|&(_, c)| c);
            match escaped {
                Some('"') => s.push('"'),
                Some('\\') => s.push('\\'),
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some(other) => {
                    // Kept as written, for regular expressions (`\d`).
                    s.push('\\');
                    s.push(other);
                }
                None => break,
            }
            i += 2;
            continue;
        }
        s.push(c);
        i += 1;
    }
    Err(ParseError::at(pos, "unterminated string"))
}

/// An integer, a float or a duration (`150ms`, `1.5s`, `2m`, `1h`).
fn number(word: &str, pos: usize) -> Result<Tok, ParseError> {
    let split = word.find(|c: char| c.is_alphabetic()).unwrap_or(word.len());
    let (digits, unit) = word.split_at(split);
    let bad = || ParseError::at(pos, format!("invalid number {word:?}"));
    if unit.is_empty() {
        if let Ok(i) = digits.parse::<i64>() {
            return Ok(Tok::Int(i));
        }
        return digits
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Tok::Float)
            .ok_or_else(bad);
    }
    let per: f64 = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3_600e9,
        _ => {
            return Err(ParseError::at(
                pos,
                format!("invalid duration unit in {word:?}"),
            ));
        }
    };
    let value: f64 = digits.parse().map_err(|_| bad())?;
    let nanos = value * per;
    // Durations are non-negative and fit u64 nanoseconds (584 years).
    if !(0.0..1.8e19).contains(&nanos) {
        return Err(ParseError::at(
            pos,
            format!("duration {word:?} out of range"),
        ));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Tok::Duration(nanos.round() as u64))
}
