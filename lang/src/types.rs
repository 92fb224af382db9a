//! Types, and the checked program: the syntax tree after name resolution and
//! type checking, with every name resolved to a variable, a parameter or a
//! built-in, every routine and operator resolved to its typed form, and every
//! loop's bound found. Lowering and the reference interpreter both read it.

use vinet_checker::bytecode::{Class, CmpOp, Const, Ty};

/// A transport-level field of a packet (protocol, ports, TCP flags), as the bytecode numbers it.
pub use vinet_checker::bytecode::Field as PacketField;

use crate::ast::Span;

/// The type of a value, as the checker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// true / false.
    Bool,
    /// A natural number.
    Num,
    /// An IP address: IPv6, or IPv4 (as IPv4-mapped IPv6; one type holds both).
    Addr,
    /// An IP prefix, IPv6 or IPv4.
    Prefix,
    /// A string.
    Str,
    /// A set of packets.
    Set,
    /// A grouping by address, named by its loop index (its keys are addresses).
    Groups,
    /// A grouping by a transport field, named by its loop index (its keys are numbers).
    NumGroups,
    /// GROUP_BY_CONTENT's destinations.
    AddrList,
    /// GROUP_BY_CONTENT's contents.
    Content,
    /// The type of an expression that already had an error: it matches
    /// everything, so one mistake gives one message.
    Error,
}

impl Type {
    /// The type in an operator's words, with its article.
    pub fn words(self) -> &'static str {
        match self {
            Type::Bool => "a boolean (true or false)",
            Type::Num => "a number",
            Type::Addr => "an IP address",
            Type::Prefix => "a prefix",
            Type::Str => "a string",
            Type::Set => "a packet set",
            Type::Groups | Type::NumGroups => "a grouping index",
            Type::AddrList => "a destination list (from GROUP_BY_CONTENT)",
            Type::Content => "a content list (from GROUP_BY_CONTENT)",
            Type::Error => "an erroneous value",
        }
    }

    /// The register type in the bytecode (none for [`Type::Error`]).
    pub fn to_bytecode(self) -> Option<Ty> {
        Some(match self {
            Type::Bool => Ty::Bool,
            Type::Num => Ty::Num,
            Type::Addr => Ty::Addr,
            Type::Prefix => Ty::Prefix,
            Type::Str => Ty::Str,
            Type::Set => Ty::Set,
            Type::Groups => Ty::Groups,
            Type::NumGroups => Ty::NumGroups,
            Type::AddrList => Ty::AddrList,
            Type::Content => Ty::Content,
            Type::Error => return None,
        })
    }

    /// The type of a constant.
    pub fn of_const(c: &Const) -> Type {
        match c {
            Const::Addr(_) | Const::Addr6(_) => Type::Addr,
            Const::Prefix(..) | Const::Prefix6(..) => Type::Prefix,
            Const::Str(_) => Type::Str,
            Const::Num(_) => Type::Num,
        }
    }

    /// `==` and `!=` are defined on it.
    pub fn is_scalar(self) -> bool {
        matches!(self, Type::Bool | Type::Num | Type::Addr | Type::Prefix | Type::Str | Type::Error)
    }

    /// Compatible with `other` (equal, or one is [`Type::Error`]).
    pub fn fits(self, other: Type) -> bool {
        self == other || self == Type::Error || other == Type::Error
    }
}

/// Index of a variable in [`Program::vars`]; also its register number.
pub type VarId = usize;

/// A variable (one per declaration; a name reused after a `foreach` that
/// owned it is a new variable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Var {
    /// The source name (`Packets` for the family `Packets(i)`).
    pub name: String,
    /// Its type.
    pub ty: Type,
    /// Where it was first assigned.
    pub span: Span,
}

/// A declared parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamDecl {
    /// Its name.
    pub name: String,
    /// Its value (from the PARAM line, or `--param`).
    pub value: Const,
    /// The PARAM line (none for a parameter given only by `--param`).
    pub span: Option<Span>,
}

/// A checked program.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// LIFETIME in seconds.
    pub lifetime_secs: u64,
    /// CLASS, given or inferred.
    pub class: Class,
    /// Parameters in declaration order (then those given only by `--param`).
    pub params: Vec<ParamDecl>,
    /// Every variable.
    pub vars: Vec<Var>,
    /// The statements.
    pub body: Vec<Stmt>,
}

/// A checked statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    /// What it does.
    pub kind: StmtKind,
    /// The whole statement.
    pub span: Span,
}

/// Which field a grouping routine looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The destination: GROUP_BY_DESTINATION.
    Dst,
    /// The source: GROUP_BY_SOURCE.
    Src,
}

