//! The reference interpreter: the meaning of a checked VInet program
//! (docs/SEMANTICS.md), written to be obviously right rather than fast.
//!
//! It runs the checked tree, not the bytecode, one packet at a time with
//! plain vectors and hash sets, over a whole window. The engine's property
//! tests compare the VM against it on random windows; if the two disagree,
//! this file is the one that is easy to read.
//!
//! Addresses are `u128`, host byte order, in vinet's one address space: an
//! IPv4 address is its IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
//! [`vinet_checker::mapped`]) and an IPv4 prefix `/n` the `/96+n` of it, so
//! packets, THIS_IP, THIS_SUBNET_IP and constants of both families compare
//! with plain 128-bit masks.

use std::collections::HashSet;

use vinet_checker::bytecode::{CmpOp, Const};
use vinet_checker::policy::UnitCosts;

use crate::ast::Span;
use crate::types::{BinOp, By, Expr, ExprKind, Field, PacketField, Program, Routine, Stmt, StmtKind};

/// UDP port of generated packets, both source and destination.
pub const GENERATE_PORT: u16 = 9910;
/// Most addresses in one generated address-list packet.
pub const ADDRS_PER_PACKET: usize = 360;
/// Bytes of one address in an address-list packet whose addresses are all IPv4.
pub const V4_ADDR_BYTES: usize = 4;
/// Bytes of one address in an address-list packet with an IPv6 address.
pub const V6_ADDR_BYTES: usize = 16;
/// Longest string or generated payload, in bytes (an IPv4 UDP payload).
pub use crate::tokens::MAX_STRING;
/// Magic at the start of an address-list payload.
pub const ADDR_LIST_MAGIC: &[u8; 4] = b"VND1";

/// A packet of the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefPacket {
    /// Source address (IPv4 as IPv4-mapped).
    pub src: u128,
    /// Destination address (IPv4 as IPv4-mapped).
    pub dst: u128,
    /// IP protocol number (6 is TCP).
    pub proto: u8,
    /// Source port (meaningful only when `has_ports`).
    pub sport: u16,
    /// Destination port (meaningful only when `has_ports`).
    pub dport: u16,
    /// The packet has ports (docs/SEMANTICS.md, "Packet fields"): it is TCP (6) or UDP
    /// (17), not a non-first fragment, and its captured bytes hold the whole transport
    /// header. A packet without ports is never port 0: it is in no port narrowing or group.
    pub has_ports: bool,
    /// The TCP flags byte (FIN = 1 ... CWR = 128); meaningful only when `proto` is 6 and
    /// `has_ports`.
    pub tcp_flags: u8,
    /// TCP sequence number (0 if not TCP).
    pub seq: u32,
    /// The overlay-network flow id it carries (its GRE key), if any.
    pub on_key: Option<u32>,
    /// The payload.
    pub payload: Vec<u8>,
}

/// What a run is bound to.
#[derive(Clone, Debug)]
pub struct RefEnv {
    /// THIS_IP (IPv4 as IPv4-mapped); for an overlay-network owner, which has no
    /// address, THIS_ON (its flow id).
    pub this_ip: u128,
    /// THIS_SUBNET_IP: network and length in the 128-bit space (an IPv4 `/n` is `/96+n`).
    pub this_subnet: (u128, u8),
    /// Parameter values bound at install time, overriding the defaults.
    pub params: Vec<(String, Const)>,
    /// The policy's unit costs.
    pub unit_costs: UnitCosts,
    /// Stop with [`RefFault::OutOfFuel`] once the cost passes this.
    pub fuel: Option<u64>,
}

/// The effects of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefEffects {
    /// Indices of the dropped packets, ascending.
    pub dropped: Vec<usize>,
    /// Generated packets `(src, dst, UDP payload)`, in generation order.
    pub generated: Vec<(u128, u128, Vec<u8>)>,
    /// Generations skipped because their source and destination are of two
    /// families (one IPv4, one IPv6): no packet can carry both, so none is sent
    /// (and the run goes on; they are charged like the others).
    pub skipped: u64,
    /// The cost charged (sum of unit cost times packets touched).
    pub cost: u64,
}

/// Why a run stopped; its effects are thrown away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefFault {
    /// `+` or `*` overflowed 64 bits (or the cost did).
    Overflow {
        /// The operation.
        span: Span,
    },
    /// The cost passed the fuel.
    OutOfFuel {
        /// The routine call that passed it.
        span: Span,
    },
    /// A string or a generated payload passed [`MAX_STRING`] bytes.
    TooLong {
        /// The operation that made it.
        span: Span,
    },
    /// A loop ran more times than its bound (a program the prover would reject).
    LoopBound {
        /// The loop's condition.
        span: Span,
    },
    /// A parameter binding has a type other than the parameter's.
    BadParam(String),
}

/// A value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// A number.
    Num(u64),
    /// An address (IPv4 as IPv4-mapped).
    Addr(u128),
    /// A prefix: network and length in the 128-bit space.
    Prefix(u128, u8),
    /// A byte string.
    Str(Vec<u8>),
    /// Packet indices, ascending.
    Set(Vec<usize>),
    /// Groups `(key, packets)` in order of their first packet.
    Groups(Vec<(u128, Vec<usize>)>),
    /// Groups by a transport field `(key, packets)`, in order of their first packet.
    NumGroups(Vec<(u64, Vec<usize>)>),
    /// Distinct addresses in order of first appearance.
    AddrList(Vec<u128>),
    /// Distinct payloads in order of first appearance.
    Content(Vec<Vec<u8>>),
}

impl Value {
    fn of_const(c: &Const) -> Value {
        match c {
            Const::Addr(a) => Value::Addr(vinet_checker::mapped(*a)),
            Const::Addr6(a) => Value::Addr(*a),
            Const::Prefix(n, l) => Value::Prefix(vinet_checker::mapped(*n), l.saturating_add(96)),
            Const::Prefix6(n, l) => Value::Prefix(*n, *l),
            Const::Str(s) => Value::Str(s.as_bytes().to_vec()),
            Const::Num(n) => Value::Num(*n),
        }
    }
}

