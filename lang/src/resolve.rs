//! Name resolution and type checking: from the parsed tree to the checked
//! program ([`crate::types::Program`]).
//!
//! One pass over the statements, in order, keeps:
//! - a scope from names to variables, grouping indices and their families;
//! - which variables are *definitely assigned*, exactly as the bytecode
//!   validator computes it (an `if` keeps what both branches assign; a loop
//!   keeps what was assigned before it; a `foreach` body's new variables are
//!   local to it), so every accepted program lowers to a module that
//!   validates;
//! - the constant values of number variables on the straight-line path, to
//!   find loop bounds ([`crate::bounds`]).
//!
//! Errors are collected, not thrown: an expression with an error gets the type
//! [`Type::Error`], which fits everywhere, so one mistake gives one message.

use std::collections::{HashMap, HashSet};

use vinet_checker::bytecode::{Class, CmpOp, Const, MAX_NESTING};
use vinet_vocab::names::{class_name, class_named, class_names};

use crate::ast::{self, ExprKind as AK, Ident, Item, Literal, Span, StmtKind as SK};
use crate::bounds::{self, BoundError, Known};
use crate::diagnostics::Diagnostic;
use crate::tokens::IpLit;
use crate::types::{BinOp, By, Expr, ExprKind, Field, PacketField, ParamDecl, Program, Routine, Stmt, StmtKind, Type, Var, VarId};

/// The routines, as they are written (matched case-insensitively).
pub const ROUTINES: &[&str] = &vinet_vocab::names::ROUTINE_NAMES;

/// The built-in names, as they are written (matched case-insensitively):
/// the four built-in values, then the [`NAMED_NUMBERS`].
pub const BUILTINS: &[&str] =
    &["AllPackets", "OnPackets", "THIS_IP", "THIS_SUBNET_IP", "ICMP", "TCP", "UDP", "FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

/// The built-in named numbers: IP protocols and TCP flags (one bit each, so
/// they combine with `+`: `SYN + ACK`). Each is a numeric constant.
pub const NAMED_NUMBERS: &[(&str, u64)] = &[
    ("ICMP", 1),
    ("TCP", 6),
    ("UDP", 17),
    ("FIN", 1),
    ("SYN", 2),
    ("RST", 4),
    ("PSH", 8),
    ("ACK", 16),
    ("URG", 32),
    ("ECE", 64),
    ("CWR", 128),
];

/// The routines that narrow or group by a transport field, and the field.
const BY_FIELD: &[(&str, PacketField)] = &[
    ("GROUP_BY_PROTOCOL", PacketField::Proto),
    ("GROUP_BY_SOURCE_PORT", PacketField::SrcPort),
    ("GROUP_BY_DESTINATION_PORT", PacketField::DstPort),
];

/// The field a GROUP_BY_PROTOCOL / _SOURCE_PORT / _DESTINATION_PORT groups by.
fn by_field(r: &str) -> Option<PacketField> {
    BY_FIELD.iter().find(|(n, _)| *n == r).map(|&(_, f)| f)
}

/// The largest value of a field (a larger one matches no packet).
fn field_max(f: PacketField) -> u64 {
    match f {
        PacketField::Proto | PacketField::TcpFlags => 255,
        PacketField::SrcPort | PacketField::DstPort => 65_535,
    }
}

/// A value of a field, for a help line.
fn example_value(f: PacketField) -> &'static str {
    match f {
        PacketField::Proto => "TCP",
        PacketField::SrcPort | PacketField::DstPort => "80",
        PacketField::TcpFlags => "SYN",
    }
}

/// A field's value in an operator's words.
fn field_words(f: PacketField) -> &'static str {
    match f {
        PacketField::Proto => "protocol",
        PacketField::SrcPort | PacketField::DstPort => "port",
        PacketField::TcpFlags => "flags",
    }
}

/// The LIFETIME units and their length in seconds.
const UNITS: &[(&str, u64)] = &vinet_vocab::names::LIFETIME_UNITS;

const MINIMAL_PROGRAM: &str = "LIFETIME = 1 days\n      MyPackets = GROUP_BY_DESTINATION(AllPackets, THIS_IP);";

fn routine(name: &str) -> Option<&'static str> {
    ROUTINES.iter().copied().find(|r| r.eq_ignore_ascii_case(name))
}

fn builtin(name: &str) -> Option<&'static str> {
    BUILTINS.iter().copied().find(|b| b.eq_ignore_ascii_case(name))
}

/// What the one-argument form of a grouping routine groups by.
fn grouping_by(r: &str) -> Option<By> {
    match r {
        "GROUP_BY_DESTINATION" => Some(By::Addr(Field::Dst)),
        "GROUP_BY_SOURCE" => Some(By::Addr(Field::Src)),
        _ => by_field(r).map(By::Number),
    }
}

/// The value of a built-in named number (`TCP`, `SYN`, ...).
fn named_number(name: &str) -> Option<u64> {
    NAMED_NUMBERS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, v)| v)
}

/// Edit distance between two names, ignoring ASCII case.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `name`, if close enough to be a likely typo.
pub fn closest<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// What a name in scope stands for.
#[derive(Clone, Debug)]
enum Binding {
    Var(VarId),
    /// A grouping index `i`: the grouping variable and its two families.
    Index {
        groups: VarId,
        key: VarId,
        set: VarId,
        span: Span,
    },
    /// A family `Key(i)` or `Set(i)`.
    Family {
        index: String,
        var: VarId,
    },
}

/// How each family name is used in the program, to tell keys from sets: as
/// a packet set, or as a key (an address or a number).
#[derive(Default, Debug)]
struct Votes {
    set: HashMap<String, u32>,
    key: HashMap<String, u32>,
}

impl Votes {
    fn collect_stmt(&mut self, s: &ast::Stmt) {
        match &s.kind {
            SK::Assign { targets, value } => {
                targets.iter().for_each(|t| self.collect(t));
                self.collect(value);
            }
            SK::Expr(e) => self.collect(e),
            SK::If { cond, then, els } => {
                self.collect(cond);
                self.collect_stmt(then);
                if let Some(e) = els {
                    self.collect_stmt(e);
                }
            }
            SK::While { cond, body } => {
                self.collect(cond);
                self.collect_stmt(body);
            }
            SK::Foreach { body, .. } => self.collect_stmt(body),
            SK::Block(b) => b.iter().for_each(|s| self.collect_stmt(s)),
            SK::Error => {}
        }
    }

    fn family(e: &ast::Expr) -> Option<&str> {
        match &e.kind {
            AK::Call { callee, args } if routine(&callee.name).is_none() && args.len() == 1 => Some(&callee.name),
            _ => None,
        }
    }

    fn vote(map: &mut HashMap<String, u32>, e: &ast::Expr) {
        if let Some(f) = Votes::family(e) {
            *map.entry(f.to_string()).or_default() += 1;
        }
    }

    /// An address or a number, written as a literal or a built-in name.
    fn is_key(e: &ast::Expr) -> bool {
        match &e.kind {
            AK::Lit(Literal::Addr(_) | Literal::Num(_)) => true,
            AK::Name(n) => n.name.eq_ignore_ascii_case("THIS_IP") || named_number(&n.name).is_some(),
            _ => false,
        }
    }

    fn collect(&mut self, e: &ast::Expr) {
        match &e.kind {
            AK::Call { callee, args } => {
                if let Some(r) = routine(&callee.name) {
                    for (i, a) in args.iter().enumerate() {
                        let key = match r {
                            "GENERATE" => i < 2,
                            "GROUP_BY_DESTINATION" | "GROUP_BY_SOURCE" => i == 1,
                            "TCP_FLAGS" => i >= 1,
                            _ => by_field(r).is_some() && i >= 1,
                        };
                        let set = i == 0 && r != "GENERATE";
                        if key {
                            Votes::vote(&mut self.key, a);
                        } else if set {
                            Votes::vote(&mut self.set, a);
                        }
                    }
                }
                args.iter().for_each(|a| self.collect(a));
            }
            AK::Binary { op, lhs, rhs } => {
                use ast::BinOp as B;
                match op {
                    B::In => Votes::vote(&mut self.key, lhs),
                    // Addresses (`&`) or numbers (the rest) on both sides.
                    B::Mask | B::Lt | B::Le | B::Gt | B::Ge | B::Add | B::Sub | B::Mul => {
                        Votes::vote(&mut self.key, lhs);
                        Votes::vote(&mut self.key, rhs);
                    }
                    B::Eq | B::Ne => {
                        if Votes::is_key(rhs) {
                            Votes::vote(&mut self.key, lhs);
                        }
                        if Votes::is_key(lhs) {
                            Votes::vote(&mut self.key, rhs);
                        }
                    }
                    B::And | B::Or => {}
                }
                self.collect(lhs);
                self.collect(rhs);
            }
            AK::Unary { operand, .. } => self.collect(operand),
            AK::Lit(_) | AK::Name(_) | AK::Error => {}
        }
    }

