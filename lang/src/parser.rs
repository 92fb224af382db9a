//! Driving the lalrpop parser: lexing, parsing with error recovery, and
//! turning lalrpop's errors into diagnostics an operator can read.

use lalrpop_util::ParseError;

use crate::ast::{BinOp, Expr, ExprKind, Ident, Program, Span, Stmt, StmtKind};
use crate::diagnostics::Diagnostic;
use crate::lexer::{lex, Spanned};
use crate::tokens::{Ipv6Error, LexError, LexErrorKind, Token};

/// Most syntax errors reported in one run; past that they are mostly echoes.
const MAX_SYNTAX_ERRORS: usize = 20;

/// What parsing found.
#[derive(Debug)]
pub struct Parsed {
    /// The tree (with error nodes where recovery happened), unless the parse
    /// could not finish.
    pub program: Option<Program>,
    /// How many tokens the source has.
    pub tokens: usize,
    /// Lexical errors: malformed literals and stray characters. They do not
    /// stop the parse; the tree holds placeholders for them.
    pub lexical: Vec<Diagnostic>,
    /// Syntax errors (including nesting past the limits).
    pub syntax: Vec<Diagnostic>,
}

/// Parse `source`.
pub fn parse(source: &str) -> Parsed {
    let (tokens, lex_errors) = lex(source);
    let lexical: Vec<Diagnostic> = lex_errors.iter().map(lex_diagnostic).collect();
    let mut diags = Vec::new();
    let mut recovered = Vec::new();
    let result = crate::grammar::ProgramParser::new().parse(&mut recovered, &mut diags, tokens.iter().cloned());
    let mut syntax: Vec<ParseError<usize, Token<'_>, std::convert::Infallible>> = recovered.into_iter().map(|r| r.error).collect();
    let program = match result {
        Ok(p) => Some(p),
        Err(e) => {
            syntax.push(e);
            None
        }
    };
    let stray: Vec<Span> = lex_errors.iter().filter(|e| matches!(e.kind, LexErrorKind::UnexpectedChar(_))).map(|e| e.span).collect();
    for e in syntax.into_iter().take(MAX_SYNTAX_ERRORS) {
        if follows_stray_char(&e, &tokens, &stray) {
            continue;
        }
        diags.push(syntax_diagnostic(&e, &tokens, source.len()));
    }
    Parsed { program, tokens: tokens.len(), lexical, syntax: diags }
}

/// The diagnostic for a lexical error.
pub fn lex_diagnostic(e: &LexError) -> Diagnostic {
    match &e.kind {
        LexErrorKind::UnexpectedChar(c) => Diagnostic::error(format!("unexpected character `{c}`"))
            .at(e.span, "no VInet token starts with this")
            .help("names are letters, digits and `_`; text goes between double quotes"),
        LexErrorKind::BadAddress(text) => Diagnostic::error(format!("`{text}` is not a valid IP address"))
            .at(e.span, "not an IPv4 address")
            .help("an address is four numbers from 0 to 255, like 203.0.113.9; a prefix adds /LENGTH, like 10.1.0.0/16"),
        LexErrorKind::BadAddress6 { text, why } => {
            Diagnostic::error(format!("`{text}` is not a valid IPv6 address")).at(e.span, ipv6_problem(why)).help(IPV6_HELP)
        }
        LexErrorKind::BadPrefixLength { text, max: 32 } => Diagnostic::error(format!("`{text}` has a prefix length above 32"))
            .at(e.span, "not an IPv4 prefix")
            .help("an IPv4 prefix length is 0 to 32, like 10.1.0.0/16"),
        LexErrorKind::BadPrefixLength { text, max } => Diagnostic::error(format!("`{text}` has a prefix length above {max}"))
            .at(e.span, "not an IPv6 prefix")
            .help(format!("an IPv6 prefix length is 0 to {max}, like 2001:db8::/32")),
        LexErrorKind::HostBitsSet { text, fixed } => Diagnostic::error(format!("the prefix `{text}` has host bits set"))
            .at(e.span, "bits past the prefix length must be zero")
            .help(format!("did you mean `{fixed}`?")),
        LexErrorKind::NumberTooLarge => {
            Diagnostic::error("number too large").at(e.span, "does not fit 64 bits").note(format!("the largest number is {}", u64::MAX))
        }
        LexErrorKind::UnterminatedString => Diagnostic::error("unterminated string")
            .at(e.span, "this string has no closing `\"` on its line")
            .help("close the string with `\"`; write `\\n` for a line break inside it"),
        LexErrorKind::BadEscape(esc) => Diagnostic::error(format!("unknown escape `{esc}` in a string"))
            .at(e.span, "unknown escape")
            .help("the escapes are \\\" \\\\ \\n \\t and \\xHH"),
        LexErrorKind::StringTooLong(n) => Diagnostic::error(format!("string of {n} bytes is too long"))
            .at(Span::new(e.span.start, e.span.start + 1), "this string")
            .note(format!("a string has at most {} bytes, what one packet can carry", crate::tokens::MAX_STRING)),
        LexErrorKind::NonAsciiEscape(esc) => Diagnostic::error(format!("the escape `{esc}` is not ASCII"))
            .at(e.span, "above \\x7f")
            .help("strings are UTF-8 text: write the character itself"),
    }
}

