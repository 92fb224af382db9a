//! The tokens of VInet, as a logos automaton.
//!
//! Keywords are case-insensitive (`ignore(case)`): the paper mixes `IF`
//! and `if`. Routine names (`DISCARD`, ...) and the built-in names
//! (`AllPackets`, `THIS_IP`, ...) are plain identifiers here; they are
//! recognised case-insensitively by name resolution, so that a misspelt
//! routine gets a "did you mean" rather than a syntax error.
//!
//! Literals are decoded here, in the callbacks, and never fail: a malformed
//! literal (`300.1.2.3`, a number past u64, a bad escape, an unterminated
//! string) records a [`LexError`] in the lexer's extras and yields a
//! placeholder value, so parsing goes on and later errors are still found.

use logos::{Lexer, Logos};

use crate::ast::Span;

/// What is wrong with a piece of text the lexer read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexErrorKind {
    /// A character that starts no token.
    UnexpectedChar(char),
    /// A dotted literal that is not a valid IPv4 address or prefix.
    BadAddress(String),
    /// A prefix length above 32.
    BadPrefixLength(String),
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

/// An IPv4 literal: an address `1.2.3.4` or a prefix `10.1.0.0/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpLit {
    /// An address, host byte order.
    Addr(u32),
    /// A prefix: network (host bits zero) and length.
    Prefix(u32, u8),
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
    /// An address or a prefix (any dotted digits; validated by the callback).
    #[regex(r"[0-9]+(\.[0-9]+)+(/[0-9]+)?", dotted)]
    Dotted(IpLit),
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
            Token::Dotted(IpLit::Addr(_)) => "an IP address".into(),
            Token::Dotted(IpLit::Prefix(..)) => "a prefix".into(),
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
            Token::Dotted(_) => "address",
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
/// prefix a length of at most 32 and zero host bits.
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
    let Some(len_text) = len_text else { return Ok(IpLit::Addr(addr)) };
    let len: u8 = match len_text.parse() {
        Ok(l) if l <= 32 && len_text.len() <= 2 => l,
        _ => return Err(LexErrorKind::BadPrefixLength(text.into())),
    };
    let mask = vinet_checker::netmask(len);
    if addr & !mask != 0 {
        let fixed = format!("{}/{len}", fmt_addr(addr & mask));
        return Err(LexErrorKind::HostBitsSet { text: text.into(), fixed });
    }
    Ok(IpLit::Prefix(addr, len))
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

/// Format an address as dotted quads.
pub fn fmt_addr(a: u32) -> String {
    let [x, y, z, w] = a.to_be_bytes();
    format!("{x}.{y}.{z}.{w}")
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
                Token::Dotted(IpLit::Prefix(0x0a01_0000, 16)),
                Token::Dotted(IpLit::Addr(0x0102_0304)),
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

    #[test]
    fn unknown_characters_are_errors() {
        let mut lexer = Token::lexer("a @ b");
        let items: Vec<_> = lexer.by_ref().collect();
        assert!(items[1].is_err());
    }
}