    /// Is the first family of `F1(i), F2(i)` the packet set?
    fn set_first(&self, first: &str, second: &str) -> bool {
        let n = |m: &HashMap<String, u32>, k: &str| m.get(k).copied().unwrap_or(0);
        let says_set_first = n(&self.set, first) > 0 || n(&self.key, second) > 0;
        let says_key_first = n(&self.key, first) > 0 || n(&self.set, second) > 0;
        says_set_first && !says_key_first
    }
}

fn names_in(e: &ast::Expr, out: &mut HashSet<String>) {
    match &e.kind {
        AK::Name(n) => {
            out.insert(n.name.clone());
        }
        AK::Call { args, .. } => args.iter().for_each(|a| names_in(a, out)),
        AK::Binary { lhs, rhs, .. } => {
            names_in(lhs, out);
            names_in(rhs, out);
        }
        AK::Unary { operand, .. } => names_in(operand, out),
        AK::Lit(_) | AK::Error => {}
    }
}

fn names_in_stmt(s: &ast::Stmt, out: &mut HashSet<String>) {
    match &s.kind {
        SK::Assign { value, .. } => names_in(value, out),
        SK::Expr(e) => names_in(e, out),
        SK::If { cond, then, els } => {
            names_in(cond, out);
            names_in_stmt(then, out);
            if let Some(e) = els {
                names_in_stmt(e, out);
            }
        }
        SK::While { cond, body } => {
            names_in(cond, out);
            names_in_stmt(body, out);
        }
        SK::Foreach { body, .. } => names_in_stmt(body, out),
        SK::Block(b) => b.iter().for_each(|s| names_in_stmt(s, out)),
        SK::Error => {}
    }
}

/// Plain names assigned anywhere in a statement.
fn assigned_names(s: &ast::Stmt, out: &mut HashSet<String>) {
    match &s.kind {
        SK::Assign { targets, .. } => {
            for t in targets {
                if let AK::Name(n) = &t.kind {
                    out.insert(n.name.clone());
                }
            }
        }
        SK::If { then, els, .. } => {
            assigned_names(then, out);
            if let Some(e) = els {
                assigned_names(e, out);
            }
        }
        SK::While { body, .. } | SK::Foreach { body, .. } => assigned_names(body, out),
        SK::Block(b) => b.iter().for_each(|s| assigned_names(s, out)),
        SK::Expr(_) | SK::Error => {}
    }
}

/// The checker's state. See the module documentation.
struct Checker {
    diags: Vec<Diagnostic>,
    vars: Vec<Var>,
    params: Vec<ParamDecl>,
    param_ix: HashMap<String, usize>,
    scope: HashMap<String, Binding>,
    assigned: Vec<bool>,
    known: Known,
    /// The key families of the groupings by number (number variables whose
    /// value is known only when the program runs).
    num_keys: HashSet<VarId>,
    /// Names local to a `foreach` that has ended: name -> the foreach's head.
    dead: HashMap<String, Span>,
    /// Names declared in each enclosing `foreach` body.
    frames: Vec<Vec<String>>,
    /// Grouping indices being iterated.
    active: Vec<String>,
    /// For each enclosing `foreach`: the first variable id made inside its
    /// body and where the loop starts. Its body may assign only variables
    /// made inside it: nothing computed from one group leaves the loop (the
    /// bytecode validator's rule).
    floors: Vec<(VarId, Span)>,
    votes: Votes,
    discards: Option<Span>,
    generates: Option<Span>,
    nesting: usize,
}

/// Check a parsed program. `cli_params` are the `--param` values, already
/// parsed. Returns the checked program if there was no error, and every
/// diagnostic (errors and warnings).
pub fn check(program: &ast::Program, cli_params: &[(String, Const)]) -> (Option<Program>, Vec<Diagnostic>) {
    let mut c = Checker {
        diags: vec![],
        vars: vec![],
        params: vec![],
        param_ix: HashMap::new(),
        scope: HashMap::new(),
        assigned: vec![],
        known: Known::new(),
        dead: HashMap::new(),
        frames: vec![],
        active: vec![],
        floors: vec![],
        votes: Votes::default(),
        num_keys: HashSet::new(),
        discards: None,
        generates: None,
        nesting: 0,
    };
    let header = c.header(program, cli_params);
    let stmts: Vec<&ast::Stmt> = program.items.iter().filter_map(|i| if let Item::Stmt(s) = i { Some(s) } else { None }).collect();
    for s in &stmts {
        c.votes.collect_stmt(s);
    }
    let mut body = vec![];
    for s in &stmts {
        c.stmt(s, &mut body);
    }
    let class = c.class(header.class);
    let has_errors = c.diags.iter().any(|d| d.severity == crate::diagnostics::Severity::Error);
    match (header.lifetime, class) {
        (Some(lifetime_secs), Some(class)) if !has_errors => {
            let p = Program { lifetime_secs, class, params: c.params, vars: c.vars, body };
            (Some(p), c.diags)
        }
        _ => (None, c.diags),
    }
}

struct Header {
    lifetime: Option<u64>,
    class: Option<(Class, Span)>,
}

impl Checker {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    // ------------------------------------------------------------ header

    fn header(&mut self, program: &ast::Program, cli_params: &[(String, Const)]) -> Header {
        let mut lifetime: Option<(u64, Span)> = None;
        let mut class: Option<(Class, Span)> = None;
        let mut first_stmt: Option<Span> = None;
        let mut lifetime_seen: Option<Span> = None;
        for item in &program.items {
            let late = |this: &mut Self, span: Span, what: &str| {
                if let Some(first) = first_stmt {
                    this.error(
                        Diagnostic::error(format!("{what} must come before the statements"))
                            .at(span, format!("{what} after a statement"))
                            .also(first, "the first statement")
                            .help("move it to the top of the file, after LIFETIME"),
                    );
                }
            };
            match item {
                Item::Stmt(s) => {
                    first_stmt.get_or_insert(s.span);
                }
                Item::Lifetime { amount, amount_span, unit, span } => {
                    late(self, *span, "LIFETIME");
                    if let Some(first) = lifetime_seen {
                        self.error(
                            Diagnostic::error("LIFETIME is declared twice")
                                .at(*span, "second LIFETIME")
                                .also(first, "first declared here")
                                .help("a program has exactly one LIFETIME"),
                        );
                        continue;
                    }
                    lifetime_seen = Some(*span);
                    lifetime = self.lifetime(*amount, *amount_span, unit).map(|s| (s, *span));
                }
                Item::Class { value, span } => {
                    late(self, *span, "CLASS");
                    if let Some((_, first)) = class {
                        self.error(
                            Diagnostic::error("CLASS is declared twice").at(*span, "second CLASS").also(first, "first declared here"),
                        );
                        continue;
                    }
                    let c = match class_named(&value.name.to_ascii_lowercase()) {
                        Some(c) => Some(c),
                        None => {
                            let mut d = Diagnostic::error(format!("unknown CLASS `{}`", value.name))
                                .at(value.span, "not a class")
                                .help("the classes are filtering, multicast and monitoring");
                            if let Some(s) = closest(&value.name, class_names()) {
                                d = d.help(format!("did you mean `{s}`?"));
                            }
                            self.error(d);
                            None
                        }
                    };
                    if let Some(c) = c {
                        class = Some((c, value.span));
                    }
                }
                Item::Param { name, value, value_span, span } => {
                    late(self, *span, "PARAM");
                    self.declare_param(name, value, *value_span, *span);
                }
            }
        }
        if lifetime_seen.is_none() {
            let at = program.items.first().map_or(Span::new(0, 0), |i| match i {
                Item::Stmt(s) => Span::new(s.span.start, s.span.start),
                Item::Class { span, .. } | Item::Param { span, .. } | Item::Lifetime { span, .. } => Span::new(span.start, span.start),
            });
            self.error(
                Diagnostic::error("missing LIFETIME")
                    .at(at, "the program should start with its LIFETIME")
                    .help("begin the program with how long it should run, like `LIFETIME = 2 days`"),
            );
        }
        self.cli_params(program, cli_params);
        Header { lifetime: lifetime.map(|(s, _)| s), class }
    }

