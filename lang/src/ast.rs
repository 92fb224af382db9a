//! The syntax tree, as parsed: plain enums with a span on every node.
//!
//! Nodes are built only through [`Expr::new`] and [`Stmt::new`], which keep
//! the tree's depth bounded: a node deeper than [`MAX_EXPR_DEPTH`] (or
//! [`MAX_STMT_DEPTH`]) is replaced by an error node and one diagnostic, so
//! every later pass, and dropping the tree, recurses a bounded number of
//! times whatever the input.

use crate::diagnostics::Diagnostic;

/// Deepest expression tree accepted.
pub const MAX_EXPR_DEPTH: u32 = 64;
/// Deepest statement tree accepted (blocks and control statements).
pub const MAX_STMT_DEPTH: u32 = 64;

/// A byte range of the source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The range `start..end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
    /// As a range.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// A name as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    /// The text.
    pub name: String,
    /// Where.
    pub span: Span,
}

/// A whole program: header declarations and statements, in source order.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// Declarations and statements.
    pub items: Vec<Item>,
    /// The whole file.
    pub span: Span,
}

/// A top-level item.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `LIFETIME = N unit`
    Lifetime {
        /// N.
        amount: u64,
        /// Where N is.
        amount_span: Span,
        /// The unit as written.
        unit: Ident,
        /// The declaration.
        span: Span,
    },
    /// `CLASS = name`
    Class {
        /// The class as written.
        value: Ident,
        /// The declaration.
        span: Span,
    },
    /// `PARAM NAME = literal;`
    Param {
        /// The name.
        name: Ident,
        /// Its default value.
        value: Literal,
        /// Where the value is.
        value_span: Span,
        /// The declaration.
        span: Span,
    },
    /// A statement.
    Stmt(Stmt),
}

/// A literal value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Literal {
    /// A natural number.
    Num(u64),
    /// An address, IPv4 or IPv6, in the 128-bit space (IPv4 as IPv4-mapped:
    /// [`crate::tokens::IpLit`]).
    Addr(u128),
    /// A prefix: network (host bits zero) and length 0 to 128 (an IPv4 `/n` is `/96+n`).
    Prefix(u128, u8),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
}

/// A statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    /// What it is.
    pub kind: StmtKind,
    /// Where.
    pub span: Span,
    depth: u32,
}

/// The kinds of statement.
#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `T1, T2 = value`: the targets are parsed as expressions and sorted out
    /// by the checker (a name, or a family indexed by a name).
    Assign {
        /// Left-hand sides.
        targets: Vec<Expr>,
        /// Right-hand side.
        value: Expr,
    },
    /// An expression used as a statement (must be a DISCARD or GENERATE call).
    Expr(Expr),
    /// `if cond then A [else B]`
    If {
        /// The condition.
        cond: Expr,
        /// Then branch.
        then: Box<Stmt>,
        /// Else branch.
        els: Option<Box<Stmt>>,
    },
    /// `while cond do body`
    While {
        /// The guard.
        cond: Expr,
        /// The body.
        body: Box<Stmt>,
    },
    /// `foreach i do body`
    Foreach {
        /// The index of the grouping iterated.
        index: Ident,
        /// The body.
        body: Box<Stmt>,
    },
    /// `begin ... end` or `{ ... }`
    Block(Vec<Stmt>),
    /// A statement that did not parse (already reported).
    Error,
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `not`
    Not,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `or`
    Or,
    /// `and`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `&`
    Mask,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
}

impl BinOp {
    /// The operator as written.
    pub fn text(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::Mask => "&",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
        }
    }
}

/// An expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
    depth: u32,
}

/// The kinds of expression.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A literal.
    Lit(Literal),
    /// A name.
    Name(Ident),
    /// `name(args)`: a routine call, or a family indexed by a loop variable.
    Call {
        /// The routine or family.
        callee: Ident,
        /// Arguments.
        args: Vec<Expr>,
    },
    /// `not e`
    Unary {
        /// The operator.
        op: UnOp,
        /// The operand.
        operand: Box<Expr>,
    },
    /// `a OP b`
    Binary {
        /// The operator.
        op: BinOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// An expression that could not be built (already reported).
    Error,
}

impl Expr {
    /// Build a node, replacing it by an error node if it is nested too deep.
    pub fn new(kind: ExprKind, span: Span, diags: &mut Vec<Diagnostic>) -> Expr {
        let children: u32 = match &kind {
            ExprKind::Call { args, .. } => args.iter().map(|a| a.depth).max().unwrap_or(0),
            ExprKind::Unary { operand, .. } => operand.depth,
            ExprKind::Binary { lhs, rhs, .. } => lhs.depth.max(rhs.depth),
            ExprKind::Lit(_) | ExprKind::Name(_) | ExprKind::Error => 0,
        };
        let depth = children + 1;
        if depth <= MAX_EXPR_DEPTH {
            return Expr { kind, span, depth };
        }
        if children <= MAX_EXPR_DEPTH {
            diags.push(
                Diagnostic::error(format!("expression nested too deeply (more than {MAX_EXPR_DEPTH} levels)"))
                    .at(Span::new(span.start, span.start + 1), "nesting passes the limit here")
                    .help("split it into several assignments"),
            );
        }
        // Depth stays above the limit so enclosing nodes are replaced silently.
        Expr { kind: ExprKind::Error, span, depth }
    }

    /// An error node (the error was reported where it was found).
    pub fn error(span: Span) -> Expr {
        Expr { kind: ExprKind::Error, span, depth: 1 }
    }
}

impl Stmt {
    /// Build a node, replacing it by an error node if it is nested too deep.
    pub fn new(kind: StmtKind, span: Span, diags: &mut Vec<Diagnostic>) -> Stmt {
        let children: u32 = match &kind {
            StmtKind::If { then, els, .. } => then.depth.max(els.as_ref().map_or(0, |e| e.depth)),
            StmtKind::While { body, .. } | StmtKind::Foreach { body, .. } => body.depth,
            StmtKind::Block(stmts) => stmts.iter().map(|s| s.depth).max().unwrap_or(0),
            StmtKind::Assign { .. } | StmtKind::Expr(_) | StmtKind::Error => 0,
        };
        let depth = children + 1;
        if depth <= MAX_STMT_DEPTH {
            return Stmt { kind, span, depth };
        }
        if children <= MAX_STMT_DEPTH {
            diags.push(
                Diagnostic::error(format!("statements nested too deeply (more than {MAX_STMT_DEPTH} levels)"))
                    .at(Span::new(span.start, span.start + 1), "nesting passes the limit here"),
            );
        }
        Stmt { kind: StmtKind::Error, span, depth }
    }

    /// An error node (the error was reported where it was found).
    pub fn error(span: Span) -> Stmt {
        Stmt { kind: StmtKind::Error, span, depth: 1 }
    }
}