/// Run `program` over `window`.
pub fn run(program: &Program, window: &[RefPacket], env: &RefEnv) -> Result<RefEffects, RefFault> {
    let mut params = Vec::with_capacity(program.params.len());
    for p in &program.params {
        let value = match env.params.iter().find(|(n, _)| *n == p.name) {
            // Of the parameter's type; an address or prefix of either family.
            Some((_, v)) if v.ty() == p.value.ty() => v,
            Some(_) => return Err(RefFault::BadParam(p.name.clone())),
            None => &p.value,
        };
        params.push(Value::of_const(value));
    }
    let mut m = Machine {
        window,
        env,
        params,
        vars: vec![None; program.vars.len()],
        dropped: HashSet::new(),
        generated: vec![],
        skipped: 0,
        cost: 0,
    };
    m.block(&program.body)?;
    let mut dropped: Vec<usize> = m.dropped.into_iter().collect();
    dropped.sort_unstable();
    Ok(RefEffects { dropped, generated: m.generated, skipped: m.skipped, cost: m.cost })
}

struct Machine<'w> {
    window: &'w [RefPacket],
    env: &'w RefEnv,
    params: Vec<Value>,
    vars: Vec<Option<Value>>,
    dropped: HashSet<usize>,
    generated: Vec<(u128, u128, Vec<u8>)>,
    skipped: u64,
    cost: u64,
}

/// Whether an address is IPv4 (IPv4-mapped).
fn is_v4(a: u128) -> bool {
    a >> 32 == 0xffff
}

/// The payload of one address-list packet: the magic, the count (u32), then
/// each address in network byte order, 4 bytes if every address of the packet
/// is IPv4, else 16.
pub fn addr_list_payload(addrs: &[u128]) -> Vec<u8> {
    let v4 = addrs.iter().all(|&a| is_v4(a));
    let width = if v4 { V4_ADDR_BYTES } else { V6_ADDR_BYTES };
    let mut p = Vec::with_capacity(8 + width * addrs.len());
    p.extend(ADDR_LIST_MAGIC);
    p.extend((addrs.len() as u32).to_be_bytes());
    for &a in addrs {
        if v4 {
            p.extend((a as u32).to_be_bytes());
        } else {
            p.extend(a.to_be_bytes());
        }
    }
    p
}

fn in_prefix(a: u128, net: u128, len: u8) -> bool {
    a & vinet_checker::netmask(len) == net
}

impl RefPacket {
    /// Whether it has ports (docs/SEMANTICS.md, "Packet fields"): a whole TCP or UDP header.
    pub fn ports(&self) -> bool {
        self.has_ports && (self.proto == 6 || self.proto == 17)
    }

    /// Whether it has TCP flags: it is TCP and has ports (a whole TCP header).
    pub fn flags(&self) -> bool {
        self.proto == 6 && self.ports()
    }

    /// The value of a transport field, if the packet has it.
    pub fn field(&self, f: PacketField) -> Option<u64> {
        match f {
            PacketField::Proto => Some(u64::from(self.proto)),
            PacketField::SrcPort => self.ports().then_some(u64::from(self.sport)),
            PacketField::DstPort => self.ports().then_some(u64::from(self.dport)),
            PacketField::TcpFlags => self.flags().then_some(u64::from(self.tcp_flags)),
        }
    }
}

/// Whether a packet is in a narrowing by `f` with operands `a`, `b`: for the
/// protocol and the ports, `a <= value <= b`; for the flags, every flag of `a`
/// set and every flag of `b` clear. A packet without the field is in none.
pub fn narrows(p: &RefPacket, f: PacketField, a: u64, b: u64) -> bool {
    match (f, p.field(f)) {
        (_, None) => false,
        (PacketField::TcpFlags, Some(flags)) => flags & a == a && flags & b == 0,
        (_, Some(v)) => a <= v && v <= b,
    }
}