/// How an IPv6 address is written, for the help line of a malformed one.
const IPV6_HELP: &str =
    "an IPv6 address is eight groups of one to four hex digits separated by `:`, with one `::` for a run of zero groups, \
     like 2001:db8::9; a prefix adds /LENGTH (0 to 128), like 2001:db8::/32";

/// The label under the part of an IPv6 literal at fault.
fn ipv6_problem(why: &Ipv6Error) -> String {
    match why {
        Ipv6Error::Group(g) => format!("`{g}` is not a group of one to four hex digits"),
        Ipv6Error::TwoGaps => "a second `::`: it may stand for only one run of zero groups".into(),
        Ipv6Error::TooManyGroups(n) => format!("{n} groups are more than 128 bits (eight groups, or at most seven beside `::`)"),
        Ipv6Error::TooFewGroups(n) => format!("{n} groups and no `::`: an address has eight"),
        Ipv6Error::LoneColon => "a single `:` cannot start or end an address (`::` can)".into(),
        Ipv6Error::BadV4(v4) => format!("`{v4}` is not an IPv4 address (four numbers from 0 to 255, without leading zeros)"),
        Ipv6Error::V4NotLast => "an IPv4 address may be written only as the last 32 bits, like ::ffff:203.0.113.9".into(),
    }
}

/// A syntax error at the first token after a stray character is an echo of
/// that character's error: it is not reported again.
fn follows_stray_char(e: &ParseError<usize, Token<'_>, std::convert::Infallible>, tokens: &[Spanned<'_>], stray: &[Span]) -> bool {
    let at = match e {
        ParseError::UnrecognizedToken { token: (l, _, _), .. } => *l,
        ParseError::UnrecognizedEof { location, .. } => *location,
        _ => return false,
    };
    let prev_end = tokens.iter().take_while(|(l, _, _)| *l < at).last().map_or(0, |(_, _, r)| *r);
    stray.iter().any(|s| s.start >= prev_end && s.end <= at.max(prev_end))
}

fn describe_expected(name: &str) -> String {
    let name = name.trim_matches('"');
    match name {
        "name" => "a name".into(),
        "number" => "a number".into(),
        "address" => "an address".into(),
        "string" => "a string".into(),
        other => format!("`{other}`"),
    }
}

const OPERATORS: &[&str] = &["or", "and", "==", "!=", "<", "<=", ">", ">=", "in", "&", "+", "-", "*"];

fn summarize_expected(expected: &[String]) -> String {
    let names: Vec<&str> = expected.iter().map(|e| e.trim_matches('"')).collect();
    let non_ops: Vec<&str> = names.iter().copied().filter(|n| !OPERATORS.contains(n)).collect();
    let has_ops = non_ops.len() < names.len();
    let mut shown: Vec<String> = if non_ops.is_empty() {
        names.iter().map(|n| describe_expected(n)).collect()
    } else {
        non_ops.iter().map(|n| describe_expected(n)).collect()
    };
    if shown.len() > 6 {
        shown.truncate(5);
        shown.push("...".into());
    }
    if has_ops && !non_ops.is_empty() {
        shown.push("an operator".into());
    }
    match shown.len() {
        0 => "more input".into(),
        1 => shown.remove(0),
        _ => {
            let last = shown.pop().unwrap_or_default();
            format!("{} or {last}", shown.join(", "))
        }
    }
}

