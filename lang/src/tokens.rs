//! The tokens of VInet, as a logos automaton.
//!
//! Keywords are case-insensitive (`ignore(case)`): the paper mixes `IF`
//! and `if`. Routine names (`DISCARD`, ...) and the built-in names
//! (`AllPackets`, `THIS_IP`, ...) are plain identifiers here; they are
//! recognised case-insensitively by name resolution, so that a misspelt
//! routine gets a "did you mean" rather than a syntax error.
//!
//! Literals are decoded here, in the callbacks, and never fail: a malformed
//! literal (`300.1.2.3`, `2001:db8:::1`, a number past u64, a bad escape, an
//! unterminated string) records a [`LexError`] in the lexer's extras and
//! yields a placeholder value, so parsing goes on and later errors are still
//! found.
//!
//! Addresses live in one 128-bit space, IPv4 as IPv4-mapped IPv6
//! (`::ffff:a.b.c.d`, [`vinet_checker::mapped`]), so an [`IpLit`] holds the
//! 128-bit value whatever its spelling: `203.0.113.9` and `::ffff:203.0.113.9`
//! are one literal, and an IPv4 prefix `/n` is the `/96+n` of its mapped
//! network. An IPv6 literal is any run of letters, digits, `:` and `.` that
//! holds a `:`, with an optional `/LENGTH` (no VInet token but these has a
//! `:`); [`parse_ipv6`] decodes it as RFC 4291 (section 2.2) writes addresses,
//! exactly the text std's `Ipv6Addr` parser accepts, and says what is wrong
//! with the rest (a bad group, a second `::`, too many or too few groups, a
//! misplaced or malformed embedded IPv4 address), pointing at the part at
//! fault. Literals print as [`vinet_vocab::addr_text`] prints them (RFC 5952),
//! like every other vinet tool.

use logos::{Lexer, Logos};
use vinet_checker::bytecode::Const;
use vinet_vocab::{addr_text, IpPrefix};

use crate::ast::Span;

/// What is wrong with a piece of text the lexer read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexErrorKind {
    /// A character that starts no token.
    UnexpectedChar(char),
    /// A dotted literal that is not a valid IPv4 address or prefix.
    BadAddress(String),
    /// A literal with a `:` that is not a valid IPv6 address or prefix; the
    /// error's span is the part at fault.
    BadAddress6 {
        /// The whole literal as written.
        text: String,
        /// What is wrong with it.
        why: Ipv6Error,
    },
    /// A prefix length above the family's: 32 for IPv4, 128 for IPv6.
    BadPrefixLength {
        /// The text as written.
        text: String,
        /// The longest length of its family.
        max: u8,
    },
    /// A prefix whose host bits are not zero; carries the corrected prefix.
    HostBitsSet {
        /// The text as written.
        text: String,
        /// The prefix with its host bits cleared.
        fixed: String,
    },
    /// A number that does not fit 64 bits.
    NumberTooLarge,
    /// A string with no closing quote on its line.
    UnterminatedString,
    /// A backslash escape that is not `\" \\ \n \t \xHH`.
    BadEscape(String),
    /// `\xHH` above `\x7f`: strings are UTF-8 text.
    NonAsciiEscape(String),
    /// A string longer than a packet can carry.
    StringTooLong(usize),
}

/// Longest string literal, in bytes: what one IPv4 UDP packet can carry
/// (docs/SEMANTICS.md).
pub const MAX_STRING: usize = 65_507;

/// A lexical error: what and where. Lexical errors are values, collected
/// beside the tokens; they never stop the parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError {
    /// What is wrong.
    pub kind: LexErrorKind,
    /// Where, in bytes of the source.
    pub span: Span,
}