impl Machine<'_> {
    fn charge(&mut self, unit: u64, count: usize, span: Span) -> Result<(), RefFault> {
        let amount = unit.checked_mul(count as u64).ok_or(RefFault::Overflow { span })?;
        self.cost = self.cost.checked_add(amount).ok_or(RefFault::Overflow { span })?;
        match self.env.fuel {
            Some(fuel) if self.cost > fuel => Err(RefFault::OutOfFuel { span }),
            _ => Ok(()),
        }
    }

    /// A string operation on `n` bytes: BYTES per 64 bytes or part.
    fn bytes(&mut self, n: usize, span: Span) -> Result<(), RefFault> {
        self.charge(self.env.unit_costs.bytes, n.div_ceil(64), span)
    }

    /// One instruction of the bytecode the compiler makes of a statement or
    /// an expression: every statement and every expression but a variable
    /// read (which uses the variable's register in place) is one, and an
    /// assignment from a variable is a copy.
    fn instruction(&mut self, span: Span) -> Result<(), RefFault> {
        self.charge(self.env.unit_costs.instruction, 1, span)
    }

    fn block(&mut self, stmts: &[Stmt]) -> Result<(), RefFault> {
        for s in stmts {
            self.stmt(s)?;
        }
        Ok(())
    }

    fn set(&mut self, e: &Expr) -> Result<Vec<usize>, RefFault> {
        match self.eval(e)? {
            Value::Set(s) => Ok(s),
            other => unreachable_type("a packet set", &other),
        }
    }

    fn num(&mut self, e: &Expr) -> Result<u64, RefFault> {
        match self.eval(e)? {
            Value::Num(n) => Ok(n),
            other => unreachable_type("a number", &other),
        }
    }

    fn addr(&mut self, e: &Expr) -> Result<u128, RefFault> {
        match self.eval(e)? {
            Value::Addr(a) => Ok(a),
            other => unreachable_type("an address", &other),
        }
    }

    fn stmt(&mut self, s: &Stmt) -> Result<(), RefFault> {
        let costs = self.env.unit_costs;
        match &s.kind {
            StmtKind::Assign { var, value } => {
                let v = self.eval(value)?;
                if let ExprKind::Var(_) = value.kind {
                    // A copy: it moves a string's bytes, a grouping's or a list's members.
                    self.instruction(s.span)?;
                    match &v {
                        Value::Str(b) => self.bytes(b.len(), s.span)?,
                        Value::Groups(g) => self.charge(costs.instruction, g.iter().map(|(_, m)| m.len()).sum(), s.span)?,
                        Value::NumGroups(g) => self.charge(costs.instruction, g.iter().map(|(_, m)| m.len()).sum(), s.span)?,
                        Value::AddrList(l) => self.charge(costs.instruction, l.len(), s.span)?,
                        Value::Content(c) => self.charge(costs.instruction, c.len(), s.span)?,
                        _ => {}
                    }
                }
                self.vars[*var] = Some(v);
            }
            StmtKind::Grouping { groups, by: By::Number(f), of, .. } => {
                self.instruction(s.span)?;
                let set = self.set(of)?;
                self.charge(costs.by_field[*f as usize], set.len(), s.span)?;
                self.charge(costs.grouping, 1, s.span)?;
                let mut out: Vec<(u64, Vec<usize>)> = vec![];
                for i in set {
                    // A packet without the field is in no group.
                    let Some(key) = self.window[i].field(*f) else { continue };
                    match out.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, members)) => members.push(i),
                        None => out.push((key, vec![i])),
                    }
                }
                self.vars[*groups] = Some(Value::NumGroups(out));
            }
            StmtKind::Grouping { groups, by: By::Addr(by), of, .. } => {
                self.instruction(s.span)?;
                let set = self.set(of)?;
                let unit = match by {
                    Field::Dst => costs.group_by_destination,
                    Field::Src => costs.group_by_source,
                };
                self.charge(unit, set.len(), s.span)?;
                self.charge(costs.grouping, 1, s.span)?;
                let mut out: Vec<(u128, Vec<usize>)> = vec![];
                for i in set {
                    let p = &self.window[i];
                    let key = if *by == Field::Dst { p.dst } else { p.src };
                    match out.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, members)) => members.push(i),
                        None => out.push((key, vec![i])),
                    }
                }
                self.vars[*groups] = Some(Value::Groups(out));
            }
            StmtKind::GroupContent { dests, content, of } => {
                self.instruction(s.span)?;
                let set = self.set(of)?;
                self.charge(costs.group_by_content, set.len(), s.span)?;
                self.charge(costs.grouping, 1, s.span)?;
                let (mut d, mut c): (Vec<u128>, Vec<Vec<u8>>) = (vec![], vec![]);
                for i in set {
                    let p = &self.window[i];
                    if !d.contains(&p.dst) {
                        d.push(p.dst);
                    }
                    if !c.contains(&p.payload) {
                        c.push(p.payload.clone());
                    }
                }
                self.vars[*dests] = Some(Value::AddrList(d));
                self.vars[*content] = Some(Value::Content(c));
            }
            StmtKind::Discard(e) => {
                self.instruction(s.span)?;
                let set = self.set(e)?;
                self.charge(costs.discard, set.len(), s.span)?;
                self.dropped.extend(set);
            }
            StmtKind::Generate { src, dst, payload } => {
                self.instruction(s.span)?;
                let (src, dst) = (self.addr(src)?, self.addr(dst)?);
                let payloads: Vec<Vec<u8>> = match self.eval(payload)? {
                    Value::Str(s) => {
                        // A packet, charged a unit per 64 bytes (or part) it carries.
                        self.charge(costs.generate, s.len().div_ceil(64).max(1), payload.span)?;
                        self.bytes(s.len(), payload.span)?;
                        if s.len() > MAX_STRING {
                            return Err(RefFault::TooLong { span: payload.span });
                        }
                        vec![s]
                    }
                    Value::AddrList(list) => {
                        self.charge(costs.generate, list.len(), payload.span)?;
                        list.chunks(ADDRS_PER_PACKET).map(addr_list_payload).collect()
                    }
                    Value::Content(items) => {
                        self.charge(costs.generate, items.len(), payload.span)?;
                        items
                    }
                    other => return unreachable_type("a GENERATE payload", &other),
                };
                // A packet has one family: from IPv4 to IPv4, or from IPv6 to IPv6.
                if is_v4(src) == is_v4(dst) {
                    self.generated.extend(payloads.into_iter().map(|p| (src, dst, p)));
                } else {
                    self.skipped += 1;
                }
            }
            StmtKind::If { cond, then, els } => {
                self.instruction(s.span)?;
                if self.truth(cond)? {
                    self.block(then)?;
                } else {
                    self.block(els)?;
                }
            }
            StmtKind::Foreach { groups, key, set, body, .. } => {
                let gs: Vec<(Value, Vec<usize>)> = match self.vars[*groups].clone() {
                    Some(Value::Groups(gs)) => gs.into_iter().map(|(k, m)| (Value::Addr(k), m)).collect(),
                    Some(Value::NumGroups(gs)) => gs.into_iter().map(|(k, m)| (Value::Num(k), m)).collect(),
                    _ => return unreachable_type("a grouping", &Value::Bool(false)),
                };
                self.instruction(s.span)?;
                for (k, members) in gs {
                    self.vars[*key] = Some(k);
                    self.vars[*set] = Some(Value::Set(members));
                    self.charge(costs.loop_turn(), 1, s.span)?; // each iteration
                    self.block(body)?;
                }
            }
            StmtKind::While { cond, body, bound, .. } => {
                self.instruction(s.span)?;
                let mut iterations: u32 = 0;
                while self.truth(cond)? {
                    if iterations >= *bound {
                        return Err(RefFault::LoopBound { span: cond.span });
                    }
                    iterations += 1;
                    self.charge(costs.loop_turn(), 1, cond.span)?; // each iteration
                    self.block(body)?;
                }
            }
        }
        Ok(())
    }

    fn truth(&mut self, e: &Expr) -> Result<bool, RefFault> {
        match self.eval(e)? {
            Value::Bool(b) => Ok(b),
            other => unreachable_type("a boolean", &other),
        }
    }

    fn eval(&mut self, e: &Expr) -> Result<Value, RefFault> {
        let costs = self.env.unit_costs;
        if !matches!(e.kind, ExprKind::Var(_)) {
            self.instruction(e.span)?;
        }
        Ok(match &e.kind {
            ExprKind::Const(c) => {
                let v = Value::of_const(c);
                if let Value::Str(b) = &v {
                    self.bytes(b.len(), e.span)?;
                }
                v
            }
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::Var(v) => match self.vars.get(*v).cloned().flatten() {
                Some(v) => v,
                None => return unreachable_type("an assigned variable", &Value::Bool(false)),
            },
            ExprKind::Param(p) => {
                let v = self.params[*p].clone();
                if let Value::Str(b) = &v {
                    self.bytes(b.len(), e.span)?;
                }
                v
            }
            ExprKind::ThisIp => Value::Addr(self.env.this_ip),
            ExprKind::ThisSubnet => Value::Prefix(self.env.this_subnet.0, self.env.this_subnet.1),
            ExprKind::AllPackets => Value::Set((0..self.window.len()).collect()),
            // Two instructions (AllPackets, then the narrowing), its unit a window packet.
            ExprKind::OnPackets => {
                self.instruction(e.span)?;
                self.charge(costs.by_field[0], self.window.len(), e.span)?;
                let on = self.env.this_ip;
                Value::Set((0..self.window.len()).filter(|&i| self.window[i].on_key.map(u128::from) == Some(on)).collect())
            }
            ExprKind::Not(a) => Value::Bool(!self.truth(a)?),
            ExprKind::Binary(op, a, b) => {
                // Both operands are evaluated, always (`and`, `or` included).
                let (a, b) = (self.eval(a)?, self.eval(b)?);
                match (op, &a, &b) {
                    (BinOp::Concat, Value::Str(x), Value::Str(y)) => self.bytes(x.len() + y.len(), e.span)?,
                    (BinOp::Cmp(_), Value::Str(x), Value::Str(y)) => self.bytes(x.len().min(y.len()), e.span)?,
                    _ => {}
                }
                binary(*op, a, b, e.span)?
            }
            ExprKind::Call(r, args) => {
                let set = self.set(&args[0])?;
                match r {
                    Routine::Filter(field) => {
                        let unit = match field {
                            Field::Dst => costs.group_by_destination,
                            Field::Src => costs.group_by_source,
                        };
                        self.charge(unit, set.len(), e.span)?;
                        let by = self.eval(&args[1])?;
                        let keep = |p: &RefPacket| {
                            let a = if *field == Field::Dst { p.dst } else { p.src };
                            match by {
                                Value::Addr(x) => a == x,
                                Value::Prefix(n, l) => in_prefix(a, n, l),
                                _ => false,
                            }
                        };
                        Value::Set(set.into_iter().filter(|&i| keep(&self.window[i])).collect())
                    }
                    Routine::ContainsString => {
                        self.charge(costs.contains_string, set.len(), e.span)?;
                        let Value::Str(needle) = self.eval(&args[1])? else {
                            return unreachable_type("a string", &Value::Bool(false));
                        };
                        self.bytes(needle.len(), e.span)?;
                        Value::Bool(contains_string(self.window, &set, &needle))
                    }
                    Routine::Count => {
                        self.charge(costs.count, set.len(), e.span)?;
                        Value::Num(set.len() as u64)
                    }
                    Routine::DistinctDestinations => {
                        self.charge(costs.distinct_destinations, set.len(), e.span)?;
                        let d: HashSet<u128> = set.iter().map(|&i| self.window[i].dst).collect();
                        Value::Num(d.len() as u64)
                    }
                    Routine::Narrow(f) => {
                        // One value is both ends of its range, evaluated once.
                        let a = self.num(&args[1])?;
                        let b = match args.get(2) {
                            Some(b) => self.num(b)?,
                            None => a,
                        };
                        self.charge(costs.by_field[*f as usize], set.len(), e.span)?;
                        Value::Set(set.into_iter().filter(|&i| narrows(&self.window[i], *f, a, b)).collect())
                    }
                    Routine::DistinctDestinationPorts => {
                        self.charge(costs.distinct_ports, set.len(), e.span)?;
                        let d: HashSet<u64> = set.iter().filter_map(|&i| self.window[i].field(PacketField::DstPort)).collect();
                        Value::Num(d.len() as u64)
                    }
                }
            }
            ExprKind::Error => return unreachable_type("a checked expression", &Value::Bool(false)),
        })
    }
}