/// What a grouping groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// An address (GROUP_BY_DESTINATION, GROUP_BY_SOURCE): the keys are addresses.
    Addr(Field),
    /// A transport field (GROUP_BY_PROTOCOL, GROUP_BY_SOURCE_PORT,
    /// GROUP_BY_DESTINATION_PORT): the keys are numbers, and the packets
    /// without the field (no ports) are in no group.
    Number(PacketField),
}

/// A linear ranking function over variables: `constant + sum(c * v)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rank {
    /// Coefficients of numeric variables.
    pub terms: Vec<(VarId, i64)>,
    /// The constant term.
    pub constant: i64,
}

/// The kinds of checked statement.
#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `var = value`
    Assign {
        /// The variable.
        var: VarId,
        /// Its new value.
        value: Expr,
    },
    /// `Key(i), Set(i) = GROUP_BY_x(of)`: `groups` is the index variable `i`.
    Grouping {
        /// The index variable (type Groups, or NumGroups for a grouping by number).
        groups: VarId,
        /// The key family (type Addr, or Num for a grouping by number), bound by `foreach`.
        key: VarId,
        /// The set family (type Set), bound by `foreach`.
        set: VarId,
        /// What it groups by.
        by: By,
        /// The grouped set.
        of: Expr,
    },
    /// `Dests, Content = GROUP_BY_CONTENT(of)`
    GroupContent {
        /// The destinations variable.
        dests: VarId,
        /// The contents variable.
        content: VarId,
        /// The set.
        of: Expr,
    },
    /// `DISCARD(set)`
    Discard(Expr),
    /// `GENERATE(src, dst, payload)`
    Generate {
        /// Source address.
        src: Expr,
        /// Destination address.
        dst: Expr,
        /// A string, an address list or a content list.
        payload: Expr,
    },
    /// `if cond then A else B`
    If {
        /// The condition.
        cond: Expr,
        /// Then branch.
        then: Vec<Stmt>,
        /// Else branch (empty if none).
        els: Vec<Stmt>,
    },
    /// `foreach i do body`
    Foreach {
        /// The index variable (type Groups or NumGroups).
        groups: VarId,
        /// The key family's variable.
        key: VarId,
        /// The set family's variable.
        set: VarId,
        /// The body.
        body: Vec<Stmt>,
        /// `foreach i do` (for the instruction's span).
        head: Span,
    },
    /// `while cond do body`, with the bound the compiler found.
    While {
        /// The guard.
        cond: Expr,
        /// The body.
        body: Vec<Stmt>,
        /// At most this many iterations.
        bound: u32,
        /// The ranking function showing it.
        rank: Rank,
    },
}

/// A checked expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it computes.
    pub kind: ExprKind,
    /// Its type (never [`Type::Error`] in a program that checked).
    pub ty: Type,
    /// Where.
    pub span: Span,
}

/// Binary operations, resolved by operand type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `and` (booleans, both evaluated)
    And,
    /// `or` (booleans, both evaluated)
    Or,
    /// A comparison.
    Cmp(CmpOp),
    /// `addr in prefix`
    In,
    /// `addr & mask`
    Mask,
    /// `+` on numbers
    Add,
    /// `-` on numbers, truncated at zero
    Sub,
    /// `*` on numbers
    Mul,
    /// `+` on strings
    Concat,
}

/// Routines that compute a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routine {
    /// GROUP_BY_DESTINATION / GROUP_BY_SOURCE, keyed form: `(set, address or prefix)`.
    Filter(Field),
    /// CONTAINS_STRING(set, string)
    ContainsString,
    /// COUNT(set)
    Count,
    /// DISTINCT_DESTINATIONS(set)
    DistinctDestinations,
    /// Narrowing by a transport field. For `Proto`, `SrcPort` and `DstPort`
    /// (GROUP_BY_PROTOCOL, GROUP_BY_SOURCE_PORT, GROUP_BY_DESTINATION_PORT, keyed):
    /// `(set, value)` or `(set, lo, hi)`, numbers. For `TcpFlags` (TCP_FLAGS):
    /// `(set, on, off)`.
    Narrow(PacketField),
    /// DISTINCT_DESTINATION_PORTS(set)
    DistinctDestinationPorts,
}

/// The kinds of checked expression.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A constant.
    Const(Const),
    /// `true` / `false`.
    Bool(bool),
    /// A variable (or, inside `foreach`, a family member `Key(i)`, `Set(i)`).
    Var(VarId),
    /// A parameter, by index.
    Param(usize),
    /// THIS_IP
    ThisIp,
    /// THIS_SUBNET_IP
    ThisSubnet,
    /// AllPackets
    AllPackets,
    /// OnPackets: the window's packets carrying THIS_ON, an overlay-network owner's flow id
    OnPackets,
    /// `not e`
    Not(Box<Expr>),
    /// `a OP b`
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// A routine call.
    Call(Routine, Vec<Expr>),
    /// Already reported.
    Error,
}