/// What is wrong with an IPv6 literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ipv6Error {
    /// A group that is not one to four hex digits (as written).
    Group(String),
    /// A second `::` (or a `:::`).
    TwoGaps,
    /// More groups than fit 128 bits: eight, or seven beside a `::` (an embedded
    /// IPv4 address counts two).
    TooManyGroups(usize),
    /// Fewer than eight groups, and no `::` to stand for the rest.
    TooFewGroups(usize),
    /// A single `:` at the start or the end (only `::` may be there).
    LoneColon,
    /// An embedded IPv4 address that is not four decimal numbers 0 to 255 without leading zeros.
    BadV4(String),
    /// An embedded IPv4 address that does not end the address.
    V4NotLast,
}

/// An address or prefix literal, IPv4 or IPv6, in the one 128-bit address
/// space (IPv4 as IPv4-mapped: `1.2.3.4` is `::ffff:1.2.3.4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpLit {
    /// An address, host byte order.
    Addr(u128),
    /// A prefix: network (host byte order, host bits zero) and length 0 to 128
    /// (an IPv4 `/n` is `/96+n`).
    Prefix(u128, u8),
}

impl IpLit {
    /// The canonical constant: `Const::Addr`/`Const::Prefix` for IPv4 (an
    /// IPv4-mapped literal included), `Const::Addr6`/`Const::Prefix6` for the rest.
    pub fn to_const(self) -> Const {
        match self {
            IpLit::Addr(a) => vinet_vocab::addr_const(a),
            IpLit::Prefix(n, l) => IpPrefix::new(n, l).map_or(Const::Prefix6(n, l), IpPrefix::to_const),
        }
    }

    /// The literal of an address or prefix constant.
    pub fn of_const(c: &Const) -> Option<IpLit> {
        c.addr().map(IpLit::Addr).or_else(|| c.prefix().map(|(n, l)| IpLit::Prefix(n, l)))
    }

    /// Its canonical text: IPv4 dotted, IPv6 as RFC 5952 writes it
    /// ([`vinet_vocab::addr_text`]); a prefix with its length.
    pub fn text(self) -> String {
        match self {
            IpLit::Addr(a) => addr_text(a),
            IpLit::Prefix(n, l) => IpPrefix::new(n, l).map_or_else(|_| format!("{}/{l}", addr_text(n)), |p| p.to_string()),
        }
    }
}

impl std::fmt::Display for IpLit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

/// A token of VInet.
#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(extras = Vec<LexError>)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
pub enum Token<'s> {
    /// `LIFETIME`
    #[token("lifetime", ignore(case))]
    Lifetime,
    /// `CLASS`
    #[token("class", ignore(case))]
    Class,
    /// `PARAM`
    #[token("param", ignore(case))]
    Param,
    /// `if`
    #[token("if", ignore(case))]
    If,
    /// `then`
    #[token("then", ignore(case))]
    Then,
    /// `else`
    #[token("else", ignore(case))]
    Else,
    /// `while`
    #[token("while", ignore(case))]
    While,
    /// `do`
    #[token("do", ignore(case))]
    Do,
    /// `foreach`
    #[token("foreach", ignore(case))]
    Foreach,
    /// `begin`
    #[token("begin", ignore(case))]
    Begin,
    /// `end`
    #[token("end", ignore(case))]
    End,
    /// `and`
    #[token("and", ignore(case))]
    And,
    /// `or`
    #[token("or", ignore(case))]
    Or,
    /// `not`
    #[token("not", ignore(case))]
    Not,
    /// `in`
    #[token("in", ignore(case))]
    In,
    /// `true`
    #[token("true", ignore(case))]
    True,
    /// `false`
    #[token("false", ignore(case))]
    False,
    /// `=`
    #[token("=")]
    Assign,
    /// `==`
    #[token("==")]
    EqEq,
    /// `!=`
    #[token("!=")]
    NotEq,
    /// `<`
    #[token("<")]
    Lt,
    /// `<=`
    #[token("<=")]
    Le,
    /// `>`
    #[token(">")]
    Gt,
    /// `>=`
    #[token(">=")]
    Ge,
    /// `&`
    #[token("&")]
    Amp,
    /// `+`
    #[token("+")]
    Plus,
    /// `-`
    #[token("-")]
    Minus,
    /// `*`
    #[token("*")]
    Star,
    /// `(`
    #[token("(")]
    LParen,
    /// `)`
    #[token(")")]
    RParen,
    /// `{`
    #[token("{")]
    LBrace,
    /// `}`
    #[token("}")]
    RBrace,
    /// `,`
    #[token(",")]
    Comma,
    /// `;`
    #[token(";")]
    Semi,
    /// A name: a variable, a parameter, a routine, a built-in, a unit.
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident(&'s str),
    /// A natural number.
    #[regex(r"[0-9]+", number)]
    Number(u64),
    /// An address or a prefix: IPv4 (any dotted digits) or IPv6 (any run of
    /// letters, digits, `:` and `.` with a `:`), validated by the callbacks.
    #[regex(r"[0-9]+(\.[0-9]+)+(/[0-9]+)?", dotted)]
    #[regex(r"[0-9A-Za-z]*:[0-9A-Za-z:.]*(/[0-9]+)?", colon)]
    Ip(IpLit),
    /// A string literal, escapes decoded.
    #[regex(r#""([^"\\\n]|\\[^\n])*""#, string)]
    #[regex(r#""([^"\\\n]|\\[^\n])*\\?"#, unterminated, priority = 1)]
    Str(String),
}