fn binary(op: BinOp, a: Value, b: Value, span: Span) -> Result<Value, RefFault> {
    use Value::*;
    Ok(match (op, a, b) {
        (BinOp::And, Bool(x), Bool(y)) => Bool(x && y),
        (BinOp::Or, Bool(x), Bool(y)) => Bool(x || y),
        (BinOp::Cmp(CmpOp::Eq), x, y) => Bool(x == y),
        (BinOp::Cmp(CmpOp::Ne), x, y) => Bool(x != y),
        (BinOp::Cmp(CmpOp::Lt), Num(x), Num(y)) => Bool(x < y),
        (BinOp::Cmp(CmpOp::Le), Num(x), Num(y)) => Bool(x <= y),
        (BinOp::Cmp(CmpOp::Gt), Num(x), Num(y)) => Bool(x > y),
        (BinOp::Cmp(CmpOp::Ge), Num(x), Num(y)) => Bool(x >= y),
        (BinOp::In, Addr(a), Prefix(n, l)) => Bool(in_prefix(a, n, l)),
        (BinOp::Mask, Addr(a), Addr(m)) => Addr(a & m),
        (BinOp::Add, Num(x), Num(y)) => Num(x.checked_add(y).ok_or(RefFault::Overflow { span })?),
        (BinOp::Sub, Num(x), Num(y)) => Num(x.saturating_sub(y)),
        (BinOp::Mul, Num(x), Num(y)) => Num(x.checked_mul(y).ok_or(RefFault::Overflow { span })?),
        (BinOp::Concat, Str(mut x), Str(y)) => {
            if x.len() + y.len() > MAX_STRING {
                return Err(RefFault::TooLong { span });
            }
            x.extend(y);
            Str(x)
        }
        (op, a, _) => return unreachable_type(&format!("operands of {op:?}"), &a),
    })
}