    fn lifetime(&mut self, amount: u64, amount_span: Span, unit: &Ident) -> Option<u64> {
        let lower = unit.name.to_ascii_lowercase();
        let Some(&(_, secs)) = UNITS.iter().find(|(u, _)| *u == lower) else {
            let mut d = Diagnostic::error(format!("unknown LIFETIME unit `{}`", unit.name))
                .at(unit.span, "not a unit of time")
                .help("write the lifetime in seconds, minutes, hours (or hrs) or days, like `LIFETIME = 2 days`");
            if let Some(s) = closest(&unit.name, UNITS.iter().map(|(u, _)| *u)) {
                d = d.help(format!("did you mean `{s}`?"));
            }
            self.error(d);
            return None;
        };
        if amount == 0 {
            self.error(Diagnostic::error("a LIFETIME of zero").at(amount_span, "must be at least 1"));
            return None;
        }
        match amount.checked_mul(secs) {
            Some(s) => Some(s),
            None => {
                self.error(Diagnostic::error("LIFETIME too long").at(amount_span, "this many seconds do not fit 64 bits"));
                None
            }
        }
    }

    fn reserved(&mut self, name: &Ident, what: &str) -> bool {
        if let Some(r) = routine(&name.name) {
            self.error(
                Diagnostic::error(format!("`{}` is the routine {r}; it cannot be {what}", name.name))
                    .at(name.span, "reserved name")
                    .help("choose another name"),
            );
            return true;
        }
        if let Some(b) = builtin(&name.name) {
            self.error(
                Diagnostic::error(format!("`{}` is the built-in {b}; it cannot be {what}", name.name))
                    .at(name.span, "reserved name")
                    .help("choose another name"),
            );
            return true;
        }
        false
    }

    fn declare_param(&mut self, name: &Ident, value: &Literal, value_span: Span, span: Span) {
        if self.reserved(name, "a PARAM") {
            return;
        }
        if let Some(&ix) = self.param_ix.get(&name.name) {
            let first = self.params[ix].span.unwrap_or_default();
            self.error(
                Diagnostic::error(format!("PARAM `{}` is declared twice", name.name))
                    .at(name.span, "declared again")
                    .also(first, "first declared here"),
            );
            return;
        }
        let value = match value {
            Literal::Num(n) => Const::Num(*n),
            Literal::Addr(a) => IpLit::Addr(*a).to_const(),
            Literal::Prefix(n, l) => IpLit::Prefix(*n, *l).to_const(),
            Literal::Str(s) => Const::Str(s.clone()),
            Literal::Bool(_) => {
                self.error(
                    Diagnostic::error("a PARAM cannot be a boolean")
                        .at(value_span, "a boolean")
                        .help("a PARAM is an IP address, a prefix, a string or a number"),
                );
                return;
            }
        };
        self.param_ix.insert(name.name.clone(), self.params.len());
        self.params.push(ParamDecl { name: name.name.clone(), value, span: Some(span) });
    }

    fn cli_params(&mut self, program: &ast::Program, cli: &[(String, Const)]) {
        let mut used = HashSet::new();
        for item in &program.items {
            if let Item::Stmt(s) = item {
                names_in_stmt(s, &mut used);
            }
        }
        for (name, value) in cli {
            if let Some(&ix) = self.param_ix.get(name) {
                let declared = &self.params[ix];
                let (have, want) = (Type::of_const(value), Type::of_const(&declared.value));
                if have != want {
                    let span = declared.span.unwrap_or_default();
                    self.error(
                        Diagnostic::error(format!("--param {name} gives {}, but `{name}` is {}", have.words(), want.words()))
                            .at(span, format!("declared here as {}", want.words()))
                            .help(format!("pass {} for {name}, or change its PARAM line", want.words())),
                    );
                    continue;
                }
                self.params[ix].value = value.clone();
            } else if used.contains(name) {
                self.param_ix.insert(name.clone(), self.params.len());
                self.params.push(ParamDecl { name: name.clone(), value: value.clone(), span: None });
            } else {
                self.diags.push(
                    Diagnostic::warning(format!("--param {name} is not used by the program"))
                        .note("the program neither declares nor reads it, so it is left out of the module"),
                );
            }
        }
    }

    fn class(&mut self, given: Option<(Class, Span)>) -> Option<Class> {
        let inferred = if self.generates.is_some() {
            Class::Multicast
        } else if self.discards.is_some() {
            Class::Filtering
        } else {
            Class::Monitoring
        };
        let Some((class, span)) = given else { return Some(inferred) };
        let clash = match (self.generates, self.discards) {
            (Some(g), _) if class != Class::Multicast => Some((g, "GENERATEs", class_name(Class::Multicast))),
            (None, Some(d)) if class != Class::Filtering => Some((d, "DISCARDs", class_name(Class::Filtering))),
            _ => None,
        };
        if let Some((at, does, must)) = clash {
            self.error(
                Diagnostic::error(format!("this program {does}, so its CLASS must be {must}"))
                    .at(span, format!("CLASS {} contradicts what the program does", class_name(class)))
                    .also(at, format!("the program {does} here"))
                    .help(format!("write `CLASS = {must}`, or leave CLASS out to have it inferred")),
            );
            return None;
        }
        Some(class)
    }

    // ------------------------------------------------------------ variables

    fn new_var(&mut self, name: &str, ty: Type, span: Span) -> VarId {
        let id = self.vars.len();
        self.vars.push(Var { name: name.to_string(), ty, span });
        self.assigned.push(false);
        if let Some(frame) = self.frames.last_mut() {
            frame.push(name.to_string());
        }
        id
    }

    /// `name = <value of type ty>`: the variable assigned, if the assignment is valid.
    fn assign_var(&mut self, name: &Ident, ty: Type) -> Option<VarId> {
        if self.reserved(name, "assigned") {
            return None;
        }
        if self.param_ix.contains_key(&name.name) {
            let span = self.params[self.param_ix[&name.name]].span;
            let mut d = Diagnostic::error(format!("`{}` is a PARAM, a constant: it cannot be assigned", name.name))
                .at(name.span, "assigned here")
                .help("use another name for the variable");
            if let Some(s) = span {
                d = d.also(s, "declared here");
            }
            self.error(d);
            return None;
        }
        match self.scope.get(&name.name).cloned() {
            Some(Binding::Var(v)) => {
                let have = self.vars[v].ty;
                if !have.fits(ty) {
                    let first = self.vars[v].span;
                    self.error(
                        Diagnostic::error(format!("`{}` is {}; it cannot be given {}", name.name, have.words(), ty.words()))
                            .at(name.span, format!("assigning {} here", ty.words()))
                            .also(first, format!("first assigned here as {}", have.words()))
                            .help("a variable keeps one type; use another name"),
                    );
                    return None;
                }
                if let Some(&(floor, head)) = self.floors.last() {
                    if v < floor {
                        self.error(
                            Diagnostic::error(format!("`{}` is assigned before this `foreach`; its body cannot change it", name.name))
                                .at(name.span, "assigned inside the loop")
                                .also(head, "the loop")
                                .also(self.vars[v].span, "first assigned here, before the loop")
                                .note("a value computed from one group may not leave the loop")
                                .help("use a new name inside the loop; it is local to the loop's body"),
                        );
                        // Count it as assigned, so later reads do not echo this error.
                        self.assigned[v] = true;
                        return None;
                    }
                }
                if have == Type::Error {
                    self.vars[v].ty = ty;
                }
                self.assigned[v] = true;
                Some(v)
            }
            Some(Binding::Index { .. }) | Some(Binding::Family { .. }) => {
                let what = match self.scope.get(&name.name) {
                    Some(Binding::Index { .. }) => "indexes a grouping",
                    _ => "is a family of a grouping",
                };
                self.error(
                    Diagnostic::error(format!("`{}` {what}; it cannot be assigned", name.name))
                        .at(name.span, "assigned here")
                        .also(span_of_binding(&self.scope, &name.name, &self.vars).unwrap_or(name.span), "made here"),
                );
                None
            }
            None => {
                let v = self.new_var(&name.name, ty, name.span);
                self.scope.insert(name.name.clone(), Binding::Var(v));
                self.dead.remove(&name.name);
                self.assigned[v] = true;
                Some(v)
            }
        }
    }

