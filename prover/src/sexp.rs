//! S-expressions: the surface syntax of the lemma library (`lemmas/*.vl`).

/// An S-expression with the line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub enum Sexp {
    /// An atom: a name, a number, an address, a prefix.
    Atom(String, u32),
    /// A string literal.
    Str(String, u32),
    /// A list.
    List(Vec<Sexp>, u32),
}

impl Sexp {
    /// The line it starts on.
    pub fn line(&self) -> u32 {
        match self {
            Sexp::Atom(_, l) | Sexp::Str(_, l) | Sexp::List(_, l) => *l,
        }
    }
    /// The atom's text.
    pub fn atom(&self) -> Option<&str> {
        match self {
            Sexp::Atom(a, _) => Some(a),
            _ => None,
        }
    }
    /// The list's items.
    pub fn list(&self) -> Option<&[Sexp]> {
        match self {
            Sexp::List(v, _) => Some(v),
            _ => None,
        }
    }
}

/// Parse a file of S-expressions. `;` starts a comment. Nesting is limited.
pub fn parse(src: &str) -> Result<Vec<Sexp>, String> {
    let mut stack: Vec<(Vec<Sexp>, u32)> = vec![(vec![], 0)];
    let mut line = 1u32;
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            ';' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '(' => {
                if stack.len() > 200 {
                    return Err(format!("line {line}: nested too deeply"));
                }
                stack.push((vec![], line));
            }
            ')' => {
                let (items, l) = stack.pop().filter(|_| !stack.is_empty()).ok_or(format!("line {line}: unmatched `)`"))?;
                stack.last_mut().ok_or(format!("line {line}: unmatched `)`"))?.0.push(Sexp::List(items, l));
            }
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => s.push(chars.next().ok_or(format!("line {line}: unterminated string"))?),
                        Some(c) => s.push(c),
                        None => return Err(format!("line {line}: unterminated string")),
                    }
                }
                stack.last_mut().expect("bottom frame").0.push(Sexp::Str(s, line));
            }
            c if c.is_whitespace() => {}
            c => {
                let mut a = String::from(c);
                while chars.peek().is_some_and(|&c| !c.is_whitespace() && !"();\"".contains(c)) {
                    a.push(chars.next().expect("peeked"));
                }
                stack.last_mut().expect("bottom frame").0.push(Sexp::Atom(a, line));
            }
        }
    }
    match stack.pop() {
        Some((items, _)) if stack.is_empty() => Ok(items),
        Some((_, l)) => Err(format!("line {l}: unclosed `(`")),
        None => Err("empty".into()),
    }
}
