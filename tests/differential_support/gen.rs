//! A generator of random, mostly well-formed bytecode modules, written
//! directly (not through the compiler), so that shapes the compiler never
//! emits are exercised: registers reused across loop and branch boundaries
//! (assigned before a `foreach`, `while` or `if` and written inside it; dead
//! `foreach` key and set registers bound again by a later loop; sets merged
//! from two branches), nested groupings, `while` loops with ranks and bounds,
//! guards on group keys that make effects legal, every instruction kind, and
//! now and then a deliberately unsafe or malformed shape.
//!
//! The generator keeps its own idea of which registers are assigned (the
//! validator's rules) and of what each holds (a confined set, THIS_IP, a group
//! key, a key guard), and mostly picks operands that make a provable program.
//! That idea is a heuristic, never an oracle: `Module::validate`, the prover,
//! the checker and the analyzer decide, and the VM runs decide the oracle.
//!
//! The choices come from an [`Rng`]: a seeded xorshift (the test), or the
//! fuzzer's bytes, then a xorshift seeded from them once they run out.

use vinet_checker::bytecode::{ArithOp, Class, CmpOp, Const, Field, Header, Insn, Module, Param, Rank, Reg, Ty, FORMAT_VERSION};

/// Protocols, ports and flags the narrowings use (the oracle's packets carry them).
const NARROW_VALUES: [u64; 12] = [1, 6, 17, 25, 53, 123, 445, 1000, 1023, 65_535, 0x02, 0x12];
const FIELDS: [Field; 4] = [Field::Proto, Field::SrcPort, Field::DstPort, Field::TcpFlags];
use vinet_checker::policy::ClientKind;

/// The source of every choice.
pub struct Rng {
    state: u64,
    bytes: Vec<u8>,
    pos: usize,
}

impl Rng {
    /// A seeded generator (any seed, 0 included).
    pub fn seeded(seed: u64) -> Rng {
        let mut r = Rng { state: 0, bytes: vec![], pos: 0 };
        r.state = splitmix(seed) | 1;
        r
    }

    /// Choices read from `data`, a byte each; past its end, a xorshift seeded from it.
    pub fn from_bytes(data: &[u8]) -> Rng {
        let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        Rng { state: splitmix(h) | 1, bytes: data.to_vec(), pos: 0 }
    }

    /// A raw 64-bit value (never from the bytes: used for window seeds).
    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        if self.pos < self.bytes.len() {
            let mut v = self.bytes[self.pos] as u64;
            self.pos += 1;
            if n > 256 && self.pos < self.bytes.len() {
                v = v << 8 | self.bytes[self.pos] as u64;
                self.pos += 1;
            }
            return v % n;
        }
        self.next_u64() % n
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    /// One of `xs`.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the generator believes a register holds (only while it is assigned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Info {
    Plain,
    /// A packet set: confined to the client, the whole window, the extent
    /// (0: the window; otherwise the id of the foreach group it lies in).
    Set {
        mine: bool,
        all: bool,
        ext: u32,
    },
    /// An address equal to THIS_IP.
    This,
    /// THIS_SUBNET_IP.
    Net,
    /// The key of foreach `ctx`.
    Key(u32),
    /// A boolean: `key == THIS_IP` (eq) or `key in THIS_SUBNET_IP` (!eq) of foreach `ctx`.
    Guard {
        ctx: u32,
        eq: bool,
    },
    /// A grouping of a set.
    Groups {
        mine: bool,
        by_dst: bool,
        ext: u32,
    },
    /// An address list or content of a set.
    List {
        mine: bool,
    },
}

struct Ctx {
    id: u32,
    set: Reg,
    by_dst: bool,
    grouped_mine: bool,
    guard_eq: bool,
    guard_in: bool,
}

/// A generated module (not yet validated), aimed at one client kind; both policies are tried.
pub struct Generated {
    /// The module.
    pub module: Module,
}

struct Gen<'r> {
    r: &'r mut Rng,
    kind: ClientKind,
    regs: Vec<Ty>,
    consts: Vec<Const>,
    params: Vec<Param>,
    code: Vec<Insn>,
    live: Vec<bool>,
    /// Assigned before the innermost enclosing foreach's body: not writable there.
    frozen: Vec<bool>,
    /// Registers a block must not write (a while's rank and its constants).
    protected: Vec<Reg>,
    /// Inside a while body: the outer registers it may write (their info was
    /// made plain when the loop began, as the VC generator sees them).
    while_writable: Option<Vec<Reg>>,
    info: Vec<Info>,
    ctxs: Vec<Ctx>,
    next_ctx: u32,
    budget: usize,
    depth: usize,
    discards: bool,
    generates: bool,
}

const MAX_DEPTH: usize = 4;

/// 2001:db8::, the IPv6 documentation prefix: the oracle's IPv6 client and its neighbours live in 2001:db8::/64.
pub const V6: u128 = 0x2001_0db8 << 96;

/// What entering a key guard changed: the context's index, its guard flags before, and the
/// registers whose info it changed, with their info before.
type GuardSave = (usize, bool, bool, Vec<(Reg, Info)>);