    // ------------------------------------------------------------ statements

    fn stmt(&mut self, s: &ast::Stmt, out: &mut Vec<Stmt>) {
        let span = s.span;
        match &s.kind {
            SK::Error => {}
            SK::Block(stmts) => {
                for s in stmts {
                    self.stmt(s, out);
                }
            }
            SK::Assign { targets, value } => self.assign(targets, value, span, out),
            SK::Expr(e) => {
                if let Some(kind) = self.effect(e) {
                    out.push(Stmt { kind, span });
                }
            }
            SK::If { cond, then, els } => {
                let Some(nest) = self.enter(span) else { return };
                let cond = self.expect(cond, &[Type::Bool], "an `if` condition is");
                let (assigned, known) = (self.assigned.clone(), self.known.clone());
                let mut t = vec![];
                self.stmt(then, &mut t);
                let (after_then, known_then) = (std::mem::replace(&mut self.assigned, assigned), std::mem::replace(&mut self.known, known));
                self.assigned.resize(self.vars.len(), false);
                let mut e = vec![];
                if let Some(els) = els {
                    self.stmt(els, &mut e);
                }
                for (i, a) in self.assigned.iter_mut().enumerate() {
                    *a &= after_then.get(i).copied().unwrap_or(false);
                }
                self.known.retain(|v, n| known_then.get(v) == Some(n));
                self.nesting = nest;
                out.push(Stmt { kind: StmtKind::If { cond, then: t, els: e }, span });
            }
            SK::While { cond, body } => {
                let Some(nest) = self.enter(span) else { return };
                let cond = self.expect(cond, &[Type::Bool], "a `while` condition is");
                let changed = self.changed_by(body);
                let found = if cond.ty == Type::Error { None } else { Some(bounds::find(&cond, &changed, &self.known)) };
                let (assigned, known) = (self.assigned.clone(), self.known.clone());
                self.known.retain(|v, _| !changed.contains(v));
                let mut b = vec![];
                self.stmt(body, &mut b);
                self.assigned = assigned;
                self.assigned.resize(self.vars.len(), false);
                self.known = known;
                self.known.retain(|v, _| !changed.contains(v));
                self.nesting = nest;
                match found {
                    Some(Ok((rank, bound))) => {
                        out.push(Stmt { kind: StmtKind::While { cond, body: b, bound, rank }, span });
                    }
                    Some(Err(e)) => self.bound_error(e, &cond),
                    None => {}
                }
            }
            SK::Foreach { index, body } => {
                let Some(nest) = self.enter(span) else { return };
                let head = Span::new(span.start, index.span.end);
                let Some((groups, key, set)) = self.foreach_index(index) else {
                    self.nesting = nest;
                    return;
                };
                let changed = self.changed_by(body);
                let (assigned, known) = (self.assigned.clone(), self.known.clone());
                self.known.retain(|v, _| !changed.contains(v));
                self.assigned[key] = true;
                self.assigned[set] = true;
                self.frames.push(vec![]);
                self.active.push(index.name.clone());
                self.floors.push((self.vars.len(), head));
                let mut b = vec![];
                self.stmt(body, &mut b);
                self.floors.pop();
                self.active.pop();
                for name in self.frames.pop().unwrap_or_default() {
                    if self.scope.remove(&name).is_some() {
                        self.dead.insert(name, head);
                    }
                }
                self.assigned = assigned;
                self.assigned.resize(self.vars.len(), false);
                self.known = known;
                self.known.retain(|v, _| !changed.contains(v));
                self.nesting = nest;
                out.push(Stmt { kind: StmtKind::Foreach { groups, key, set, body: b, head }, span });
            }
        }
    }

    /// Enter a control statement: returns the nesting to restore, or `None`
    /// (after an error) if it is nested too deeply for the bytecode.
    fn enter(&mut self, span: Span) -> Option<usize> {
        let before = self.nesting;
        if before >= MAX_NESTING {
            self.error(
                Diagnostic::error(format!("`if`, `while` and `foreach` nested more than {MAX_NESTING} deep"))
                    .at(Span::new(span.start, span.start + 1), "too deep")
                    .help("split the program's logic into fewer levels"),
            );
            return None;
        }
        self.nesting += 1;
        Some(before)
    }

    /// Variables in scope that a loop body assigns.
    fn changed_by(&self, body: &ast::Stmt) -> HashSet<VarId> {
        let mut names = HashSet::new();
        assigned_names(body, &mut names);
        names
            .iter()
            .filter_map(|n| match self.scope.get(n) {
                Some(Binding::Var(v)) => Some(*v),
                _ => None,
            })
            .collect()
    }

    fn bound_error(&mut self, e: BoundError, cond: &Expr) {
        let d = match e {
            BoundError::NoGuard => Diagnostic::error("cannot find a bound for this loop")
                .at(cond.span, "this condition does not show when the loop stops")
                .note("a loop must compare a number that its body changes with a limit that it does not change")
                .help("write the loop as `while n < 10 do begin ...; n = n + 1 end`"),
            BoundError::NotConstant { span, param: true } => {
                Diagnostic::error("the loop's limit is a PARAM, which can change when the program is installed")
                    .at(span, "not a constant")
                    .help("a loop's bound must be known when the program is built: use a number")
            }
            BoundError::NotConstant { span, param: false } if sub_expr(cond, span).is_some_and(|e| bounds::mentions(e, &self.num_keys)) => {
                Diagnostic::error("the loop's limit is a group's key, which is known only when the program runs")
                    .at(span, "not a constant")
                    .help("a loop's bound must be known when the program is built: use a number")
            }
            BoundError::NotConstant { span, param: false } => Diagnostic::error("the loop's bound is not known when the loop starts")
                .at(span.to(cond.span), "the counter or the limit has no constant value here")
                .help("set the counter and the limit to numbers before the loop, like `n = 0; while n < 10 do ...`"),
            BoundError::TooLarge(n) => Diagnostic::error(format!(
                "this loop may run {n} times; at most {} iterations are allowed",
                vinet_checker::bytecode::MAX_LOOP_BOUND
            ))
            .at(cond.span, "bound too large"),
        };
        self.error(d);
    }

    fn foreach_index(&mut self, index: &Ident) -> Option<(VarId, VarId, VarId)> {
        match self.scope.get(&index.name).cloned() {
            Some(Binding::Index { groups, key, set, .. }) => {
                if self.active.contains(&index.name) {
                    self.error(
                        Diagnostic::error(format!("already inside `foreach {}`", index.name))
                            .at(index.span, "iterated again")
                            .help("a grouping is iterated by one `foreach` at a time"),
                    );
                    return None;
                }
                if !self.assigned[groups] {
                    self.error(
                        Diagnostic::error(format!("the grouping `{}` may not be made yet here", index.name))
                            .at(index.span, "maybe not made yet")
                            .also(self.vars[groups].span, "made here, on a path that does not always run before"),
                    );
                    return None;
                }
                Some((groups, key, set))
            }
            _ => {
                let mut d = Diagnostic::error(format!("`{}` is not the index of a grouping", index.name))
                    .at(index.span, "no grouping is indexed by this")
                    .help(format!("make a grouping first: `Source({i}), Packets({i}) = GROUP_BY_SOURCE(MyPackets);`", i = index.name));
                if let Some(span) = self.dead.get(&index.name) {
                    d = d.also(*span, "it was local to this foreach");
                }
                self.error(d);
                None
            }
        }
    }