impl Token<'_> {
    /// How an operator would name this token in a message.
    pub fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("the name `{s}`"),
            Token::Number(n) => format!("the number `{n}`"),
            Token::Ip(IpLit::Addr(_)) => "an IP address".into(),
            Token::Ip(IpLit::Prefix(..)) => "a prefix".into(),
            Token::Str(_) => "a string".into(),
            other => format!("`{}`", other.text()),
        }
    }

    /// The fixed text of a keyword or punctuation token.
    pub fn text(&self) -> &'static str {
        match self {
            Token::Lifetime => "LIFETIME",
            Token::Class => "CLASS",
            Token::Param => "PARAM",
            Token::If => "if",
            Token::Then => "then",
            Token::Else => "else",
            Token::While => "while",
            Token::Do => "do",
            Token::Foreach => "foreach",
            Token::Begin => "begin",
            Token::End => "end",
            Token::And => "and",
            Token::Or => "or",
            Token::Not => "not",
            Token::In => "in",
            Token::True => "true",
            Token::False => "false",
            Token::Assign => "=",
            Token::EqEq => "==",
            Token::NotEq => "!=",
            Token::Lt => "<",
            Token::Le => "<=",
            Token::Gt => ">",
            Token::Ge => ">=",
            Token::Amp => "&",
            Token::Plus => "+",
            Token::Minus => "-",
            Token::Star => "*",
            Token::LParen => "(",
            Token::RParen => ")",
            Token::LBrace => "{",
            Token::RBrace => "}",
            Token::Comma => ",",
            Token::Semi => ";",
            Token::Ident(_) => "name",
            Token::Number(_) => "number",
            Token::Ip(_) => "address",
            Token::Str(_) => "string",
        }
    }
}

fn error<'s>(lex: &mut Lexer<'s, Token<'s>>, kind: LexErrorKind) {
    let span = lex.span();
    lex.extras.push(LexError { kind, span: Span::new(span.start, span.end) });
}

fn number<'s>(lex: &mut Lexer<'s, Token<'s>>) -> u64 {
    match lex.slice().parse() {
        Ok(n) => n,
        Err(_) => {
            error(lex, LexErrorKind::NumberTooLarge);
            0
        }
    }
}