/// The `begin` or `{` still open at the end of the tokens, if any.
fn unclosed_block(tokens: &[Spanned<'_>]) -> Option<(Span, &'static str)> {
    let mut open = Vec::new();
    for (l, t, r) in tokens {
        match t {
            Token::Begin => open.push((Span::new(*l, *r), "begin")),
            Token::LBrace => open.push((Span::new(*l, *r), "{")),
            Token::End | Token::RBrace => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

/// The `(` still open just before `at`, if any.
fn unclosed_paren(tokens: &[Spanned<'_>], at: usize) -> Option<Span> {
    let mut open = Vec::new();
    for (l, t, r) in tokens.iter().take_while(|(l, _, _)| *l < at) {
        match t {
            Token::LParen => open.push(Span::new(*l, *r)),
            Token::RParen => {
                open.pop();
            }
            // A statement boundary: a `(` before it cannot still be open.
            Token::Semi => open.clear(),
            _ => {}
        }
    }
    open.pop()
}

fn syntax_diagnostic(e: &ParseError<usize, Token<'_>, std::convert::Infallible>, tokens: &[Spanned<'_>], eof: usize) -> Diagnostic {
    let (span, found, expected) = match e {
        ParseError::UnrecognizedToken { token: (l, t, r), expected } => (Span::new(*l, *r), Some(t), expected),
        ParseError::UnrecognizedEof { location, expected } => (Span::new(*location, *location), None, expected),
        ParseError::ExtraToken { token: (l, t, r) } => {
            return Diagnostic::error(format!("unexpected {}", t.describe())).at(Span::new(*l, *r), "not expected here")
        }
        ParseError::InvalidToken { location } => return Diagnostic::error("invalid token").at(Span::new(*location, *location + 1), "here"),
        ParseError::User { error } => match *error {},
    };
    let wants = |s: &str| expected.iter().any(|e| e.trim_matches('"') == s);
    let found_text = found.map_or("the end of the file".to_string(), |t| t.describe());
    let open = unclosed_paren(tokens, span.start.min(eof));
    if wants(")") && !matches!(found, Some(Token::Comma)) && open.is_some() && !wants("name") {
        let mut d = Diagnostic::error(format!("missing `)`: expected `)`, found {found_text}")).at(span, "expected `)` before this");
        if let Some(open) = open {
            d = d.also(open, "this `(` is not closed");
        }
        return d;
    }
    if found.is_none() && (wants("end") || wants("}")) {
        if let Some((open, kw)) = unclosed_block(tokens) {
            let close = if kw == "begin" { "end" } else { "}" };
            return Diagnostic::error(format!("missing `{close}`: the file ends inside a block"))
                .at(span, "the file ends here")
                .also(open, format!("this `{kw}` is not closed"))
                .help(format!("close the block with `{close}`"));
        }
    }
    let mut d = Diagnostic::error(format!("expected {}, found {found_text}", summarize_expected(expected)));
    d = d.at(span, if found.is_some() { "unexpected here" } else { "the file ends here" });
    if matches!(found, Some(Token::Assign)) {
        d = d.help("to compare two values, write `==`");
    } else if wants(";") && found.is_some() {
        d = d.help("a statement ends with `;`");
    }
    d
}

// ---------------------------------------------------------------- helpers used by the grammar's actions

/// `a OP b`.
pub(crate) fn bin(op: BinOp, a: Expr, b: Expr, l: usize, r: usize, diags: &mut Vec<Diagnostic>) -> Expr {
    Expr::new(ExprKind::Binary { op, lhs: Box::new(a), rhs: Box::new(b) }, Span::new(l, r), diags)
}

/// `if c then t`.
pub(crate) fn if_then(h: (usize, Expr), t: Stmt, r: usize, diags: &mut Vec<Diagnostic>) -> Stmt {
    Stmt::new(StmtKind::If { cond: h.1, then: Box::new(t), els: None }, Span::new(h.0, r), diags)
}

/// `if c then t else e`.
pub(crate) fn if_else(h: (usize, Expr), t: Stmt, e: Stmt, r: usize, diags: &mut Vec<Diagnostic>) -> Stmt {
    Stmt::new(StmtKind::If { cond: h.1, then: Box::new(t), els: Some(Box::new(e)) }, Span::new(h.0, r), diags)
}

/// `while c do b`.
pub(crate) fn while_(h: (usize, Expr), b: Stmt, r: usize, diags: &mut Vec<Diagnostic>) -> Stmt {
    Stmt::new(StmtKind::While { cond: h.1, body: Box::new(b) }, Span::new(h.0, r), diags)
}

/// `foreach i do b`.
pub(crate) fn foreach(h: (usize, Ident), b: Stmt, r: usize, diags: &mut Vec<Diagnostic>) -> Stmt {
    Stmt::new(StmtKind::Foreach { index: h.1, body: Box::new(b) }, Span::new(h.0, r), diags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Item;

    fn ok(src: &str) -> Program {
        let p = parse(src);
        assert!(p.lexical.is_empty() && p.syntax.is_empty(), "{src}: {p:#?}");
        p.program.expect("parsed")
    }

    fn stmts(p: &Program) -> Vec<&Stmt> {
        p.items.iter().filter_map(|i| if let Item::Stmt(s) = i { Some(s) } else { None }).collect()
    }

    #[test]
    fn pascal_semicolons() {
        for src in [
            "if C then DISCARD(A) else DISCARD(B);",
            "if C then DISCARD(A); else DISCARD(B);",
            "begin DISCARD(A); DISCARD(B) end",
            "begin DISCARD(A); DISCARD(B); end;",
            "{ DISCARD(A) } DISCARD(B)",
            "foreach i do begin X = 1 end; Y = 2",
            "if A then if B then X = 1 else X = 2",
        ] {
            ok(src);
        }
    }

    #[test]
    fn dangling_else_binds_to_the_inner_if() {
        let p = ok("if A then if B then X = 1 else X = 2;");
        let s = stmts(&p);
        assert_eq!(s.len(), 1);
        let StmtKind::If { then, els, .. } = &s[0].kind else { panic!() };
        assert!(els.is_none());
        assert!(matches!(&then.kind, StmtKind::If { els: Some(_), .. }));
    }

    #[test]
    fn precedence() {
        let p = ok("X = not A == B and C or D;");
        let StmtKind::Assign { value, .. } = &stmts(&p)[0].kind else { panic!() };
        let ExprKind::Binary { op: BinOp::Or, lhs, .. } = &value.kind else { panic!("{value:?}") };
        let ExprKind::Binary { op: BinOp::And, lhs, .. } = &lhs.kind else { panic!() };
        assert!(matches!(&lhs.kind, ExprKind::Unary { .. }));
        let p = ok("X = D & 255.255.255.0 == Y + 1 * 2;");
        let StmtKind::Assign { value, .. } = &stmts(&p)[0].kind else { panic!() };
        assert!(matches!(&value.kind, ExprKind::Binary { op: BinOp::Eq, .. }));
    }

    #[test]
    fn recovers_and_reports_several_errors() {
        let d = parse("X = ;\nY = 1 2;\nZ = 3;").syntax;
        assert_eq!(d.len(), 2, "{d:#?}");
    }

    #[test]
    fn missing_paren() {
        let d = parse("DISCARD(GROUP_BY_SOURCE(A, B);").syntax;
        assert_eq!(d.len(), 1, "{d:#?}");
        assert!(d[0].message.contains("missing `)`"), "{:?}", d[0]);
        assert_eq!(d[0].secondary[0].0, Span::new(7, 8));
    }

    #[test]
    fn deep_nesting_is_one_error() {
        let depth = 10_000;
        let src = format!("X = {}1{};", "(not ".repeat(depth), ")".repeat(depth));
        let d = parse(&src).syntax;
        assert_eq!(d.len(), 1, "{d:#?}");
        assert!(d[0].message.contains("nested too deeply"));
    }
}