    fn assign(&mut self, targets: &[ast::Expr], value: &ast::Expr, span: Span, out: &mut Vec<Stmt>) {
        let call = match &value.kind {
            AK::Call { callee, args } => routine(&callee.name).map(|r| (r, args, callee)),
            _ => None,
        };
        match (targets, call) {
            ([t1, t2], Some((r, args, _))) if args.len() == 1 && grouping_by(r).is_some() => {
                let Some(by) = grouping_by(r) else { return };
                let of = self.expect(&args[0], &[Type::Set], &format!("{r} groups"));
                if let Some(kind) = self.grouping(t1, t2, by, of) {
                    out.push(Stmt { kind, span });
                }
            }
            ([t1, t2], Some(("GROUP_BY_CONTENT", args, callee))) => {
                if args.len() != 1 {
                    self.arity(callee, value.span, 1, args.len(), "a packet set");
                    return;
                }
                let of = self.expect(&args[0], &[Type::Set], "GROUP_BY_CONTENT takes");
                let (Some(d), Some(c)) = (self.plain_target(t1), self.plain_target(t2)) else { return };
                if d.name == c.name {
                    self.error(Diagnostic::error("the two results need two names").at(c.span, "same name twice"));
                    return;
                }
                let (Some(dests), Some(content)) = (self.assign_var(d, Type::AddrList), self.assign_var(c, Type::Content)) else {
                    return;
                };
                out.push(Stmt { kind: StmtKind::GroupContent { dests, content, of }, span });
            }
            ([t], Some((r, args, _))) if args.len() == 1 && grouping_by(r).is_some() => {
                let pick = match grouping_by(r) {
                    Some(By::Number(f)) => {
                        format!("to pick the packets of one {}, give it: `{r}(Packets, {})`", field_words(f), example_value(f))
                    }
                    _ => format!("to pick the packets of one address, give it: `{r}(Packets, 10.0.0.1)`"),
                };
                self.error(
                    Diagnostic::error(format!("{r} with one argument makes a grouping, which has two parts"))
                        .at(t.span, "one target")
                        .help(format!("name the key and the packets of each group: `Key(i), Packets(i) = {r}(...);`"))
                        .help(pick),
                );
            }
            ([t], Some(("GROUP_BY_CONTENT", _, _))) => {
                self.error(
                    Diagnostic::error("GROUP_BY_CONTENT gives two results: the destinations and the contents")
                        .at(t.span, "one target")
                        .help("write `Destinations, Content = GROUP_BY_CONTENT(...);`"),
                );
            }
            ([t], _) => {
                let Some(name) = self.plain_target(t) else {
                    // Still check the value, for its own errors.
                    self.expr(value);
                    return;
                };
                let e = self.expr(value);
                if let Some(var) = self.assign_var(name, e.ty) {
                    if e.ty == Type::Num {
                        match bounds::fold(&e, &self.known) {
                            Some(n) => self.known.insert(var, n),
                            None => self.known.remove(&var),
                        };
                    }
                    out.push(Stmt { kind: StmtKind::Assign { var, value: e }, span });
                }
            }
            _ => {
                let first = targets.first().map_or(span, |t| t.span);
                let last = targets.last().map_or(span, |t| t.span);
                self.expr(value);
                self.error(
                    Diagnostic::error(format!("{} values assigned, but the right side gives one", targets.len()))
                        .at(first.to(last), "several targets")
                        .help(
                            "only GROUP_BY_CONTENT(S) and the one-argument groupings GROUP_BY_DESTINATION(S), GROUP_BY_SOURCE(S), \
                             GROUP_BY_PROTOCOL(S), GROUP_BY_SOURCE_PORT(S) and GROUP_BY_DESTINATION_PORT(S) give two results",
                        ),
                );
            }
        }
    }