/// Decode a dotted literal: exactly four parts of at most 255, and for a
/// prefix a length of at most 32 and zero host bits. The value is IPv4-mapped.
pub fn parse_dotted(text: &str) -> Result<IpLit, LexErrorKind> {
    let (addr_text, len_text) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let mut addr: u32 = 0;
    let mut parts = 0;
    for part in addr_text.split('.') {
        let octet: u8 = match part.parse() {
            Ok(o) if part.len() <= 3 => o,
            _ => return Err(LexErrorKind::BadAddress(text.into())),
        };
        addr = (addr << 8) | u32::from(octet);
        parts += 1;
        if parts > 4 {
            return Err(LexErrorKind::BadAddress(text.into()));
        }
    }
    if parts != 4 {
        return Err(LexErrorKind::BadAddress(text.into()));
    }
    let addr = vinet_checker::mapped(addr);
    let Some(len_text) = len_text else { return Ok(IpLit::Addr(addr)) };
    let len: u8 = match len_text.parse() {
        Ok(l) if l <= 32 && len_text.len() <= 2 => l,
        _ => return Err(LexErrorKind::BadPrefixLength { text: text.into(), max: 32 }),
    };
    prefix(text, addr, len + 96)
}

/// A prefix `net/len` of the 128-bit space, or the error naming the prefix meant.
fn prefix(text: &str, net: u128, len: u8) -> Result<IpLit, LexErrorKind> {
    let mask = vinet_checker::netmask(len);
    if net & !mask != 0 {
        return Err(LexErrorKind::HostBitsSet { text: text.into(), fixed: IpLit::Prefix(net & mask, len).text() });
    }
    Ok(IpLit::Prefix(net, len))
}

fn dotted<'s>(lex: &mut Lexer<'s, Token<'s>>) -> IpLit {
    match parse_dotted(lex.slice()) {
        Ok(lit) => lit,
        Err(kind) => {
            error(lex, kind);
            IpLit::Addr(0)
        }
    }
}

/// Decode an IPv6 literal: an address (RFC 4291, 2.2: eight groups of one to
/// four hex digits, one `::` for a run of zero groups, and optionally an
/// embedded IPv4 address as the last 32 bits), and for a prefix `/LENGTH`, a
/// length of at most 128 and zero host bits. On error, the byte range of
/// `text` at fault.
pub fn parse_ip6_literal(text: &str) -> Result<IpLit, (LexErrorKind, std::ops::Range<usize>)> {
    let (addr_text, len_text) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr = parse_ipv6(addr_text).map_err(|(why, at)| (LexErrorKind::BadAddress6 { text: text.into(), why }, at))?;
    let Some(len_text) = len_text else { return Ok(IpLit::Addr(addr)) };
    let whole = 0..text.len();
    let len: u8 = match len_text.parse() {
        Ok(l) if l <= 128 && len_text.len() <= 3 => l,
        _ => return Err((LexErrorKind::BadPrefixLength { text: text.into(), max: 128 }, whole)),
    };
    prefix(text, addr, len).map_err(|k| (k, whole))
}