/// Generate one module.
pub fn module(r: &mut Rng) -> Generated {
    // Overlay-network owners (issue 13) less often: their programs have no address.
    let kind = r.pick(&[ClientKind::EndUser, ClientKind::EndUser, ClientKind::EdgeRouter, ClientKind::EdgeRouter, ClientKind::OnOwner]);
    let budget = 6 + r.below(34) as usize;
    let mut g = Gen {
        r,
        kind,
        regs: vec![],
        consts: vec![],
        params: vec![],
        code: vec![],
        live: vec![],
        frozen: vec![],
        protected: vec![],
        while_writable: None,
        info: vec![],
        ctxs: vec![],
        next_ctx: 1,
        budget,
        depth: 0,
        discards: false,
        generates: false,
    };
    if g.r.chance(30) {
        // An address parameter of either family (issue 15).
        let p_addr = if g.r.chance(50) { Const::Addr(0xcb00_7109) } else { Const::Addr6(V6 | 0xbad << 64 | 9) };
        g.params.push(Param { name: "P_ADDR".into(), default: p_addr });
        g.params.push(Param { name: "P_NUM".into(), default: Const::Num(3) });
        g.params.push(Param { name: "P_STR".into(), default: Const::Str("via".into()) });
        let p_net = if g.r.chance(50) { Const::Prefix(0xc633_6400, 24) } else { Const::Prefix6(V6 | 0x64 << 64, 64) };
        g.params.push(Param { name: "P_NET".into(), default: p_net });
    }
    while g.budget > 0 {
        g.stmt();
    }
    // Something observable, mostly.
    if !g.discards && !g.generates && g.r.chance(60) {
        g.budget = 3;
        g.effect();
    }
    let mut class = if g.generates {
        Class::Multicast
    } else if g.discards {
        Class::Filtering
    } else {
        Class::Monitoring
    };
    if g.r.chance(3) {
        class = g.r.pick(&[Class::Filtering, Class::Multicast, Class::Monitoring]);
        // maybe wrong
    }
    let lifetime_secs = if g.r.chance(3) { 90 * 86_400 } else { g.r.pick(&[3_600, 86_400, 172_800]) };
    let n = g.code.len();
    let module = Module {
        version: FORMAT_VERSION,
        header: Header { lifetime_secs, class },
        consts: g.consts,
        params: g.params,
        regs: g.regs,
        code: g.code,
        lines: (1..=n as u32).collect(),
    };
    Generated { module }
}