    fn plain_target<'t>(&mut self, t: &'t ast::Expr) -> Option<&'t Ident> {
        match &t.kind {
            AK::Name(n) => Some(n),
            AK::Error => None,
            _ => {
                self.error(
                    Diagnostic::error("cannot assign to this")
                        .at(t.span, "not a variable name")
                        .help("the left side of `=` is a name, like `MyPackets = ...`"),
                );
                None
            }
        }
    }

    fn indexed_target<'t>(&mut self, t: &'t ast::Expr) -> Option<(&'t Ident, &'t Ident)> {
        if let AK::Call { callee, args } = &t.kind {
            if let [ast::Expr { kind: AK::Name(i), .. }] = args.as_slice() {
                return Some((callee, i));
            }
        }
        self.error(
            Diagnostic::error("a grouping's parts are named with an index, like `Source(i)`")
                .at(t.span, "expected `Name(i)`")
                .help("write `Source(i), Packets(i) = GROUP_BY_SOURCE(MyPackets);`"),
        );
        None
    }

    fn grouping(&mut self, t1: &ast::Expr, t2: &ast::Expr, by: By, of: Expr) -> Option<StmtKind> {
        let (f1, i1) = self.indexed_target(t1)?;
        let (f2, i2) = self.indexed_target(t2)?;
        if i1.name != i2.name {
            self.error(
                Diagnostic::error("both parts of a grouping must use the same index")
                    .at(i2.span, format!("expected `{}`", i1.name))
                    .also(i1.span, "the index"),
            );
            return None;
        }
        if f1.name == f2.name {
            self.error(Diagnostic::error("the two parts of a grouping need two names").at(f2.span, "same name twice"));
            return None;
        }
        for n in [i1, f1, f2] {
            if self.reserved(n, "a grouping's name") {
                return None;
            }
            if self.scope.contains_key(&n.name) || self.param_ix.contains_key(&n.name) {
                let mut d = Diagnostic::error(format!("`{}` is already defined", n.name))
                    .at(n.span, "defined again")
                    .help("a grouping needs fresh names for its index and its two parts");
                if let Some(s) = span_of_binding(&self.scope, &n.name, &self.vars) {
                    d = d.also(s, "first defined here");
                }
                self.error(d);
                return None;
            }
        }
        let (key_name, set_name) = if self.votes.set_first(&f1.name, &f2.name) { (f2, f1) } else { (f1, f2) };
        let (groups_ty, key_ty) = match by {
            By::Addr(_) => (Type::Groups, Type::Addr),
            By::Number(_) => (Type::NumGroups, Type::Num),
        };
        let groups = self.new_var(&i1.name, groups_ty, i1.span);
        let key = self.new_var(&key_name.name, key_ty, key_name.span);
        let set = self.new_var(&set_name.name, Type::Set, set_name.span);
        self.assigned[groups] = true;
        self.scope.insert(i1.name.clone(), Binding::Index { groups, key, set, span: i1.span });
        self.scope.insert(key_name.name.clone(), Binding::Family { index: i1.name.clone(), var: key });
        if key_ty == Type::Num {
            self.num_keys.insert(key);
        }
        self.scope.insert(set_name.name.clone(), Binding::Family { index: i1.name.clone(), var: set });
        for n in [i1, key_name, set_name] {
            self.dead.remove(&n.name);
        }
        Some(StmtKind::Grouping { groups, key, set, by, of })
    }

    /// A call used as a statement: DISCARD or GENERATE.
    fn effect(&mut self, e: &ast::Expr) -> Option<StmtKind> {
        let AK::Call { callee, args } = &e.kind else {
            if !matches!(e.kind, AK::Error) {
                self.expr(e);
                self.error(
                    Diagnostic::error("this expression is not a statement")
                        .at(e.span, "its value is not used")
                        .help("a statement is an assignment (`X = ...;`), DISCARD(...), GENERATE(...), if, while or foreach"),
                );
            }
            return None;
        };
        match routine(&callee.name) {
            Some("DISCARD") => {
                if args.len() != 1 {
                    self.arity(callee, e.span, 1, args.len(), "a packet set");
                    return None;
                }
                let set = self.expect(&args[0], &[Type::Set], "DISCARD takes");
                self.discards.get_or_insert(e.span);
                Some(StmtKind::Discard(set))
            }
            Some("GENERATE") => {
                if args.len() != 3 {
                    self.arity(callee, e.span, 3, args.len(), "a source address, a destination address and a payload");
                    return None;
                }
                let src = self.expect(&args[0], &[Type::Addr], "GENERATE's source is");
                let dst = self.expect(&args[1], &[Type::Addr], "GENERATE's destination is");
                let payload = self.expect(&args[2], &[Type::Str, Type::AddrList, Type::Content], "GENERATE's payload is");
                self.generates.get_or_insert(e.span);
                Some(StmtKind::Generate { src, dst, payload })
            }
            Some(r) => {
                let x = self.expr(e);
                if x.ty != Type::Error {
                    self.error(
                        Diagnostic::error(format!("the result of {r} is not used"))
                            .at(e.span, format!("this computes {}", x.ty.words()))
                            .help(format!("assign it to a variable: `Result = {r}(...);`")),
                    );
                }
                None
            }
            None => {
                self.expr(e);
                None
            }
        }
    }

    fn arity(&mut self, callee: &Ident, span: Span, want: usize, got: usize, what: &str) {
        let plural = if want == 1 { "argument" } else { "arguments" };
        self.arity_words(callee, span, &format!("{want} {plural}"), got, what);
    }

    /// "R takes `want` (`what`), but `got` were given".
    fn arity_words(&mut self, callee: &Ident, span: Span, want: &str, got: usize, what: &str) {
        let r = routine(&callee.name).unwrap_or(&callee.name);
        let were = if got == 1 { "was" } else { "were" };
        self.error(Diagnostic::error(format!("{r} takes {want} ({what}), but {got} {were} given")).at(span, format!("{got} given")));
    }

    // ------------------------------------------------------------ expressions

    /// Check `e` and require one of `want`; `context` completes "... takes"
    /// phrasing in the note.
    fn expect(&mut self, e: &ast::Expr, want: &[Type], context: &str) -> Expr {
        self.expect_with(e, want, context, None)
    }

    /// [`Checker::expect`], with a help line for when the type is wrong.
    fn expect_with(&mut self, e: &ast::Expr, want: &[Type], context: &str, help: Option<&str>) -> Expr {
        let x = self.expr(e);
        if want.iter().any(|w| w.fits(x.ty)) {
            return x;
        }
        let words: Vec<&str> = want.iter().map(|w| w.words()).collect();
        let wanted = match words.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        let label = match &e.kind {
            AK::Name(n) => format!("`{}` is {}", n.name, x.ty.words()),
            _ => format!("this is {}", x.ty.words()),
        };
        let mut d =
            Diagnostic::error(format!("expected {wanted}, found {}", x.ty.words())).at(e.span, label).note(format!("{context} {wanted}"));
        if let AK::Name(n) = &e.kind {
            let candidates: Vec<&str> = self
                .scope
                .iter()
                .filter(|(_, b)| matches!(b, Binding::Var(v) if want.contains(&self.vars[*v].ty) && self.assigned[*v]))
                .map(|(k, _)| k.as_str())
                .collect();
            if let Some(s) = closest(&n.name, candidates) {
                d = d.help(format!("did you mean `{s}`? it is {}", want[0].words()));
            }
        }
        if let Some(h) = help {
            d = d.help(h);
        }
        self.error(d);
        Expr { kind: ExprKind::Error, ty: Type::Error, span: e.span }
    }

    fn err(span: Span) -> Expr {
        Expr { kind: ExprKind::Error, ty: Type::Error, span }
    }

    fn expr(&mut self, e: &ast::Expr) -> Expr {
        let span = e.span;
        let mk = |kind, ty| Expr { kind, ty, span };
        match &e.kind {
            AK::Error => Self::err(span),
            AK::Lit(l) => match l {
                Literal::Num(n) => mk(ExprKind::Const(Const::Num(*n)), Type::Num),
                Literal::Addr(a) => mk(ExprKind::Const(IpLit::Addr(*a).to_const()), Type::Addr),
                Literal::Prefix(n, len) => mk(ExprKind::Const(IpLit::Prefix(*n, *len).to_const()), Type::Prefix),
                Literal::Str(s) => mk(ExprKind::Const(Const::Str(s.clone())), Type::Str),
                Literal::Bool(b) => mk(ExprKind::Bool(*b), Type::Bool),
            },
            AK::Name(n) => self.name(n),
            AK::Call { callee, args } => self.call(callee, args, span),
            AK::Unary { operand, .. } => {
                let x = self.expect(operand, &[Type::Bool], "`not` takes");
                mk(ExprKind::Not(Box::new(x)), Type::Bool)
            }
            AK::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, span),
        }
    }

    fn name(&mut self, n: &Ident) -> Expr {
        let span = n.span;
        let mk = |kind, ty| Expr { kind, ty, span };
        if let Some(b) = builtin(&n.name) {
            return match (b, named_number(b)) {
                (_, Some(v)) => mk(ExprKind::Const(Const::Num(v)), Type::Num),
                ("AllPackets", _) => mk(ExprKind::AllPackets, Type::Set),
                ("OnPackets", _) => mk(ExprKind::OnPackets, Type::Set),
                ("THIS_IP", _) => mk(ExprKind::ThisIp, Type::Addr),
                _ => mk(ExprKind::ThisSubnet, Type::Prefix),
            };
        }
        match self.scope.get(&n.name).cloned() {
            Some(Binding::Var(v)) => {
                if !self.assigned[v] {
                    self.error(
                        Diagnostic::error(format!("`{}` may have no value here", n.name))
                            .at(span, "maybe unassigned")
                            .also(self.vars[v].span, "assigned here, on a path that does not always run before")
                            .help(format!("assign `{}` before the `if` or loop, on every path", n.name)),
                    );
                    return Self::err(span);
                }
                return mk(ExprKind::Var(v), self.vars[v].ty);
            }
            Some(Binding::Index { .. }) => {
                self.error(
                    Diagnostic::error(format!("`{}` indexes a grouping; it is not a value", n.name))
                        .at(span, "a grouping index")
                        .help(format!("iterate it with `foreach {} do ...`", n.name)),
                );
                return Self::err(span);
            }
            Some(Binding::Family { index, .. }) => {
                self.error(
                    Diagnostic::error(format!("`{}` is a family indexed by `{index}`", n.name))
                        .at(span, "needs its index")
                        .help(format!("write `{}({index})` inside `foreach {index} do ...`", n.name)),
                );
                return Self::err(span);
            }
            None => {}
        }
        if let Some(&ix) = self.param_ix.get(&n.name) {
            return mk(ExprKind::Param(ix), Type::of_const(&self.params[ix].value));
        }
        if let Some(r) = routine(&n.name) {
            self.error(
                Diagnostic::error(format!("{r} is a routine, not a value")).at(span, "a routine").help(format!("call it: `{r}(...)`")),
            );
            return Self::err(span);
        }
        if let Some(head) = self.dead.get(&n.name).copied() {
            self.error(
                Diagnostic::error(format!("`{}` is local to a `foreach` that has ended", n.name))
                    .at(span, "used after the loop")
                    .also(head, "the loop it belongs to")
                    .help(format!("assign `{}` before the loop to use it after", n.name)),
            );
            return Self::err(span);
        }
        self.unknown(n);
        Self::err(span)
    }

    fn unknown(&mut self, n: &Ident) {
        let mut candidates: Vec<String> = self.scope.keys().cloned().collect();
        candidates.extend(self.param_ix.keys().cloned());
        candidates.extend(BUILTINS.iter().map(|b| b.to_string()));
        let mut d = Diagnostic::error(format!("unknown name `{}`", n.name)).at(n.span, "not defined");
        if let Some(s) = closest(&n.name, candidates.iter().map(String::as_str)) {
            d = d.help(format!("did you mean `{s}`?"));
        } else {
            let name = &n.name;
            d = d.help(format!(
                "if `{name}` is a value to give when the program is built, declare `PARAM {name} = ...;` or pass `--param {name}=...`"
            ));
        }
        self.error(d);
    }

    fn call(&mut self, callee: &Ident, args: &[ast::Expr], span: Span) -> Expr {
        let mk = |kind, ty| Expr { kind, ty, span };
        if let Some(r) = routine(&callee.name) {
            let (want, what): (&[Type], &str) = match r {
                "DISCARD" | "GENERATE" => {
                    self.error(
                        Diagnostic::error(format!("{r} is a statement; it has no value"))
                            .at(span, "used as a value")
                            .help(format!("write it on its own: `{r}(...);`")),
                    );
                    return Self::err(span);
                }
                "GROUP_BY_CONTENT" => {
                    self.error(
                        Diagnostic::error("GROUP_BY_CONTENT gives two results; it cannot be used inside an expression")
                            .at(span, "used as a value")
                            .help("write `Destinations, Content = GROUP_BY_CONTENT(...);`"),
                    );
                    return Self::err(span);
                }
                "GROUP_BY_DESTINATION" | "GROUP_BY_SOURCE" if args.len() == 1 => {
                    self.error(
                        Diagnostic::error(format!("{r} with one argument makes a grouping; it cannot be used inside an expression"))
                            .at(span, "a grouping")
                            .help(format!("name the groups' parts: `Key(i), Packets(i) = {r}(...);`, then `foreach i do ...`"))
                            .help(format!("to pick the packets of one address, give it: `{r}(Packets, 10.0.0.1)`")),
                    );
                    return Self::err(span);
                }
                "GROUP_BY_DESTINATION" | "GROUP_BY_SOURCE" => {
                    (&[Type::Set, Type::Addr], "a packet set and an IP address or prefix (or just a packet set)")
                }
                "TCP_FLAGS" => return self.tcp_flags(callee, args, span),
                _ if by_field(r).is_some() => return self.narrow(r, callee, args, span),
                "CONTAINS_STRING" => (&[Type::Set, Type::Str], "a packet set and a string"),
                _ => (&[Type::Set], "a packet set"),
            };
            if args.len() != want.len() {
                self.arity(callee, span, want.len(), args.len(), what);
                for a in args {
                    self.expr(a);
                }
                return Self::err(span);
            }
            let set = self.expect(&args[0], &[Type::Set], &format!("{r} takes"));
            return match r {
                "GROUP_BY_DESTINATION" | "GROUP_BY_SOURCE" => {
                    let by = self.expect(&args[1], &[Type::Addr, Type::Prefix], &format!("{r} selects by"));
                    let field = if r == "GROUP_BY_DESTINATION" { Field::Dst } else { Field::Src };
                    mk(ExprKind::Call(Routine::Filter(field), vec![set, by]), Type::Set)
                }
                "CONTAINS_STRING" => {
                    let needle = self.expect(&args[1], &[Type::Str], "CONTAINS_STRING looks for");
                    mk(ExprKind::Call(Routine::ContainsString, vec![set, needle]), Type::Bool)
                }
                "COUNT" => mk(ExprKind::Call(Routine::Count, vec![set]), Type::Num),
                "DISTINCT_DESTINATION_PORTS" => mk(ExprKind::Call(Routine::DistinctDestinationPorts, vec![set]), Type::Num),
                _ => mk(ExprKind::Call(Routine::DistinctDestinations, vec![set]), Type::Num),
            };
        }
        match self.scope.get(&callee.name).cloned() {
            Some(Binding::Family { index, var }) => {
                let given = match args {
                    [ast::Expr { kind: AK::Name(i), .. }] => Some(i),
                    _ => None,
                };
                if given.map(|i| &i.name) != Some(&index) {
                    self.error(
                        Diagnostic::error(format!("`{}` is indexed by `{index}`", callee.name))
                            .at(span, "wrong index")
                            .help(format!("write `{}({index})`", callee.name)),
                    );
                    return Self::err(span);
                }
                if !self.active.contains(&index) {
                    self.error(
                        Diagnostic::error(format!("`{}({index})` is only defined inside `foreach {index}`", callee.name))
                            .at(span, format!("outside `foreach {index}`"))
                            .help(format!("use it in the body of `foreach {index} do ...`")),
                    );
                    return Self::err(span);
                }
                mk(ExprKind::Var(var), self.vars[var].ty)
            }
            Some(_) => {
                self.error(
                    Diagnostic::error(format!("`{}` is not a routine", callee.name))
                        .at(callee.span, "called here")
                        .help(format!("the routines are {}", ROUTINES.join(", "))),
                );
                Self::err(span)
            }
            None => {
                let mut d = Diagnostic::error(format!("unknown routine `{}`", callee.name)).at(callee.span, "not a routine");
                if let Some(s) = closest(&callee.name, ROUTINES.iter().copied()) {
                    d = d.help(format!("did you mean `{s}`?"));
                } else {
                    d = d.help(format!("the routines are {}", ROUTINES.join(", ")));
                }
                self.error(d);
                for a in args {
                    self.expr(a);
                }
                Self::err(span)
            }
        }
    }

    /// GROUP_BY_PROTOCOL, GROUP_BY_SOURCE_PORT, GROUP_BY_DESTINATION_PORT with a
    /// value `(S, v)` or a range `(S, lo, hi)`: the packets of S whose field is
    /// `v`, or between `lo` and `hi`.
    fn narrow(&mut self, r: &'static str, callee: &Ident, args: &[ast::Expr], span: Span) -> Expr {
        let Some(field) = by_field(r) else { return Self::err(span) };
        let (words, example) = (field_words(field), example_value(field));
        if args.len() == 1 {
            self.error(
                Diagnostic::error(format!("{r} with one argument makes a grouping; it cannot be used inside an expression"))
                    .at(span, "a grouping")
                    .help(format!("name the groups' parts: `Key(i), Packets(i) = {r}(...);`, then `foreach i do ...`"))
                    .help(format!("to pick the packets of one {words}, give it: `{r}(Packets, {example})`")),
            );
            return Self::err(span);
        }
        if args.len() != 2 && args.len() != 3 {
            let what =
                format!("a packet set and a {words}, or a packet set and the lowest and highest {words} of a range; or just a packet set");
            self.arity_words(callee, span, "2 or 3 arguments", args.len(), &what);
            for a in args {
                self.expr(a);
            }
            return Self::err(span);
        }
        let set = self.expect(&args[0], &[Type::Set], &format!("{r} takes"));
        let help = match field {
            PacketField::Proto => "protocols are numbers: TCP (6), UDP (17), ICMP (1)",
            _ => "a port is a number from 0 to 65535, like 25",
        };
        let mut out = vec![set];
        if args.len() == 2 {
            out.push(self.expect_with(&args[1], &[Type::Num], &format!("{r} selects packets by {words}, which is"), Some(help)));
        } else {
            out.push(self.expect_with(&args[1], &[Type::Num], &format!("the low end of {r}'s range is"), Some(help)));
            out.push(self.expect_with(&args[2], &[Type::Num], &format!("the high end of {r}'s range is"), Some(help)));
        }
        // A value above the field's largest, or an empty range, matches nothing:
        // not an error (the set is empty), but worth a warning when it is written so.
        let max = field_max(field);
        if let Some(n) = bounds::fold(&out[1], &Known::new()).filter(|&n| n > max) {
            self.diags.push(
                Diagnostic::warning(format!("{r} matches no packet here"))
                    .at(out[1].span, format!("{n} is above {max}"))
                    .note(format!("a {} number is at most {max}", field_words(field))),
            );
        } else if let [_, lo, hi] = out.as_slice() {
            if let (Some(l), Some(h)) = (bounds::fold(lo, &Known::new()), bounds::fold(hi, &Known::new())) {
                if l > h {
                    self.diags.push(
                        Diagnostic::warning(format!("the range {l} to {h} is empty"))
                            .at(lo.span.to(hi.span), "its low end is above its high end")
                            .note(format!("{r} with this range matches no packet"))
                            .help(format!("write the range low end first: `{h}, {l}`")),
                    );
                }
            }
        }
        Expr { kind: ExprKind::Call(Routine::Narrow(field), out), ty: Type::Set, span }
    }

    /// TCP_FLAGS(S, on, off): the TCP packets of S with every flag of `on` set
    /// and every flag of `off` clear.
    fn tcp_flags(&mut self, callee: &Ident, args: &[ast::Expr], span: Span) -> Expr {
        if args.len() != 3 {
            self.arity(callee, span, 3, args.len(), "a packet set, the flags that must be set and the flags that must be clear");
            for a in args {
                self.expr(a);
            }
            return Self::err(span);
        }
        let help = "flags are numbers: FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, added with `+` (`SYN + ACK`); 0 for none";
        let set = self.expect(&args[0], &[Type::Set], "TCP_FLAGS takes");
        let on = self.expect_with(&args[1], &[Type::Num], "TCP_FLAGS takes the flags that must be set as", Some(help));
        let off = self.expect_with(&args[2], &[Type::Num], "TCP_FLAGS takes the flags that must be clear as", Some(help));
        let (k_on, k_off) = (bounds::fold(&on, &Known::new()), bounds::fold(&off, &Known::new()));
        if let Some(n) = k_on.filter(|&n| n > 255) {
            self.diags.push(
                Diagnostic::warning(format!("no packet has the flags {n}"))
                    .at(on.span, "above 255")
                    .note("the TCP flags are one byte: TCP_FLAGS with these matches no packet"),
            );
        } else if let (Some(a), Some(b)) = (k_on, k_off) {
            if a & b != 0 {
                self.diags.push(
                    Diagnostic::warning("a flag cannot be both set and clear")
                        .at(on.span.to(off.span), format!("{} must be set and clear", flag_names(a & b)))
                        .note("TCP_FLAGS with these matches no packet"),
                );
            }
        }
        Expr { kind: ExprKind::Call(Routine::Narrow(PacketField::TcpFlags), vec![set, on, off]), ty: Type::Set, span }
    }

    fn binary(&mut self, op: ast::BinOp, lhs: &ast::Expr, rhs: &ast::Expr, span: Span) -> Expr {
        use ast::BinOp as B;
        let mk = |op, a, b, ty| Expr { kind: ExprKind::Binary(op, Box::new(a), Box::new(b)), ty, span };
        match op {
            B::And | B::Or => {
                let a = self.expect(lhs, &[Type::Bool], &format!("`{}` takes", op.text()));
                let b = self.expect(rhs, &[Type::Bool], &format!("`{}` takes", op.text()));
                mk(if op == B::And { BinOp::And } else { BinOp::Or }, a, b, Type::Bool)
            }
            B::Eq | B::Ne | B::Lt | B::Le | B::Gt | B::Ge => {
                let cmp = match op {
                    B::Eq => CmpOp::Eq,
                    B::Ne => CmpOp::Ne,
                    B::Lt => CmpOp::Lt,
                    B::Le => CmpOp::Le,
                    B::Gt => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                let (a, b) = (self.expr(lhs), self.expr(rhs));
                if a.ty == Type::Error || b.ty == Type::Error {
                    return Self::err(span);
                }
                let ordering = !matches!(cmp, CmpOp::Eq | CmpOp::Ne);
                if ordering && (a.ty != Type::Num || b.ty != Type::Num) {
                    let bad = if a.ty != Type::Num { &a } else { &b };
                    self.error(
                        Diagnostic::error(format!("`{}` compares numbers, not {}", op.text(), plural(bad.ty)))
                            .at(bad.span, format!("this is {}", bad.ty.words()))
                            .help("to test whether an address is in a prefix, write `Addr in 10.1.0.0/16`"),
                    );
                    return Self::err(span);
                }
                if a.ty != b.ty || !a.ty.is_scalar() {
                    let mut d = Diagnostic::error(format!("cannot compare {} with {}", a.ty.words(), b.ty.words()))
                        .at(a.span.to(b.span), format!("`{}` needs two values of one type", op.text()));
                    if !a.ty.is_scalar() || !b.ty.is_scalar() {
                        d = d.note("packet sets and groupings cannot be compared; COUNT(S) gives the number of packets of S");
                    } else if a.ty == Type::Addr && b.ty == Type::Prefix || a.ty == Type::Prefix && b.ty == Type::Addr {
                        d = d.help("to test whether an address is in a prefix, write `Addr in 10.1.0.0/16`");
                    }
                    self.error(d);
                    return Self::err(span);
                }
                mk(BinOp::Cmp(cmp), a, b, Type::Bool)
            }
            B::In => {
                let a = self.expect(lhs, &[Type::Addr], "`in` tests whether an address is in a prefix; on its left is");
                let b = self.expect(rhs, &[Type::Prefix], "`in` tests whether an address is in a prefix; on its right is");
                mk(BinOp::In, a, b, Type::Bool)
            }
            B::Mask => {
                let a = self.expect(lhs, &[Type::Addr], "`&` masks an address with an address; it takes");
                let b = self.expect(rhs, &[Type::Addr], "`&` masks an address with an address; it takes");
                mk(BinOp::Mask, a, b, Type::Addr)
            }
            B::Add => {
                let (a, b) = (self.expr(lhs), self.expr(rhs));
                match (a.ty, b.ty) {
                    (Type::Error, _) | (_, Type::Error) => Self::err(span),
                    (Type::Num, Type::Num) => mk(BinOp::Add, a, b, Type::Num),
                    (Type::Str, Type::Str) => mk(BinOp::Concat, a, b, Type::Str),
                    (x, y) => {
                        self.error(
                            Diagnostic::error(format!("cannot add {} and {}", x.words(), y.words()))
                                .at(a.span.to(b.span), "`+` needs two numbers or two strings"),
                        );
                        Self::err(span)
                    }
                }
            }
            B::Sub | B::Mul => {
                let what = format!("`{}` takes", op.text());
                let a = self.expect(lhs, &[Type::Num], &what);
                let b = self.expect(rhs, &[Type::Num], &what);
                mk(if op == B::Sub { BinOp::Sub } else { BinOp::Mul }, a, b, Type::Num)
            }
        }
    }
}