/// CONTAINS_STRING over the packets `set` of `window` (docs/SEMANTICS.md):
/// each payload is searched, and so is each run of contiguous TCP segments
/// of one flow, as one byte stream.
pub fn contains_string(window: &[RefPacket], set: &[usize], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return !set.is_empty();
    }
    let found = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    if set.iter().any(|&i| found(&window[i].payload)) {
        return true;
    }
    // TCP flows, each in arrival order (set is ascending).
    type Flow = (u128, u128, u16, u16);
    let mut flows: Vec<(Flow, Vec<usize>)> = vec![];
    for &i in set {
        let p = &window[i];
        if p.proto != 6 {
            continue;
        }
        let key = (p.src, p.dst, p.sport, p.dport);
        match flows.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => flows.push((key, vec![i])),
        }
    }
    for (_, members) in flows {
        let mut stream: Vec<u8> = vec![];
        let mut prev: Option<&RefPacket> = None;
        for &i in &members {
            let p = &window[i];
            let continues = prev.is_some_and(|q| q.seq.wrapping_add(q.payload.len() as u32) == p.seq);
            if !continues {
                if found(&stream) {
                    return true;
                }
                stream.clear();
            }
            stream.extend_from_slice(&p.payload);
            prev = Some(p);
        }
        if found(&stream) {
            return true;
        }
    }
    false
}