/// Decode IPv6 address text (no prefix length), accepting exactly what std's
/// `Ipv6Addr` parser accepts; on error, what is wrong and the byte range at fault.
pub fn parse_ipv6(s: &str) -> Result<u128, (Ipv6Error, std::ops::Range<usize>)> {
    // The one `::`, if any: the groups before it and after it.
    let gap = s.find("::");
    if let Some(g) = gap {
        if let Some(again) = s[g + 2..].find("::").map(|i| g + 2 + i) {
            return Err((Ipv6Error::TwoGaps, again..again + 2));
        }
        if s[g + 2..].starts_with(':') {
            return Err((Ipv6Error::TwoGaps, g..g + 3));
        }
    }
    let (head, tail) = match gap {
        Some(g) => ((0, &s[..g]), Some((g + 2, &s[g + 2..]))),
        None => ((0, s), None),
    };
    let (mut groups, mut tail_groups): (Vec<u16>, Vec<u16>) = (vec![], vec![]);
    let last_part = tail.unwrap_or(head);
    for (side, (base, part)) in [(0, head), (1, tail.unwrap_or((s.len(), "")))] {
        if part.is_empty() {
            continue;
        }
        let out = if side == 0 { &mut groups } else { &mut tail_groups };
        let mut at = base;
        let pieces: Vec<&str> = part.split(':').collect();
        for (i, piece) in pieces.iter().enumerate() {
            let range = at..at + piece.len();
            if piece.is_empty() {
                // Only an edge can be empty here: a `:` alone at the start or the end.
                let colon = if i == 0 { at..at + 1 } else { at - 1..at };
                return Err((Ipv6Error::LoneColon, colon));
            }
            if piece.contains('.') {
                let last = i + 1 == pieces.len() && base == last_part.0;
                if !last {
                    return Err((Ipv6Error::V4NotLast, range));
                }
                let v4 = ipv4_strict(piece).ok_or_else(|| (Ipv6Error::BadV4(piece.to_string()), range.clone()))?;
                out.extend([(v4 >> 16) as u16, v4 as u16]);
            } else {
                let ok = (1..=4).contains(&piece.len()) && piece.bytes().all(|b| b.is_ascii_hexdigit());
                let v = u16::from_str_radix(piece, 16).ok().filter(|_| ok);
                out.push(v.ok_or_else(|| (Ipv6Error::Group(piece.to_string()), range.clone()))?);
            }
            at += piece.len() + 1;
        }
    }
    let n = groups.len() + tail_groups.len();
    let max = if gap.is_some() { 7 } else { 8 };
    if n > max {
        return Err((Ipv6Error::TooManyGroups(n), 0..s.len()));
    }
    if n < 8 && gap.is_none() {
        return Err((Ipv6Error::TooFewGroups(n), 0..s.len()));
    }
    let mut all = groups;
    all.extend(std::iter::repeat_n(0, 8 - n));
    all.extend(tail_groups);
    Ok(all.iter().fold(0u128, |a, g| a << 16 | u128::from(*g)))
}

/// A dotted IPv4 address as std parses it: four decimal numbers 0 to 255,
/// none with a leading zero.
fn ipv4_strict(s: &str) -> Option<u32> {
    let mut parts = 0;
    let mut a: u32 = 0;
    for p in s.split('.') {
        let ok = (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) && !(p.len() > 1 && p.starts_with('0'));
        let o: u8 = p.parse().ok().filter(|_| ok)?;
        a = a << 8 | u32::from(o);
        parts += 1;
    }
    (parts == 4).then_some(a)
}

fn colon<'s>(lex: &mut Lexer<'s, Token<'s>>) -> IpLit {
    match parse_ip6_literal(lex.slice()) {
        Ok(lit) => lit,
        Err((kind, at)) => {
            let start = lex.span().start;
            lex.extras.push(LexError { kind, span: Span::new(start + at.start, start + at.end) });
            IpLit::Addr(0)
        }
    }
}

/// Decode the escapes of a string body (the text between the quotes).
/// Errors carry the byte range of the bad escape within `body`.
pub fn unescape(body: &str) -> Result<String, (LexErrorKind, std::ops::Range<usize>)> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else {
            return Err((LexErrorKind::BadEscape("\\".into()), at..at + 1));
        };
        match e {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'x' => {
                let hex: String = chars.clone().take(2).map(|(_, h)| h).collect();
                let end = at + 2 + hex.len();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if hex.len() == 2 && b < 0x80 => out.push(char::from(b)),
                    Ok(_) if hex.len() == 2 => {
                        return Err((LexErrorKind::NonAsciiEscape(format!("\\x{hex}")), at..end));
                    }
                    _ => return Err((LexErrorKind::BadEscape(format!("\\x{hex}")), at..end)),
                }
                chars.next();
                chars.next();
            }
            other => {
                return Err((LexErrorKind::BadEscape(format!("\\{other}")), at..at + 1 + other.len_utf8()));
            }
        }
    }
    Ok(out)
}

fn string_body<'s>(lex: &mut Lexer<'s, Token<'s>>, body: &str) -> String {
    match unescape(body) {
        Ok(s) => s,
        Err((kind, range)) => {
            // +1: the opening quote.
            let start = lex.span().start + 1;
            lex.extras.push(LexError { kind, span: Span::new(start + range.start, start + range.end) });
            body.to_string()
        }
    }
}