fn plural(t: Type) -> &'static str {
    match t {
        Type::Bool => "booleans",
        Type::Num => "numbers",
        Type::Addr => "IP addresses",
        Type::Prefix => "prefixes",
        Type::Str => "strings",
        Type::Set => "packet sets",
        Type::Groups | Type::NumGroups => "groupings",
        Type::AddrList | Type::Content => "lists",
        Type::Error => "errors",
    }
}

/// The sub-expression of `e` at `span`.
fn sub_expr(e: &Expr, span: Span) -> Option<&Expr> {
    if e.span == span {
        return Some(e);
    }
    match &e.kind {
        ExprKind::Not(a) => sub_expr(a, span),
        ExprKind::Binary(_, a, b) => sub_expr(a, span).or_else(|| sub_expr(b, span)),
        ExprKind::Call(_, args) => args.iter().find_map(|a| sub_expr(a, span)),
        _ => None,
    }
}

/// The named flags of a flags byte, joined with `+` (`SYN + ACK`).
fn flag_names(bits: u64) -> String {
    let names: Vec<&str> = NAMED_NUMBERS[3..].iter().filter(|(_, v)| bits & v != 0).map(|(n, _)| *n).collect();
    names.join(" + ")
}

fn span_of_binding(scope: &HashMap<String, Binding>, name: &str, vars: &[Var]) -> Option<Span> {
    match scope.get(name)? {
        Binding::Var(v) | Binding::Family { var: v, .. } => vars.get(*v).map(|v| v.span),
        Binding::Index { span, .. } => Some(*span),
    }
}

/// The help shown for an empty program.
pub fn minimal_program() -> &'static str {
    MINIMAL_PROGRAM
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance() {
        assert_eq!(distance("BroadcastIP", "Broadcast"), 2);
        assert_eq!(distance("discard", "DISCARD"), 0);
        assert_eq!(closest("MyPakets", ["MyPackets", "BadPackets"]), Some("MyPackets"));
        assert_eq!(closest("x", ["MyPackets"]), None);
    }
}