/// A checked program cannot produce a value of the wrong type; if it does,
/// the checker has a bug. The reference interpreter must not panic on any
/// checked program, so this is reported as a fault naming the problem.
fn unreachable_type<T>(want: &str, got: &Value) -> Result<T, RefFault> {
    Err(RefFault::BadParam(format!("internal: expected {want}, found {got:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Routine and loop costs only (INSTRUCTION and BYTES 0), so the figures
    /// below count what the routines touch; the engine's property test
    /// compares the machine costs with the VM's.
    fn costs() -> UnitCosts {
        UnitCosts {
            discard: 1,
            group_by_destination: 1,
            group_by_source: 2,
            group_by_content: 8,
            contains_string: 6,
            generate: 4,
            count: 1,
            distinct_destinations: 3,
            by_field: [1, 1, 1, 1],
            distinct_ports: 3,
            grouping: 0,
            instruction: 0,
            bytes: 0,
        }
    }

    fn env() -> RefEnv {
        RefEnv { this_ip: ip("10.0.0.7"), this_subnet: (ip("10.0.0.0"), 96 + 24), params: vec![], unit_costs: costs(), fuel: None }
    }

    fn ip(s: &str) -> u128 {
        vinet_vocab::parse_addr(s).unwrap_or_else(|| panic!("{s}"))
    }

    fn pkt(src: &str, dst: &str, payload: &str) -> RefPacket {
        RefPacket {
            src: ip(src),
            dst: ip(dst),
            proto: 17,
            sport: 1,
            dport: 2,
            has_ports: true,
            tcp_flags: 0,
            seq: 0,
            on_key: None,
            payload: payload.as_bytes().to_vec(),
        }
    }

    fn tcp(src: &str, dst: &str, seq: u32, payload: &str) -> RefPacket {
        RefPacket { proto: 6, seq, ..pkt(src, dst, payload) }
    }

    fn program(file: &str) -> Program {
        let path = format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"));
        let src = std::fs::read(&path).unwrap();
        crate::compile(file, &src, &[]).unwrap().program
    }

    fn source(src: &str) -> Program {
        match crate::compile("t.vinet", src.as_bytes(), &[]) {
            Ok(c) => c.program,
            Err(d) => panic!("{}", d.render()),
        }
    }

    #[test]
    fn firewall_drops_only_srcip_to_this_ip() {
        let w = vec![
            pkt("203.0.113.9", "10.0.0.7", "a"),
            pkt("203.0.113.9", "10.0.0.8", "b"),
            pkt("1.1.1.1", "10.0.0.7", "c"),
            pkt("203.0.113.9", "10.0.0.7", "d"),
        ];
        let fx = run(&program("firewall.vinet"), &w, &env()).unwrap();
        assert_eq!(fx.dropped, vec![0, 3]);
        assert!(fx.generated.is_empty());
        // GROUP_BY_DESTINATION over 4, GROUP_BY_SOURCE over 3 (x2), DISCARD over 2.
        assert_eq!(fx.cost, 4 + 3 * 2 + 2);
        let mut e = env();
        e.params = vec![("SrcIP".into(), Const::Addr(0x0101_0101))];
        assert_eq!(run(&program("firewall.vinet"), &w, &e).unwrap().dropped, vec![2]);
        e.params = vec![("SrcIP".into(), Const::Num(1))];
        assert!(matches!(run(&program("firewall.vinet"), &w, &e), Err(RefFault::BadParam(_))));
    }

    #[test]
    fn spam_filter_needs_both_words_from_one_source() {
        let w = vec![
            pkt("1.1.1.1", "10.0.0.7", "buy viagra"),
            pkt("2.2.2.2", "10.0.0.7", "lottery"),
            pkt("1.1.1.1", "10.0.0.7", "win the lottery"),
            pkt("3.3.3.3", "10.0.0.7", "viagra lottery"),
            pkt("3.3.3.3", "10.0.0.9", "viagra lottery"),
        ];
        let fx = run(&program("spam_filter.vinet"), &w, &env()).unwrap();
        assert_eq!(fx.dropped, vec![0, 2, 3]);
    }

    #[test]
    fn contains_string_across_tcp_segments() {
        let w = vec![
            tcp("1.1.1.1", "10.0.0.7", 100, "buy via"),
            tcp("1.1.1.1", "10.0.0.7", 107, "gra now"),
            tcp("2.2.2.2", "10.0.0.7", 100, "via"),
            tcp("2.2.2.2", "10.0.0.7", 500, "gra"),
        ];
        assert!(contains_string(&w, &[0, 1], b"viagra"));
        assert!(!contains_string(&w, &[2, 3], b"viagra"), "not contiguous");
        assert!(!contains_string(&w, &[0, 3], b"viagra"), "another flow");
        assert!(contains_string(&w, &[3], b""));
        assert!(!contains_string(&w, &[], b""));
        // Sequence numbers wrap.
        let w = vec![tcp("1.1.1.1", "10.0.0.7", u32::MAX - 1, "ab"), tcp("1.1.1.1", "10.0.0.7", 0, "cd")];
        assert!(contains_string(&w, &[0, 1], b"bc"));
    }

    #[test]
    fn multicast_generates_destinations_then_content() {
        let w = vec![
            pkt("198.51.100.7", "10.0.0.1", "movie"),
            pkt("198.51.100.7", "10.0.0.2", "movie"),
            pkt("198.51.100.7", "10.0.0.1", "news"),
            pkt("5.5.5.5", "10.0.0.3", "other"),
        ];
        let fx = run(&program("multicast.vinet"), &w, &env()).unwrap();
        assert_eq!(fx.dropped, vec![0, 1, 2]);
        let mut list = b"VND1".to_vec();
        list.extend(2u32.to_be_bytes());
        list.extend([10, 0, 0, 1, 10, 0, 0, 2]); // IPv4 destinations: 4 bytes each
        let (b, me) = (ip("198.51.100.7"), ip("10.0.0.7"));
        assert_eq!(fx.generated, vec![(b, me, list), (b, me, b"movie".to_vec()), (b, me, b"news".to_vec())]);
    }

    #[test]
    fn worm_blocker_counts_distinct_destinations() {
        let mut w: Vec<RefPacket> = (1..=9).map(|i| pkt("6.6.6.6", &format!("10.0.0.{i}"), "")).collect();
        w.push(pkt("7.7.7.7", "10.0.0.1", ""));
        w.push(pkt("6.6.6.6", "11.0.0.1", ""));
        let fx = run(&program("worm_blocker.vinet"), &w, &env()).unwrap();
        assert_eq!(fx.dropped, (0..9).collect::<Vec<_>>());
    }

    #[test]
    fn arithmetic_faults_and_truncates() {
        let p = source("LIFETIME = 1 days\nx = 2 - 5; y = x * 3; z = 18446744073709551615 + y + 1;");
        assert!(matches!(run(&p, &[], &env()), Err(RefFault::Overflow { .. })));
        let p = source("LIFETIME = 1 days\nx = 2 - 5; if x == 0 then DISCARD(AllPackets);");
        assert_eq!(run(&p, &[pkt("1.1.1.1", "2.2.2.2", "")], &env()).unwrap().dropped, vec![0]);
    }

    #[test]
    fn loops_fuel_and_mask() {
        let p = source(
            "LIFETIME = 1 days\nn = 0; c = 0;\nwhile n < 3 do begin c = c + COUNT(AllPackets); n = n + 1 end;\n\
             if c == 6 and THIS_IP & 255.255.255.0 == 10.0.0.0 and THIS_IP in THIS_SUBNET_IP then DISCARD(AllPackets)",
        );
        let w = vec![pkt("1.1.1.1", "2.2.2.2", ""), pkt("1.1.1.1", "2.2.2.3", "")];
        let fx = run(&p, &w, &env()).unwrap();
        assert_eq!(fx.dropped, vec![0, 1]);
        // Three COUNTs of 2 packets, a DISCARD of 2, one unit per iteration.
        assert_eq!(fx.cost, 3 * 2 + 2 + 3);
        let mut e = env();
        e.fuel = Some(5);
        assert!(matches!(run(&p, &w, &e), Err(RefFault::OutOfFuel { .. })));
        let long = format!("LIFETIME = 1 days\ns = \"{}\";\ns = s + s;", "x".repeat(40_000));
        let too_long = format!("LIFETIME = 1 days\ns = \"{}\";", "x".repeat(MAX_STRING + 1));
        assert!(crate::compile("t", too_long.as_bytes(), &[]).is_err());
        assert!(matches!(run(&source(&long), &w, &env()), Err(RefFault::TooLong { .. })));
        let p = source("LIFETIME = 1 days\nn = 0;\nwhile n < 3 do n = n + 0;");
        assert!(matches!(run(&p, &w, &env()), Err(RefFault::LoopBound { .. })));
    }

    #[test]
    fn generate_strings_and_large_address_lists() {
        let p = source(
            "LIFETIME = 1 days\nD, C = GROUP_BY_CONTENT(AllPackets);\nGENERATE(THIS_IP, THIS_IP, \"hi\" + \"!\");\nGENERATE(THIS_IP, THIS_IP, D);",
        );
        let w: Vec<RefPacket> = (0..400u32).map(|i| RefPacket { dst: vinet_checker::mapped(i), ..pkt("1.1.1.1", "0.0.0.0", "") }).collect();
        let fx = run(&p, &w, &env()).unwrap();
        assert_eq!(fx.generated.len(), 3);
        assert_eq!(fx.generated[0].2, b"hi!");
        assert_eq!(fx.generated[1].2.len(), 8 + 360 * 4);
        assert_eq!(&fx.generated[2].2[4..8], &40u32.to_be_bytes());
        assert_eq!(fx.cost, 400 * 8 + 4 + 400 * 4);
    }

    /// A packet with the given transport fields, from 1.1.1.1 to 10.0.0.7.
    fn tp(proto: u8, sport: u16, dport: u16, has_ports: bool, tcp_flags: u8) -> RefPacket {
        RefPacket { proto, sport, dport, has_ports, tcp_flags, ..pkt("1.1.1.1", "10.0.0.7", "") }
    }

    /// The packets `DISCARD(set)` drops over `w`, and the cost, with `by_field`
    /// and `distinct_ports` made distinct so that the right one is charged.
    fn drops(set: &str, w: &[RefPacket]) -> (Vec<usize>, u64) {
        let mut e = env();
        e.unit_costs.by_field = [10, 100, 1000, 10_000];
        e.unit_costs.distinct_ports = 100_000;
        let fx = run(&source(&format!("LIFETIME = 1 days\nDISCARD({set});")), w, &e).unwrap();
        (fx.dropped, fx.cost)
    }

    #[test]
    fn narrowing_by_protocol() {
        let w = vec![tp(6, 1, 80, true, 2), tp(17, 1, 80, true, 0), tp(1, 0, 0, false, 0), tp(47, 0, 0, false, 0), tp(6, 0, 0, false, 0)];
        let n = w.len() as u64;
        // Every packet has a protocol, with ports or not. DISCARD costs 1 per packet.
        assert_eq!(drops("GROUP_BY_PROTOCOL(AllPackets, TCP)", &w), (vec![0, 4], 10 * n + 2));
        assert_eq!(drops("GROUP_BY_PROTOCOL(AllPackets, ICMP)", &w).0, vec![2]);
        assert_eq!(drops("GROUP_BY_PROTOCOL(AllPackets, 6, 17)", &w).0, vec![0, 1, 4]);
        assert_eq!(drops("GROUP_BY_PROTOCOL(AllPackets, 0, 255)", &w).0, vec![0, 1, 2, 3, 4]);
        // lo > hi, and values above 255: the empty set, still charged for what it looks at.
        assert_eq!(drops("GROUP_BY_PROTOCOL(AllPackets, 17, 6)", &w), (vec![], 10 * n));
        assert_eq!(drops("GROUP_BY_PROTOCOL(AllPackets, 262)", &w).0, Vec::<usize>::new());
        assert_eq!(drops("GROUP_BY_PROTOCOL(AllPackets, 256, 18446744073709551615)", &w).0, Vec::<usize>::new());
        // Narrowing a narrowing: charged per packet of its own set.
        assert_eq!(drops("GROUP_BY_PROTOCOL(GROUP_BY_PROTOCOL(AllPackets, 6, 17), UDP)", &w), (vec![1], 10 * n + 10 * 3 + 1));
        assert_eq!(drops("GROUP_BY_PROTOCOL(AllPackets, TCP)", &[]), (vec![], 0));
    }

    #[test]
    fn narrowing_by_ports_skips_packets_without_ports() {
        let w = vec![
            tp(6, 1000, 80, true, 16),
            tp(17, 53, 80, true, 0),
            tp(6, 1000, 80, false, 0), // header cut short: its port fields mean nothing
            tp(1, 0, 0, false, 0),     // ICMP: no ports, never port 0
            tp(17, 0, 0, true, 0),     // a real port 0
            tp(1, 0, 80, true, 0),     // inconsistent: ICMP cannot have ports
            tp(6, 0, 0, false, 0),     // a non-first fragment
        ];
        let n = w.len() as u64;
        assert_eq!(drops("GROUP_BY_DESTINATION_PORT(AllPackets, 80)", &w), (vec![0, 1], 1000 * n + 2));
        assert_eq!(drops("GROUP_BY_DESTINATION_PORT(AllPackets, 0)", &w).0, vec![4]);
        assert_eq!(drops("GROUP_BY_DESTINATION_PORT(AllPackets, 0, 65535)", &w).0, vec![0, 1, 4]);
        assert_eq!(drops("GROUP_BY_DESTINATION_PORT(AllPackets, 0, 18446744073709551615)", &w).0, vec![0, 1, 4]);
        assert_eq!(drops("GROUP_BY_DESTINATION_PORT(AllPackets, 81, 80)", &w), (vec![], 1000 * n));
        assert_eq!(drops("GROUP_BY_DESTINATION_PORT(AllPackets, 65616)", &w).0, Vec::<usize>::new()); // 65616 = 80 + 65536
        assert_eq!(drops("GROUP_BY_SOURCE_PORT(AllPackets, 1000)", &w), (vec![0], 100 * n + 1));
        assert_eq!(drops("GROUP_BY_SOURCE_PORT(AllPackets, 0, 999)", &w).0, vec![1, 4]);
        assert_eq!(drops("GROUP_BY_SOURCE_PORT(GROUP_BY_PROTOCOL(AllPackets, UDP), 0, 53)", &w).0, vec![1, 4]);
        // The complement is not "the rest": a packet without ports is in neither.
        let (low, _) = drops("GROUP_BY_DESTINATION_PORT(AllPackets, 0, 79)", &w);
        let (high, _) = drops("GROUP_BY_DESTINATION_PORT(AllPackets, 80, 65535)", &w);
        assert_eq!((low, high), (vec![4], vec![0, 1]));
    }

    #[test]
    fn tcp_flags_need_a_whole_tcp_header() {
        let w = vec![
            tp(6, 1, 2, true, 2),   // SYN
            tp(6, 1, 2, true, 18),  // SYN + ACK
            tp(6, 1, 2, true, 16),  // ACK
            tp(6, 1, 2, true, 4),   // RST
            tp(6, 1, 2, true, 255), // every flag
            tp(6, 1, 2, true, 0),   // none
            tp(17, 1, 2, true, 2),  // UDP: no flags, whatever the byte says
            tp(6, 1, 2, false, 2),  // TCP cut short: no flags
            tp(1, 0, 0, false, 2),  // ICMP
        ];
        let n = w.len() as u64;
        assert_eq!(drops("TCP_FLAGS(AllPackets, SYN, ACK)", &w), (vec![0], 10_000 * n + 1));
        assert_eq!(drops("TCP_FLAGS(AllPackets, SYN + ACK, 0)", &w).0, vec![1, 4]);
        assert_eq!(drops("TCP_FLAGS(AllPackets, ACK, SYN)", &w).0, vec![2]);
        assert_eq!(drops("TCP_FLAGS(AllPackets, 0, 0)", &w).0, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(drops("TCP_FLAGS(AllPackets, 0, FIN + SYN + RST + PSH + ACK + URG + ECE + CWR)", &w).0, vec![5]);
        assert_eq!(drops("TCP_FLAGS(AllPackets, FIN + SYN + RST + PSH + ACK + URG + ECE + CWR, 0)", &w).0, vec![4]);
        assert_eq!(drops("TCP_FLAGS(AllPackets, RST, 0)", &w).0, vec![3, 4]);
        // Set and clear at once, flags above the byte: nothing; clear bits above it: no constraint.
        assert_eq!(drops("TCP_FLAGS(AllPackets, SYN, SYN)", &w), (vec![], 10_000 * n));
        assert_eq!(drops("TCP_FLAGS(AllPackets, 256, 0)", &w).0, Vec::<usize>::new());
        assert_eq!(drops("TCP_FLAGS(AllPackets, 258, 0)", &w).0, Vec::<usize>::new());
        assert_eq!(drops("TCP_FLAGS(AllPackets, SYN, 256)", &w).0, vec![0, 1, 4]);
    }

    #[test]
    fn groupings_by_number_in_first_appearance_order() {
        let w = vec![
            tp(6, 5000, 25, true, 2),
            tp(17, 53, 53, true, 0),
            tp(6, 5001, 25, false, 0), // no ports: in no port group
            tp(1, 0, 0, false, 0),     // ICMP: in no port group
            tp(6, 5002, 25, true, 16),
            tp(17, 53, 0, true, 0),
        ];
        let p = source(
            "LIFETIME = 1 days\nPort(i), P(i) = GROUP_BY_DESTINATION_PORT(AllPackets);\n\
             foreach i do if Port(i) == 25 or Port(i) + 1 == 1 then DISCARD(P(i));",
        );
        let mut e = env();
        e.unit_costs.by_field = [10, 100, 1000, 10_000];
        let fx = run(&p, &w, &e).unwrap();
        assert_eq!(fx.dropped, vec![0, 4, 5]);
        // The grouping looks at every packet; three groups (25, 53, 0), one turn each;
        // DISCARD of 2 and of 1.
        assert_eq!(fx.cost, 1000 * 6 + 3 + 2 + 1);

        // The groups, their keys and members, as the loop sees them.
        let p = source(
            "LIFETIME = 1 days\nPr(i), P(i) = GROUP_BY_PROTOCOL(AllPackets);\n\
             foreach i do if Pr(i) == UDP then DISCARD(P(i));\n\
             S(j), Q(j) = GROUP_BY_SOURCE_PORT(AllPackets);\nforeach j do if S(j) > 5001 then DISCARD(Q(j));",
        );
        let fx = run(&p, &w, &e).unwrap();
        assert_eq!(fx.dropped, vec![1, 4, 5]);
        // Protocol groups 6, 17, 1; source-port groups 5000, 53, 5002.
        assert_eq!(fx.cost, 10 * 6 + 3 + 2 + 100 * 6 + 3 + 1);
        let mut m = Machine {
            window: &w,
            env: &e,
            params: vec![],
            vars: vec![None; p.vars.len()],
            dropped: HashSet::new(),
            generated: vec![],
            skipped: 0,
            cost: 0,
        };
        m.stmt(&p.body[2]).unwrap();
        let Some(Value::NumGroups(g)) = &m.vars[p.vars.iter().position(|v| v.name == "j").unwrap()] else { panic!() };
        assert_eq!(g, &vec![(5000, vec![0]), (53, vec![1, 5]), (5002, vec![4])]);
        m.stmt(&p.body[0]).unwrap();
        let Some(Value::NumGroups(g)) = &m.vars[p.vars.iter().position(|v| v.name == "i").unwrap()] else { panic!() };
        assert_eq!(g, &vec![(6, vec![0, 2, 4]), (17, vec![1, 5]), (1, vec![3])]);

        // No packet with ports: no group, no iteration.
        let fx = run(
            &source("LIFETIME = 1 days\nK(i), P(i) = GROUP_BY_DESTINATION_PORT(AllPackets);\nforeach i do DISCARD(P(i));"),
            &w[2..4],
            &e,
        )
        .unwrap();
        assert_eq!((fx.dropped, fx.cost), (vec![], 1000 * 2));
    }

    #[test]
    fn distinct_destination_ports_count_only_packets_with_ports() {
        let w = vec![
            tp(6, 1, 80, true, 2),
            tp(17, 1, 80, true, 0), // same port, other protocol: one port
            tp(6, 1, 443, true, 2),
            tp(6, 1, 8080, false, 0), // no ports
            tp(1, 0, 0, false, 0),
            tp(17, 1, 0, true, 0), // port 0
        ];
        let p = source("LIFETIME = 1 days\nn = DISTINCT_DESTINATION_PORTS(AllPackets);");
        let mut e = env();
        e.unit_costs.distinct_ports = 7;
        let count = |w: &[RefPacket]| {
            let mut m = Machine {
                window: w,
                env: &e,
                params: vec![],
                vars: vec![None; p.vars.len()],
                dropped: HashSet::new(),
                generated: vec![],
                skipped: 0,
                cost: 0,
            };
            m.block(&p.body).unwrap();
            (m.vars[0].clone(), m.cost)
        };
        assert_eq!(count(&w), (Some(Value::Num(3)), 7 * 6));
        assert_eq!(count(&w[3..5]), (Some(Value::Num(0)), 7 * 2));
        assert_eq!(count(&[]), (Some(Value::Num(0)), 0));
    }

    /// INSTRUCTION alone: a straight-line program costs one unit per bytecode
    /// instruction it lowers to (the one value of a narrowing is evaluated once).
    #[test]
    fn transport_routines_charge_one_instruction_each() {
        let zero = UnitCosts { by_field: [0; 4], distinct_ports: 0, instruction: 1, ..costs() };
        let zero = UnitCosts { discard: 0, group_by_destination: 0, group_by_source: 0, count: 0, ..zero };
        let e = RefEnv { unit_costs: zero, ..env() };
        let w = vec![tp(6, 1, 80, true, 2), tp(17, 53, 80, true, 0), tp(1, 0, 0, false, 0)];
        for body in [
            "M = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nA = GROUP_BY_PROTOCOL(M, TCP);\nDISCARD(A);",
            "A = GROUP_BY_DESTINATION_PORT(AllPackets, 80);\nB = GROUP_BY_SOURCE_PORT(A, 1, 1023 + 1);\nDISCARD(B);",
            "S = TCP_FLAGS(GROUP_BY_PROTOCOL(AllPackets, 6, 17), SYN + ACK, 0);\nn = DISTINCT_DESTINATION_PORTS(S) + COUNT(S);",
        ] {
            let src = format!("LIFETIME = 1 days\n{body}");
            let c = crate::compile("t.vinet", src.as_bytes(), &[]).unwrap();
            assert_eq!(run(&c.program, &w, &e).unwrap().cost, c.module.code.len() as u64, "{body}");
        }
    }
}