impl Gen<'_> {
    fn emit(&mut self, i: Insn) {
        self.code.push(i);
        self.budget = self.budget.saturating_sub(1);
    }

    fn konst(&mut self, c: Const) -> u16 {
        match self.consts.iter().position(|k| *k == c) {
            Some(i) => i as u16,
            None => {
                self.consts.push(c);
                (self.consts.len() - 1) as u16
            }
        }
    }

    fn writable(&self, r: Reg) -> bool {
        let r = r as usize;
        if self.frozen[r] || self.protected.contains(&(r as Reg)) {
            return false;
        }
        match &self.while_writable {
            Some(w) => !self.live[r] || w.contains(&(r as Reg)),
            None => true,
        }
    }

    /// A register to write a `ty` into: a live one (reuse), a dead one, or a fresh one.
    fn dst(&mut self, ty: Ty) -> Reg {
        let n = self.regs.len() as Reg;
        let live: Vec<Reg> = (0..n).filter(|&r| self.regs[r as usize] == ty && self.live[r as usize] && self.writable(r)).collect();
        let dead: Vec<Reg> = (0..n).filter(|&r| self.regs[r as usize] == ty && !self.live[r as usize]).collect();
        if !live.is_empty() && self.r.chance(30) {
            return self.r.pick(&live);
        }
        if !dead.is_empty() && self.r.chance(50) {
            return self.r.pick(&dead);
        }
        if self.r.chance(1) {
            // Deliberately malformed, now and then: an outer register written in a foreach body.
            let frozen: Vec<Reg> = (0..n).filter(|&r| self.regs[r as usize] == ty && self.frozen[r as usize]).collect();
            if !frozen.is_empty() {
                return self.r.pick(&frozen);
            }
        }
        self.regs.push(ty);
        self.live.push(false);
        self.frozen.push(false);
        self.info.push(Info::Plain);
        n
    }

    fn set_info(&mut self, r: Reg, i: Info) {
        self.live[r as usize] = true;
        self.info[r as usize] = i;
    }

    fn live_where(&self, f: impl Fn(Ty, Info) -> bool) -> Vec<Reg> {
        (0..self.regs.len()).filter(|&r| self.live[r] && f(self.regs[r], self.info[r])).map(|r| r as Reg).collect()
    }

    fn any_live(&mut self, f: impl Fn(Ty, Info) -> bool) -> Option<Reg> {
        let v = self.live_where(f);
        (!v.is_empty()).then(|| self.r.pick(&v))
    }

    fn inner_ext(&self) -> u32 {
        self.ctxs.last().map_or(0, |c| c.id)
    }

    fn this_ip(&mut self) -> Reg {
        if let Some(r) = self.any_live(|t, i| t == Ty::Addr && i == Info::This) {
            if self.r.chance(80) {
                return r;
            }
        }
        let d = self.dst(Ty::Addr);
        self.emit(Insn::ThisIp { dst: d });
        self.set_info(d, Info::This);
        d
    }

    fn this_net(&mut self) -> Reg {
        if let Some(r) = self.any_live(|t, i| t == Ty::Prefix && i == Info::Net) {
            if self.r.chance(80) {
                return r;
            }
        }
        let d = self.dst(Ty::Prefix);
        self.emit(Insn::ThisSubnet { dst: d });
        self.set_info(d, Info::Net);
        d
    }

    fn all(&mut self) -> Reg {
        if let Some(r) = self.any_live(|t, i| t == Ty::Set && matches!(i, Info::Set { all: true, .. })) {
            if self.r.chance(80) {
                return r;
            }
        }
        let d = self.dst(Ty::Set);
        self.emit(Insn::AllPackets { dst: d });
        self.set_info(d, Info::Set { mine: false, all: true, ext: 0 });
        d
    }

    /// Any set, preferring the innermost group's.
    fn any_set(&mut self) -> Reg {
        let ext = self.inner_ext();
        if let Some(r) = self.any_live(|t, i| t == Ty::Set && matches!(i, Info::Set { ext: e, .. } if e == ext)) {
            if self.r.chance(85) {
                return r;
            }
        }
        if let Some(r) = self.any_live(|t, _| t == Ty::Set) {
            if self.r.chance(50) {
                return r;
            }
        }
        self.all()
    }

    /// A set confined to the client (mostly: 8% of the time, any set).
    fn mine_set(&mut self) -> Reg {
        if self.r.chance(8) {
            return self.any_set();
        }
        let ext = self.inner_ext();
        let inner = self.live_where(|t, i| t == Ty::Set && matches!(i, Info::Set { mine: true, ext: e, .. } if e == ext));
        if !inner.is_empty() && self.r.chance(85) {
            return self.r.pick(&inner);
        }
        if ext == 0 || self.r.chance(30) {
            if let Some(r) = self.any_live(|t, i| t == Ty::Set && matches!(i, Info::Set { mine: true, .. })) {
                if self.r.chance(60) {
                    return r;
                }
            }
        }
        let from = self.any_set();
        if self.kind == ClientKind::OnOwner {
            // The owner's packets are those carrying THIS_ON.
            let Info::Set { ext, .. } = self.info[from as usize] else { unreachable!("a set") };
            let d = self.dst(Ty::Set);
            self.emit(Insn::OnPackets { dst: d, set: from });
            self.set_info(d, Info::Set { mine: true, all: false, ext });
            return d;
        }
        let by = match self.kind {
            ClientKind::OnOwner => unreachable!("returned above"),
            ClientKind::EndUser => self.this_ip(),
            ClientKind::EdgeRouter if self.r.chance(85) => self.this_net(),
            ClientKind::EdgeRouter => self.this_ip(),
        };
        let Info::Set { ext, .. } = self.info[from as usize] else { unreachable!("a set") };
        let d = self.dst(Ty::Set);
        self.emit(Insn::FilterDst { dst: d, set: from, by });
        self.set_info(d, Info::Set { mine: true, all: false, ext });
        d
    }

    fn addr(&mut self) -> Reg {
        if let Some(r) = self.any_live(|t, _| t == Ty::Addr) {
            if self.r.chance(60) {
                return r;
            }
        }
        let d = self.dst(Ty::Addr);
        match self.r.below(4) {
            // (An overlay-network owner has no THIS_IP: rarely, so that some of its modules are refused for it.)
            0 if self.kind != ClientKind::OnOwner || self.r.chance(10) => {
                self.emit(Insn::ThisIp { dst: d });
                self.set_info(d, Info::This);
                return d;
            }
            1 if !self.params.is_empty() => self.emit(Insn::Param { dst: d, p: 0 }),
            // IPv4 and IPv6 constants: the client's own addresses of both families, neighbours, the
            // world, and masks (the oracle's clients are 10.0.0.7 and 2001:db8::7).
            _ if self.r.chance(50) => {
                let a = self.r.pick(&[0x0a00_0007, 0x0a00_0005, 0xcb00_7109, 0xc633_6407, 0x0808_0808, 0xffff_ff00]);
                let k = self.konst(Const::Addr(a));
                self.emit(Insn::Const { dst: d, k })
            }
            _ => {
                let a = self.r.pick(&[V6 | 7, V6 | 5, V6 | 0xbad << 64 | 9, 0xfe80 << 112 | 7, 1, u128::MAX, u128::MAX << 64]);
                let k = self.konst(Const::Addr6(a));
                self.emit(Insn::Const { dst: d, k })
            }
        }
        self.set_info(d, Info::Plain);
        d
    }

    fn prefix(&mut self) -> Reg {
        if let Some(r) = self.any_live(|t, _| t == Ty::Prefix) {
            if self.r.chance(60) {
                return r;
            }
        }
        if self.kind == ClientKind::EdgeRouter && self.r.chance(50) {
            return self.this_net();
        }
        let d = self.dst(Ty::Prefix);
        if !self.params.is_empty() && self.r.chance(30) {
            self.emit(Insn::Param { dst: d, p: 3 });
        } else {
            let c = if self.r.chance(50) {
                let (n, l) = self.r.pick(&[(0x0a00_0000, 24), (0x0a00_0000, 8), (0xc633_6400, 24), (0, 0), (0x0a00_0007, 32)]);
                Const::Prefix(n, l)
            } else {
                let (n, l) = self.r.pick(&[(V6, 64), (V6, 32), (V6 | 7, 128), (0, 0), (0xfe80 << 112, 10), (V6 | 0x64 << 64, 64)]);
                Const::Prefix6(n, l)
            };
            let k = self.konst(c);
            self.emit(Insn::Const { dst: d, k });
        }
        self.set_info(d, Info::Plain);
        d
    }

    fn num(&mut self) -> Reg {
        if let Some(r) = self.any_live(|t, _| t == Ty::Num) {
            if self.r.chance(60) {
                return r;
            }
        }
        let d = self.dst(Ty::Num);
        match self.r.below(5) {
            0 if !self.params.is_empty() => self.emit(Insn::Param { dst: d, p: 1 }),
            1 => {
                let s = self.mine_set();
                self.emit(Insn::Count { dst: d, set: s })
            }
            _ => {
                let v = self.r.pick(&[0, 1, 2, 3, 5, 100, u64::MAX]);
                let k = self.konst(Const::Num(v));
                self.emit(Insn::Const { dst: d, k })
            }
        }
        self.set_info(d, Info::Plain);
        d
    }

    fn string(&mut self) -> Reg {
        if let Some(r) = self.any_live(|t, _| t == Ty::Str) {
            if self.r.chance(60) {
                return r;
            }
        }
        let d = self.dst(Ty::Str);
        if !self.params.is_empty() && self.r.chance(25) {
            self.emit(Insn::Param { dst: d, p: 2 });
        } else {
            // Now and then a long one (up to 4,000 bytes): strings are charged by the byte.
            let s = match self.r.chance(15) {
                true => "ab".repeat(1 + self.r.below(2000) as usize),
                false => self.r.pick(&["viagra", "via", "gra", "attack", "", "x", "hello"]).to_string(),
            };
            let k = self.konst(Const::Str(s));
            self.emit(Insn::Const { dst: d, k });
        }
        self.set_info(d, Info::Plain);
        d
    }

    fn boolean(&mut self) -> Reg {
        if let Some(r) = self.any_live(|t, _| t == Ty::Bool) {
            if self.r.chance(40) {
                return r;
            }
        }
        match self.r.below(6) {
            0 => {
                let d = self.dst(Ty::Bool);
                let value = self.r.chance(50);
                self.emit(Insn::Bool { dst: d, value });
                self.set_info(d, Info::Plain);
                d
            }
            1 => {
                let (s, n) = (self.mine_set(), self.string());
                let d = self.dst(Ty::Bool);
                self.emit(Insn::ContainsString { dst: d, set: s, needle: n });
                self.set_info(d, Info::Plain);
                d
            }
            2 => {
                let (a, p) = (self.addr(), self.prefix());
                let d = self.dst(Ty::Bool);
                self.emit(Insn::InPrefix { dst: d, addr: a, prefix: p });
                self.set_info(d, Info::Plain);
                d
            }
            _ => {
                let (a, b) = (self.num(), self.num());
                let op = self.r.pick(&[CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge]);
                let d = self.dst(Ty::Bool);
                self.emit(Insn::Cmp { op, dst: d, a, b });
                self.set_info(d, Info::Plain);
                d
            }
        }
    }

    /// A list payload (address list or content) of a confined set.
    fn list(&mut self, ty: Ty) -> Reg {
        if let Some(r) = self.any_live(|t, i| t == ty && i == Info::List { mine: true }) {
            if self.r.chance(60) {
                return r;
            }
        }
        let s = self.mine_set();
        let mine = matches!(self.info[s as usize], Info::Set { mine: true, .. });
        let dests = self.dst(Ty::AddrList);
        let content = self.dst(Ty::Content);
        self.emit(Insn::GroupContent { dests, content, set: s });
        self.set_info(dests, Info::List { mine });
        self.set_info(content, Info::List { mine });
        if ty == Ty::AddrList {
            dests
        } else {
            content
        }
    }

    fn stmt(&mut self) {
        let w = self.r.below(100);
        let nested = self.depth < MAX_DEPTH && self.budget > 3;
        match w {
            0..=24 => self.scalar(),
            25..=49 => self.set_op(),
            50..=61 => self.effect(),
            62..=73 if nested => self.if_(),
            74..=89 if nested => self.foreach(),
            90..=99 if nested => self.while_(),
            _ => self.set_op(),
        }
    }

    fn scalar(&mut self) {
        let ty;
        let insn = match self.r.below(12) {
            0 => {
                let a = self.any_live(|t, _| matches!(t, Ty::Bool | Ty::Num | Ty::Addr | Ty::Prefix | Ty::Str | Ty::Set));
                let Some(src) = a else { return self.set_op() };
                ty = self.regs[src as usize];
                let d = self.dst(ty);
                let i = self.info[src as usize];
                self.emit(Insn::Copy { dst: d, src });
                self.set_info(d, i);
                return;
            }
            1 => {
                let a = self.boolean();
                ty = Ty::Bool;
                let d = self.dst(ty);
                Insn::Not { dst: d, a }
            }
            2 | 3 => {
                let (a, b) = (self.boolean(), self.boolean());
                ty = Ty::Bool;
                let d = self.dst(ty);
                if self.r.chance(50) {
                    Insn::And { dst: d, a, b }
                } else {
                    Insn::Or { dst: d, a, b }
                }
            }
            4 => {
                let (a, b) = (self.addr(), self.addr());
                ty = Ty::Bool;
                let d = self.dst(ty);
                Insn::Cmp { op: self.r.pick(&[CmpOp::Eq, CmpOp::Ne]), dst: d, a, b }
            }
            5 => {
                let (a, b) = (self.string(), self.string());
                ty = Ty::Bool;
                let d = self.dst(ty);
                Insn::Cmp { op: CmpOp::Eq, dst: d, a, b }
            }
            6 => {
                let (a, b) = (self.addr(), self.addr());
                ty = Ty::Addr;
                let d = self.dst(ty);
                Insn::Mask { dst: d, addr: a, mask: b }
            }
            7 | 8 => {
                let (a, b) = (self.num(), self.num());
                ty = Ty::Num;
                let d = self.dst(ty);
                Insn::Arith { op: self.r.pick(&[ArithOp::Add, ArithOp::Sub, ArithOp::Mul]), dst: d, a, b }
            }
            9 => {
                let (a, b) = (self.string(), self.string());
                ty = Ty::Str;
                let d = self.dst(ty);
                Insn::Concat { dst: d, a, b }
            }
            10 => {
                self.boolean();
                return;
            }
            _ => {
                self.prefix();
                return;
            }
        };
        let d = match insn {
            Insn::Not { dst, .. } | Insn::And { dst, .. } | Insn::Or { dst, .. } | Insn::Cmp { dst, .. } => dst,
            Insn::Mask { dst, .. } | Insn::Arith { dst, .. } | Insn::Concat { dst, .. } => dst,
            _ => unreachable!("a scalar instruction"),
        };
        debug_assert_eq!(self.regs[d as usize], ty);
        self.emit(insn);
        self.set_info(d, Info::Plain);
    }

    /// A number a narrowing compares with: a constant of [`NARROW_VALUES`] (or any number).
    fn narrow_value(&mut self) -> Reg {
        if self.r.chance(20) {
            return self.num();
        }
        let d = self.dst(Ty::Num);
        let v = self.r.pick(&NARROW_VALUES);
        let k = self.konst(Const::Num(v));
        self.emit(Insn::Const { dst: d, k });
        self.set_info(d, Info::Plain);
        d
    }

    /// A grouping by a field of a (mostly) confined set.
    fn group_field(&mut self) -> Reg {
        let s = self.mine_set();
        let Info::Set { mine, ext, .. } = self.info[s as usize] else { unreachable!("a set") };
        let d = self.dst(Ty::NumGroups);
        let field = self.r.pick(&FIELDS);
        self.emit(Insn::GroupField { dst: d, set: s, field });
        self.set_info(d, Info::Groups { mine, by_dst: false, ext });
        d
    }

    fn set_op(&mut self) {
        match self.r.below(13) {
            9 | 10 => {
                // A narrowing of any set: the client's exactly when its input is.
                let s = self.any_set();
                let (a, b) = (self.narrow_value(), self.narrow_value());
                let Info::Set { mine, ext, .. } = self.info[s as usize] else { unreachable!("a set") };
                let d = self.dst(Ty::Set);
                let field = self.r.pick(&FIELDS);
                self.emit(Insn::Narrow { dst: d, set: s, field, a, b });
                self.set_info(d, Info::Set { mine, all: false, ext });
            }
            11 => {
                self.group_field();
            }
            12 => {
                let s = self.mine_set();
                let d = self.dst(Ty::Num);
                self.emit(Insn::DistinctPorts { dst: d, set: s });
                self.set_info(d, Info::Plain);
            }
            0 => {
                self.all();
            }
            1 | 2 => {
                let s = self.any_set();
                let (by, mine_by) = match self.r.below(4) {
                    0 => (self.addr(), false),
                    1 => (self.prefix(), false),
                    _ if self.kind == ClientKind::EndUser => (self.this_ip(), true),
                    _ if self.kind == ClientKind::OnOwner => (self.addr(), false),
                    _ => (self.this_net(), true),
                };
                let Info::Set { mine, ext, .. } = self.info[s as usize] else { unreachable!("a set") };
                let mine_by = mine_by || matches!(self.info[by as usize], Info::This if self.kind == ClientKind::EndUser);
                let d = self.dst(Ty::Set);
                self.emit(Insn::FilterDst { dst: d, set: s, by });
                self.set_info(d, Info::Set { mine: mine || mine_by, all: false, ext });
            }
            3 => {
                let s = self.mine_set();
                let by = if self.r.chance(50) { self.addr() } else { self.prefix() };
                let Info::Set { mine, ext, .. } = self.info[s as usize] else { unreachable!("a set") };
                let d = self.dst(Ty::Set);
                self.emit(Insn::FilterSrc { dst: d, set: s, by });
                self.set_info(d, Info::Set { mine, all: false, ext });
            }
            4 => {
                let by_dst = self.r.chance(50);
                let s = if by_dst { self.any_set() } else { self.mine_set() };
                let Info::Set { mine, ext, .. } = self.info[s as usize] else { unreachable!("a set") };
                let d = self.dst(Ty::Groups);
                self.emit(if by_dst { Insn::GroupDst { dst: d, set: s } } else { Insn::GroupSrc { dst: d, set: s } });
                self.set_info(d, Info::Groups { mine, by_dst, ext });
            }
            5 => {
                self.list(Ty::Content);
            }
            6 => {
                self.boolean();
            }
            _ => {
                let s = self.mine_set();
                let d = self.dst(Ty::Num);
                let count = self.r.chance(50);
                self.emit(if count { Insn::Count { dst: d, set: s } } else { Insn::DistinctDst { dst: d, set: s } });
                self.set_info(d, Info::Plain);
            }
        }
    }

    /// Whether an effect here is in the client's own group of every enclosing
    /// foreach over destination groups.
    fn no_leak(&self) -> bool {
        self.ctxs.iter().filter(|c| c.by_dst).all(|c| {
            c.grouped_mine
                || match self.kind {
                    ClientKind::EndUser => c.guard_eq,
                    ClientKind::EdgeRouter => c.guard_in,
                    // No destination of its own: only a grouped set of its ON will do.
                    ClientKind::OnOwner => false,
                }
        })
    }

    fn effect(&mut self) {
        if !self.no_leak() && !self.r.chance(10) {
            return self.guard_here();
        }
        if self.r.chance(45) {
            let s = self.mine_set();
            self.emit(Insn::Discard { set: s });
            self.discards = true;
            return;
        }
        let src = self.addr();
        let dst = if self.r.chance(92) && self.kind != ClientKind::OnOwner {
            // THIS_IP, or a key known to equal it.
            match self.any_live(|t, i| t == Ty::Addr && i == Info::This) {
                Some(r) if self.r.chance(70) => r,
                _ => self.this_ip(),
            }
        } else {
            self.addr()
        };
        let payload = match self.r.below(4) {
            0 => self.list(Ty::AddrList),
            1 => self.list(Ty::Content),
            _ => self.string(),
        };
        self.emit(Insn::Generate { src, dst, payload });
        self.generates = true;
    }

    /// A key guard of an unguarded enclosing destination grouping, with an effect inside.
    fn guard_here(&mut self) {
        let kind = self.kind;
        if kind == ClientKind::OnOwner {
            return self.set_op(); // no guard confines an ON owner's effect
        }
        let open = |c: &Ctx| c.by_dst && !c.grouped_mine && !if kind == ClientKind::EndUser { c.guard_eq } else { c.guard_in };
        let Some(c) = self.ctxs.iter().rposition(open) else { return self.set_op() };
        let id = self.ctxs[c].id;
        let key = (0..self.regs.len()).find(|&r| self.live[r] && self.info[r] == Info::Key(id));
        let Some(key) = key else { return self.set_op() };
        self.guarded_if(key as Reg, id, true);
    }

    fn guard_cond(&mut self, key: Reg, ctx: u32) -> (Reg, bool) {
        let eq = match self.kind {
            ClientKind::EndUser => self.r.chance(90),
            ClientKind::EdgeRouter => self.r.chance(25),
            ClientKind::OnOwner => {
                // A plain test of the key: it confines nothing for a client with no address.
                let (d, a) = (self.dst(Ty::Bool), self.addr());
                self.emit(Insn::Cmp { op: CmpOp::Eq, dst: d, a: key, b: a });
                self.set_info(d, Info::Plain);
                return (d, false);
            }
        };
        let d = self.dst(Ty::Bool);
        if eq {
            let t = self.this_ip();
            let (a, b) = if self.r.chance(50) { (key, t) } else { (t, key) };
            self.emit(Insn::Cmp { op: CmpOp::Eq, dst: d, a, b });
        } else {
            let n = if self.kind == ClientKind::EdgeRouter { self.this_net() } else { self.prefix() };
            self.emit(Insn::InPrefix { dst: d, addr: key, prefix: n });
        }
        self.set_info(d, Info::Guard { ctx, eq });
        (d, eq)
    }

    fn guarded_if(&mut self, key: Reg, ctx: u32, with_effect: bool) {
        let (cond, _) = self.guard_cond(key, ctx);
        self.if_on(cond, with_effect);
    }

    fn if_(&mut self) {
        let guard = self.ctxs.iter().rev().find(|c| c.by_dst).map(|c| c.id);
        if let Some(id) = guard.filter(|_| self.r.chance(60)) {
            if let Some(key) = (0..self.regs.len()).find(|&r| self.live[r] && self.info[r] == Info::Key(id)) {
                return self.guarded_if(key as Reg, id, false);
            }
        }
        let cond = self.boolean();
        self.if_on(cond, false);
    }

    fn block(&mut self, len: usize) {
        let stop = self.budget.saturating_sub(len);
        self.depth += 1;
        while self.budget > stop {
            self.stmt();
        }
        self.depth -= 1;
    }

    fn if_on(&mut self, cond: Reg, with_effect: bool) {
        let at = self.code.len();
        self.emit(Insn::If { cond, then_len: 0, else_len: 0 });
        let (live0, info0) = (self.live.clone(), self.info.clone());
        // The then branch, under the guard when the condition is one.
        let saved_ctx = self.enter_guard(cond);
        if with_effect {
            self.depth += 1;
            self.effect();
            self.depth -= 1;
        }
        let n = 1 + self.r.below(self.budget.min(8) as u64) as usize;
        self.block(n);
        self.leave_guard(saved_ctx);
        let then_end = self.code.len();
        let (live_t, info_t) = (std::mem::replace(&mut self.live, live0.clone()), std::mem::replace(&mut self.info, info0.clone()));
        self.live.resize(self.regs.len(), false);
        self.info.resize(self.regs.len(), Info::Plain);
        if self.r.chance(60) {
            let n = 1 + self.r.below(self.budget.min(6) as u64) as usize;
            self.block(n);
        }
        let else_end = self.code.len();
        let grown = self.regs.len();
        for r in 0..grown {
            let before = live0.get(r).copied().unwrap_or(false);
            let both = live_t.get(r).copied().unwrap_or(false) && self.live[r];
            self.live[r] = before || both;
            if self.live[r] && info_t.get(r) != Some(&self.info[r]) {
                self.info[r] = plain(self.regs[r]);
            }
        }
        self.code[at] = Insn::If { cond, then_len: (then_end - at - 1) as u32, else_len: (else_end - then_end) as u32 };
    }

    /// Entering the then branch of a key guard: the group is the client's.
    fn enter_guard(&mut self, cond: Reg) -> Option<GuardSave> {
        let Info::Guard { ctx, eq } = self.info[cond as usize] else { return None };
        let c = self.ctxs.iter().position(|c| c.id == ctx)?;
        let saved = (c, self.ctxs[c].guard_eq, self.ctxs[c].guard_in);
        let mut changed = vec![];
        let (kind, by_dst, set) = (self.kind, self.ctxs[c].by_dst, self.ctxs[c].set);
        if eq {
            self.ctxs[c].guard_eq = true;
            for r in 0..self.regs.len() {
                if self.live[r] && self.info[r] == Info::Key(ctx) {
                    changed.push((r as Reg, self.info[r]));
                    self.info[r] = Info::This;
                }
            }
        } else {
            self.ctxs[c].guard_in = true;
        }
        let confines = by_dst && (if kind == ClientKind::EndUser { eq } else { !eq });
        if confines && self.live[set as usize] {
            if let Info::Set { all, ext, .. } = self.info[set as usize] {
                changed.push((set, self.info[set as usize]));
                self.info[set as usize] = Info::Set { mine: true, all, ext };
            }
        }
        Some((saved.0, saved.1, saved.2, changed))
    }

    fn leave_guard(&mut self, saved: Option<GuardSave>) {
        let Some((c, eq, inn, changed)) = saved else { return };
        self.ctxs[c].guard_eq = eq;
        self.ctxs[c].guard_in = inn;
        for (r, i) in changed {
            if self.live[r as usize] {
                self.info[r as usize] = i;
            }
        }
    }

    fn foreach(&mut self) {
        // The grouping: an existing one, or a new one of a set.
        let existing = self.any_live(|t, i| matches!(t, Ty::Groups | Ty::NumGroups) && matches!(i, Info::Groups { .. }));
        let groups = match existing {
            Some(g) if self.r.chance(40) => g,
            _ if self.r.chance(25) => self.group_field(),
            _ => {
                let by_dst = self.r.chance(60);
                let s = if by_dst && self.r.chance(50) {
                    self.all()
                } else if by_dst {
                    self.any_set()
                } else {
                    self.mine_set()
                };
                let Info::Set { mine, ext, .. } = self.info[s as usize] else { unreachable!("a set") };
                let d = self.dst(Ty::Groups);
                self.emit(if by_dst { Insn::GroupDst { dst: d, set: s } } else { Insn::GroupSrc { dst: d, set: s } });
                self.set_info(d, Info::Groups { mine, by_dst, ext });
                d
            }
        };
        let Info::Groups { mine, by_dst, .. } = self.info[groups as usize] else { unreachable!("a grouping") };
        // Key and set: dead registers reused (a previous loop's), fresh ones, or, rarely, live ones (refused).
        let by_number = self.regs[groups as usize] == Ty::NumGroups;
        let key = self.loop_reg(if by_number { Ty::Num } else { Ty::Addr });
        let mut set = self.loop_reg(Ty::Set);
        if set == key {
            set = self.loop_reg(Ty::Set);
        }
        let at = self.code.len();
        self.emit(Insn::Foreach { groups, key, set, body_len: 0 });
        let (live0, info0, frozen0, ww0) = (self.live.clone(), self.info.clone(), self.frozen.clone(), self.while_writable.take());
        for (f, &l) in self.frozen.iter_mut().zip(&live0) {
            *f |= l;
        }
        let id = self.next_ctx;
        self.next_ctx += 1;
        // A number key is a plain number (the key guards are about addresses).
        self.set_info(key, if by_number { Info::Plain } else { Info::Key(id) });
        self.set_info(set, Info::Set { mine, all: false, ext: id });
        self.ctxs.push(Ctx { id, set, by_dst, grouped_mine: mine, guard_eq: false, guard_in: false });
        let n = 1 + self.r.below(self.budget.min(10) as u64) as usize;
        self.block(n);
        self.ctxs.pop();
        let end = self.code.len();
        self.code[at] = Insn::Foreach { groups, key, set, body_len: (end - at - 1) as u32 };
        let grown = self.regs.len();
        self.live = live0;
        self.live.resize(grown, false);
        self.info = info0;
        self.info.resize(grown, Info::Plain);
        self.frozen = frozen0;
        self.frozen.resize(grown, false);
        self.while_writable = ww0;
    }

    fn loop_reg(&mut self, ty: Ty) -> Reg {
        let n = self.regs.len() as Reg;
        let dead: Vec<Reg> = (0..n).filter(|&r| self.regs[r as usize] == ty && !self.live[r as usize]).collect();
        if !dead.is_empty() && self.r.chance(50) {
            return self.r.pick(&dead);
        }
        if self.r.chance(10) {
            if let Some(r) = self.any_live(|t, _| t == ty) {
                return r; // assigned before the loop: the validator must refuse it
            }
        }
        self.regs.push(ty);
        self.live.push(false);
        self.frozen.push(false);
        self.info.push(Info::Plain);
        n
    }

    fn while_(&mut self) {
        let bound = 1 + self.r.below(4) as u32;
        let start = if self.r.chance(4) { bound + 1 } else { self.r.below(bound as u64 + 1) as u32 };
        // The counter: often a register already assigned (reuse at a loop boundary).
        let i = self.dst(Ty::Num);
        let k = self.konst(Const::Num(start as u64));
        self.emit(Insn::Const { dst: i, k });
        self.set_info(i, Info::Plain);
        let zero = {
            let d = self.dst(Ty::Num);
            let k = self.konst(Const::Num(0));
            self.emit(Insn::Const { dst: d, k });
            self.set_info(d, Info::Plain);
            d
        };
        let one = {
            let d = if self.r.chance(4) && zero != i { zero } else { self.dst(Ty::Num) };
            if d != zero {
                let k = self.konst(Const::Num(1));
                self.emit(Insn::Const { dst: d, k });
                self.set_info(d, Info::Plain);
            }
            d
        };
        // `one == zero` now and then: a body that does not decrease the rank (refused).
        let protected0 = self.protected.len();
        self.protected.extend([i, zero, one]);
        // The outer registers the body may write: their values at the head are unknown.
        let outer: Vec<Reg> =
            (0..self.regs.len() as Reg).filter(|&r| self.live[r as usize] && self.writable(r) && self.r.chance(25)).collect();
        for &r in &outer {
            self.info[r as usize] = plain(self.regs[r as usize]);
        }
        let at = self.code.len();
        let rank = Rank { terms: vec![(i, 1)], constant: 0 };
        self.emit(Insn::While { cond_len: 0, cond: 0, body_len: 0, bound, rank: rank.clone() });
        // The condition block: `c = i > 0`, c perhaps a reused boolean.
        let c = {
            let reuse = self.any_live(|t, _| t == Ty::Bool).filter(|&r| self.writable(r) && self.r.chance(40));
            let d = reuse.unwrap_or_else(|| self.dst(Ty::Bool));
            self.emit(Insn::Cmp { op: CmpOp::Gt, dst: d, a: i, b: zero });
            self.set_info(d, Info::Plain);
            d
        };
        let cond_end = self.code.len();
        let live_after_cond = self.live.clone();
        let ww0 = self.while_writable.replace(outer.clone());
        let n = self.r.below(self.budget.min(8) as u64) as usize;
        self.block(n);
        self.while_writable = ww0;
        if !self.r.chance(4) {
            self.protected.truncate(protected0);
            self.emit(Insn::Arith { op: ArithOp::Sub, dst: i, a: i, b: one });
        }
        self.protected.truncate(protected0);
        let end = self.code.len();
        self.code[at] = Insn::While { cond_len: (cond_end - at - 1) as u32, cond: c, body_len: (end - cond_end) as u32, bound, rank };
        let grown = self.regs.len();
        let mut live = live_after_cond;
        live.resize(grown, false);
        self.live = live;
        self.info.resize(grown, Info::Plain);
        for &r in &outer {
            self.info[r as usize] = plain(self.regs[r as usize]);
        }
    }
}