fn string<'s>(lex: &mut Lexer<'s, Token<'s>>) -> String {
    let slice = lex.slice();
    let body = &slice[1..slice.len() - 1];
    let s = string_body(lex, body);
    if s.len() > MAX_STRING {
        error(lex, LexErrorKind::StringTooLong(s.len()));
    }
    s
}

fn unterminated<'s>(lex: &mut Lexer<'s, Token<'s>>) -> String {
    let start = lex.span().start;
    lex.extras.push(LexError { kind: LexErrorKind::UnterminatedString, span: Span::new(start, start + 1) });
    let slice = lex.slice();
    let body = slice[1..].trim_end_matches('\\');
    unescape(body).unwrap_or_else(|_| body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(src: &str) -> (Vec<Token<'_>>, Vec<LexError>) {
        let mut lexer = Token::lexer(src);
        let mut toks = vec![];
        for t in lexer.by_ref().flatten() {
            toks.push(t);
        }
        (toks, lexer.extras)
    }

    #[test]
    fn keywords_ignore_case_names_do_not() {
        let (t, e) = lex("IF if If foreach FOREACH Packets packets");
        assert!(e.is_empty());
        assert_eq!(&t[..5], &[Token::If, Token::If, Token::If, Token::Foreach, Token::Foreach]);
        assert_eq!(&t[5..], &[Token::Ident("Packets"), Token::Ident("packets")]);
    }

    #[test]
    fn literals() {
        let (t, e) = lex(r#"10.1.0.0/16 1.2.3.4 42 "a\"b\x41\n" // comment"#);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(
            t,
            vec![
                Token::Ip(IpLit::Prefix(vinet_checker::mapped(0x0a01_0000), 112)),
                Token::Ip(IpLit::Addr(vinet_checker::mapped(0x0102_0304))),
                Token::Number(42),
                Token::Str("a\"bA\n".into()),
            ]
        );
    }

    #[test]
    fn bad_literals_are_values() {
        let (t, e) = lex(r#"300.1.2.3 1.2.3 10.1.0.1/16 1.2.3.4/33 99999999999999999999 "ab\q" "open"#);
        assert_eq!(t.len(), 7);
        let kinds: Vec<_> = e.iter().map(|e| std::mem::discriminant(&e.kind)).collect();
        assert_eq!(kinds.len(), 7, "{e:?}");
        assert!(matches!(e[2].kind, LexErrorKind::HostBitsSet { ref fixed, .. } if fixed == "10.1.0.0/16"));
        assert_eq!(e[6].kind, LexErrorKind::UnterminatedString);
    }

    const DOC: u128 = 0x2001_0db8 << 96; // 2001:db8::

    fn ip6(s: &str) -> Result<IpLit, (LexErrorKind, std::ops::Range<usize>)> {
        parse_ip6_literal(s)
    }

    #[test]
    fn ipv6_literals_in_every_form() {
        let (t, e) = lex("2001:db8::9 2001:DB8:0:0:0:0:0:9 2001:0db8:0000::0009 ::/0 2001:db8::/32 :: ::1 fe80::/10 ::ffff:203.0.113.9");
        assert!(e.is_empty(), "{e:?}");
        let want = [
            IpLit::Addr(DOC | 9),
            IpLit::Addr(DOC | 9),
            IpLit::Addr(DOC | 9),
            IpLit::Prefix(0, 0),
            IpLit::Prefix(DOC, 32),
            IpLit::Addr(0),
            IpLit::Addr(1),
            IpLit::Prefix(0xfe80 << 112, 10),
            IpLit::Addr(vinet_checker::mapped(0xcb00_7109)),
        ];
        assert_eq!(t, want.map(Token::Ip).to_vec());
        // An IPv6 literal beside other tokens, and names that look like hex.
        let (t, e) = lex("GROUP_BY_SOURCE(S,2001:db8:bad::9) dead beef:: a==::1;");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(t[4], Token::Ip(IpLit::Addr(DOC | 0xbad << 80 | 9)));
        assert_eq!(
            &t[6..],
            &[
                Token::Ident("dead"),
                Token::Ip(IpLit::Addr(0xbeef << 112)),
                Token::Ident("a"),
                Token::EqEq,
                Token::Ip(IpLit::Addr(1)),
                Token::Semi
            ]
        );
    }

    #[test]
    fn ipv4_mapped_literals_are_ipv4_constants() {
        let c = |s: &str| ip6(s).unwrap().to_const();
        assert_eq!(c("::ffff:203.0.113.9"), Const::Addr(0xcb00_7109));
        assert_eq!(c("::FFFF:cb00:7109"), Const::Addr(0xcb00_7109));
        assert_eq!(c("::ffff:10.0.0.0/104"), Const::Prefix(0x0a00_0000, 8));
        assert_eq!(c("::ffff:0:0/96"), Const::Prefix(0, 0));
        assert_eq!(c("::fffe:0:0/95"), Const::Prefix6(0xfffe << 32, 95), "not inside ::ffff:0:0/96");
        assert!(matches!(ip6("::ffff:0:0/95"), Err((LexErrorKind::HostBitsSet { .. }, _))));
        assert_eq!(c("2001:db8::9"), Const::Addr6(DOC | 9));
        assert_eq!(c("::/0"), Const::Prefix6(0, 0));
        assert_eq!(c("::ffff:0.0.0.0"), Const::Addr(0));
        assert_eq!(parse_dotted("10.0.0.0/8").unwrap().to_const(), Const::Prefix(0x0a00_0000, 8));
    }

    #[test]
    fn bad_ipv6_literals_say_what_and_where() {
        let bad = |s: &str| ip6(s).unwrap_err();
        let why = |s: &str| match bad(s) {
            (LexErrorKind::BadAddress6 { why, .. }, at) => (why, at),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(why("2001:db8::12345"), (Ipv6Error::Group("12345".into()), 10..15));
        assert_eq!(why("2001:db8::g1"), (Ipv6Error::Group("g1".into()), 10..12));
        assert_eq!(why("2001::db8::1"), (Ipv6Error::TwoGaps, 9..11));
        assert_eq!(why("2001:::1"), (Ipv6Error::TwoGaps, 4..7));
        assert_eq!(why("1:2:3:4:5:6:7:8:9"), (Ipv6Error::TooManyGroups(9), 0..17));
        assert_eq!(why("1:2:3:4::5:6:7:8"), (Ipv6Error::TooManyGroups(8), 0..16));
        assert_eq!(why("1:2:3:4:5:6:1.2.3.4:1"), (Ipv6Error::V4NotLast, 12..19));
        assert_eq!(why("1:2:3"), (Ipv6Error::TooFewGroups(3), 0..5));
        assert_eq!(why(":1::2"), (Ipv6Error::LoneColon, 0..1));
        assert_eq!(why("1::2:"), (Ipv6Error::LoneColon, 4..5));
        assert_eq!(why("::ffff:1.2.3.256"), (Ipv6Error::BadV4("1.2.3.256".into()), 7..16));
        assert_eq!(why("::ffff:01.2.3.4"), (Ipv6Error::BadV4("01.2.3.4".into()), 7..15));
        assert_eq!(why("1.2.3.4::"), (Ipv6Error::V4NotLast, 0..7));
        assert_eq!(bad("2001:db8::/129"), (LexErrorKind::BadPrefixLength { text: "2001:db8::/129".into(), max: 128 }, 0..14));
        assert_eq!(bad("::/1280").0, LexErrorKind::BadPrefixLength { text: "::/1280".into(), max: 128 });
        assert_eq!(bad("2001:db8::1/32").0, LexErrorKind::HostBitsSet { text: "2001:db8::1/32".into(), fixed: "2001:db8::/32".into() });
        assert_eq!(
            bad("::ffff:10.0.0.1/104").0,
            LexErrorKind::HostBitsSet { text: "::ffff:10.0.0.1/104".into(), fixed: "10.0.0.0/8".into() }
        );
        // The lexer reports the part at fault, in source offsets, and goes on.
        let (t, e) = lex("X = 2001:db8::12345; Y = 1;");
        assert_eq!(t.len(), 8);
        assert_eq!(e[0].span, Span::new(14, 19));
    }

    /// RFC 5952 section 4 (and its examples): lowercase, leading zeros dropped,
    /// the longest run of zero groups compressed (the first of equal runs), and
    /// never a single zero group.
    #[test]
    fn prints_as_rfc_5952() {
        for (written, canonical) in [
            ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
            ("2001:db8:0:0:0:0:2:1", "2001:db8::2:1"),
            ("2001:db8::0:1", "2001:db8::1"),
            ("2001:db8:0000:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
            ("2001:db8::aaaa:0:0:1", "2001:db8::aaaa:0:0:1"),
            ("2001:DB8::ABCD/128", "2001:db8::abcd/128"),
            ("0:0:0:0:0:0:0:0/0", "::/0"),
            ("0:0:0:0:0:0:0:1", "::1"),
            ("fe80:0000::/10", "fe80::/10"),
            ("::ffff:cb00:7109", "203.0.113.9"),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
            ("::1.2.3.4", "::102:304"),
        ] {
            let (t, e) = lex(written);
            assert!(e.is_empty(), "{written}: {e:?}");
            let [Token::Ip(lit)] = t.as_slice() else { panic!("{written}: {t:?}") };
            assert_eq!(lit.text(), canonical, "{written}");
        }
    }

    fn lit_of(text: &str) -> IpLit {
        let (t, e) = lex(text);
        assert!(e.is_empty(), "{text}: {e:?}");
        match t.as_slice() {
            [Token::Ip(lit)] => *lit,
            other => panic!("{text}: {other:?}"),
        }
    }

    proptest::proptest! {
        /// Every address and prefix prints to text that lexes back to it.
        #[test]
        fn addresses_and_prefixes_round_trip(a: u128, len in 0u8..=128, v4: u32, v4_len in 0u8..=32) {
            for addr in [a, vinet_checker::mapped(v4), a & 0xffff_0000_0000_ffff_0000_0000_0000_0000] {
                proptest::prop_assert_eq!(lit_of(&IpLit::Addr(addr).text()), IpLit::Addr(addr));
                // Any spelling: every group written in full, upper case.
                let full: Vec<String> = (0..8).rev().map(|i| format!("{:04X}", (addr >> (16 * i)) as u16)).collect();
                proptest::prop_assert_eq!(lit_of(&full.join(":")), IpLit::Addr(addr));
            }
            for (net, l) in [(a & vinet_checker::netmask(len), len), (vinet_checker::mapped(v4 & (vinet_checker::netmask(v4_len + 96) as u32)), v4_len + 96)] {
                let p = IpLit::Prefix(net, l);
                proptest::prop_assert_eq!(lit_of(&p.text()), p);
                proptest::prop_assert_eq!(IpLit::of_const(&p.to_const()), Some(p));
            }
        }

        /// The IPv6 parser accepts exactly what std's accepts, with the same value.
        #[test]
        fn accepts_what_std_accepts(s in "[0-9a-fA-F:.]{0,24}", a: u128, cut in 0usize..40, noise in "[0-9a-f:.]{0,3}") {
            let mut written = std::net::Ipv6Addr::from(a).to_string();
            written.insert_str(cut.min(written.len()), &noise);
            for text in [s, written] {
                let std_says = text.parse::<std::net::Ipv6Addr>().ok().map(u128::from);
                proptest::prop_assert_eq!(parse_ipv6(&text).ok(), std_says, "{}", text);
            }
        }
    }

    #[test]
    fn unknown_characters_are_errors() {
        let mut lexer = Token::lexer("a @ b");
        let items: Vec<_> = lexer.by_ref().collect();
        assert!(items[1].is_err());
    }
}