fn plain(t: Ty) -> Info {
    match t {
        Ty::Set => Info::Set { mine: false, all: false, ext: 0 },
        Ty::Groups => Info::Groups { mine: false, by_dst: true, ext: 0 },
        Ty::NumGroups => Info::Groups { mine: false, by_dst: false, ext: 0 },
        Ty::AddrList | Ty::Content => Info::List { mine: false },
        _ => Info::Plain,
    }
}

/// Shapes of register reuse at block boundaries, read off a module's code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reuse {
    /// A register written before a `foreach` or `while` (at a lower index)
    /// and written again inside it (its key and set included).
    pub loop_boundary: bool,
    /// A register written before an `if` and written inside a branch, or
    /// written in both branches (a merge).
    pub branch_boundary: bool,
}

/// The reuse shapes of a validated module.
pub fn reuse(m: &Module) -> Reuse {
    let writes = |pc: usize| -> Vec<Reg> {
        vinet_checker::bytecode::operands(&m.code[pc], &m.regs, &m.consts, &m.params)
            .map(|o| o.writes.iter().map(|&(r, _)| r).collect())
            .unwrap_or_default()
    };
    let written = |from: usize, to: usize| -> Vec<Reg> { (from..to).flat_map(writes).collect() };
    let mut out = Reuse::default();
    for pc in 0..m.code.len() {
        let (subs, end) = vinet_checker::bytecode::blocks(&m.code, pc);
        let before = written(0, pc);
        match &m.code[pc] {
            Insn::Foreach { .. } | Insn::While { .. } => {
                out.loop_boundary |= written(pc, end).iter().any(|r| before.contains(r));
            }
            Insn::If { .. } => {
                let (t, e) = (written(subs[0].0, subs[0].1), written(subs[1].0, subs[1].1));
                out.branch_boundary |= t.iter().chain(&e).any(|r| before.contains(r)) || t.iter().any(|r| e.contains(r));
            }
            _ => {}
        }
    }
    out
}
