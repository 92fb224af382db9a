//! The interpreter: runs a validated module instruction by instruction over
//! a view, charging each routine before it runs.

use std::hash::BuildHasher;

use memchr::memmem::Finder;
use vinet_checker::bytecode::{ArithOp, CmpOp, Const, Field, Insn, Reg, Ty};
use vinet_checker::netmask;

use super::bits::{field_bits, for_each_bit, match_bits, popcount, FieldTest};
use super::emit::{emit, family};
use super::machine::{FinderSrc, Groups};
use super::{Fault, Instance, Machine, Program, Slot, This, ADDRS_PER_PACKET, MAX_PAYLOAD};
use crate::window::{View, ABSENT};

/// One run of an instance over a view, in a machine.
pub(super) struct Run<'r, 'v> {
    pub(super) p: &'r Program,
    pub(super) inst: &'r Instance,
    pub(super) this: This,
    pub(super) v: View<'v>,
    pub(super) m: &'r mut Machine,
}

impl Run<'_, '_> {
    fn line(&self, pc: usize) -> u32 {
        self.p.module.lines.get(pc).copied().unwrap_or(0)
    }

    /// Charge a string operation on `n` bytes: BYTES per 64 bytes or part.
    #[inline]
    fn bytes(&mut self, pc: usize, n: usize) -> Result<(), Fault> {
        self.charge(pc, self.p.units.bytes, n.div_ceil(64) as u64)
    }

    #[inline]
    fn charge(&mut self, pc: usize, unit: u64, n: u64) -> Result<(), Fault> {
        let limit = self.p.complexity;
        let spent = unit.checked_mul(n).and_then(|c| c.checked_add(self.m.spent)).unwrap_or(u64::MAX);
        if spent > limit {
            return Err(Fault::OverBudget { at: pc as u32, line: self.line(pc), spent, limit });
        }
        self.m.spent = spent;
        Ok(())
    }

    fn slot(&self, r: Reg) -> Slot {
        self.p.slots[r as usize]
    }
    #[inline]
    fn scalar_slot(&self, r: Reg) -> usize {
        match self.slot(r) {
            Slot::Scalar(i) => i as usize,
            s => unreachable!("register r{r} is {s:?}, not a scalar (validated module)"),
        }
    }
    /// A scalar register: a bool, a number, an address, a prefix's network.
    #[inline]
    fn sc(&self, r: Reg) -> u128 {
        self.m.scalars[self.scalar_slot(r)]
    }
    /// A number register (a `Num` holds a u64).
    #[inline]
    fn num(&self, r: Reg) -> u64 {
        self.sc(r) as u64
    }
    /// A scalar register's whole value: a prefix's network and length,
    /// another scalar's value and 0.
    #[inline]
    fn value(&self, r: Reg) -> (u128, u8) {
        let i = self.scalar_slot(r);
        (self.m.scalars[i], self.m.lens[i])
    }
    /// A prefix register: network and length.
    #[inline]
    fn prefix(&self, r: Reg) -> (u128, u8) {
        self.value(r)
    }
    #[inline]
    fn set_sc(&mut self, r: Reg, v: u128) {
        let i = self.scalar_slot(r);
        self.m.scalars[i] = v;
    }
    #[inline]
    fn set_prefix(&mut self, r: Reg, (net, len): (u128, u8)) {
        let i = self.scalar_slot(r);
        self.m.scalars[i] = net;
        self.m.lens[i] = len;
    }
    /// Word offset of a set register.
    #[inline]
    fn so(&self, r: Reg) -> usize {
        match self.slot(r) {
            Slot::Set(i) => i as usize * self.m.words_per_set,
            s => unreachable!("register r{r} is {s:?}, not a set (validated module)"),
        }
    }
    #[inline]
    fn set_words(&self, r: Reg) -> &[u64] {
        let o = self.so(r);
        &self.m.sets[o..o + self.m.words_per_set]
    }
    #[inline]
    fn card(&self, r: Reg) -> u64 {
        popcount(self.set_words(r))
    }
    fn idx(&self, r: Reg) -> usize {
        match self.slot(r) {
            Slot::Groups(i) | Slot::Str(i) | Slot::Addrs(i) | Slot::Content(i) => i as usize,
            s => unreachable!("register r{r} is {s:?} (validated module)"),
        }
    }

    /// Run instructions `start..end` (a block of the module).
    pub(super) fn block(&mut self, start: usize, end: usize) -> Result<(), Fault> {
        let p = self.p;
        let inst = self.inst;
        let code = &p.module.code;
        let mut pc = start;
        while pc < end {
            self.m.steps += 1;
            if self.m.steps > self.m.step_limit {
                return Err(Fault::StepLimit { at: pc as u32, line: self.line(pc) });
            }
            let u = &p.units;
            self.charge(pc, u.instruction, 1)?;
            match code[pc] {
                Insn::Const { dst, k } => {
                    let c = &p.module.consts[k as usize];
                    self.load(pc, dst, c, FinderSrc::Const(k))?;
                }
                Insn::Param { dst, p: pi } => {
                    let c = &inst.params[pi as usize];
                    self.load(pc, dst, c, FinderSrc::Param(pi))?;
                }
                Insn::ThisIp { dst } => self.set_sc(dst, self.this.ip),
                Insn::ThisSubnet { dst } => self.set_prefix(dst, self.this.subnet),
                Insn::AllPackets { dst } => {
                    let (o, nw, n) = (self.so(dst), self.m.words_per_set, self.m.packets);
                    for w in 0..nw {
                        let bits = n - w * 64;
                        self.m.sets[o + w] = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
                    }
                }
                Insn::Bool { dst, value } => self.set_sc(dst, u128::from(value)),
                Insn::Copy { dst, src } => self.copy(pc, dst, src)?,
                Insn::Not { dst, a } => self.set_sc(dst, u128::from(self.sc(a) == 0)),
                Insn::And { dst, a, b } => self.set_sc(dst, u128::from(self.sc(a) != 0 && self.sc(b) != 0)),
                Insn::Or { dst, a, b } => self.set_sc(dst, u128::from(self.sc(a) != 0 || self.sc(b) != 0)),
                Insn::Cmp { op, dst, a, b } => {
                    if let Slot::Str(_) = self.slot(a) {
                        let n = self.m.strs[self.idx(a)].bytes.len().min(self.m.strs[self.idx(b)].bytes.len());
                        self.bytes(pc, n)?;
                    }
                    let r = match (self.slot(a), op) {
                        (Slot::Str(_), CmpOp::Eq) => self.m.strs[self.idx(a)].bytes == self.m.strs[self.idx(b)].bytes,
                        (Slot::Str(_), _) => self.m.strs[self.idx(a)].bytes != self.m.strs[self.idx(b)].bytes,
                        _ => {
                            // A prefix is its network and its length (the
                            // other scalars have length 0): both compared.
                            let (x, y) = (self.value(a), self.value(b));
                            match op {
                                CmpOp::Eq => x == y,
                                CmpOp::Ne => x != y,
                                CmpOp::Lt => x < y,
                                CmpOp::Le => x <= y,
                                CmpOp::Gt => x > y,
                                CmpOp::Ge => x >= y,
                            }
                        }
                    };
                    self.set_sc(dst, u128::from(r));
                }
                Insn::InPrefix { dst, addr, prefix } => {
                    let (net, len) = self.prefix(prefix);
                    self.set_sc(dst, u128::from(self.sc(addr) & netmask(len) == net));
                }
                Insn::Mask { dst, addr, mask } => self.set_sc(dst, self.sc(addr) & self.sc(mask)),
                Insn::Arith { op, dst, a, b } => {
                    let (x, y) = (self.num(a), self.num(b));
                    let r = match op {
                        ArithOp::Add => x.checked_add(y),
                        ArithOp::Sub => Some(x.saturating_sub(y)),
                        ArithOp::Mul => x.checked_mul(y),
                    };
                    let r = r.ok_or(Fault::Overflow { at: pc as u32, line: self.line(pc) })?;
                    self.set_sc(dst, u128::from(r));
                }
                Insn::Concat { dst, a, b } => {
                    let (ia, ib, id) = (self.idx(a), self.idx(b), self.idx(dst));
                    let len = self.m.strs[ia].bytes.len() + self.m.strs[ib].bytes.len();
                    self.bytes(pc, len)?;
                    if len > MAX_PAYLOAD {
                        return Err(Fault::TooLarge { at: pc as u32, line: self.line(pc), what: "a string" });
                    }
                    let mut out = std::mem::take(&mut self.m.strbuf);
                    out.clear();
                    out.extend_from_slice(&self.m.strs[ia].bytes);
                    out.extend_from_slice(&self.m.strs[ib].bytes);
                    let d = &mut self.m.strs[id];
                    std::mem::swap(&mut d.bytes, &mut out);
                    d.finder = FinderSrc::None;
                    self.m.strbuf = out;
                }
                Insn::FilterDst { dst, set, by } => {
                    self.charge(pc, u.group_by_destination, self.card(set))?;
                    self.filter(dst, set, by, true);
                }
                Insn::FilterSrc { dst, set, by } => {
                    self.charge(pc, u.group_by_source, self.card(set))?;
                    self.filter(dst, set, by, false);
                }
                Insn::GroupDst { dst, set } => {
                    self.charge(pc, u.group_by_destination, self.card(set))?;
                    self.charge(pc, u.grouping, 1)?;
                    self.group(dst, set, true);
                }
                Insn::GroupSrc { dst, set } => {
                    self.charge(pc, u.group_by_source, self.card(set))?;
                    self.charge(pc, u.grouping, 1)?;
                    self.group(dst, set, false);
                }
                Insn::Narrow { dst, set, field, a, b } => {
                    self.charge(pc, u.by_field[field as usize], self.card(set))?;
                    let test = FieldTest::new(field, self.num(a), self.num(b));
                    self.narrow(dst, set, test);
                }
                Insn::GroupField { dst, set, field } => {
                    self.charge(pc, u.by_field[field as usize], self.card(set))?;
                    self.charge(pc, u.grouping, 1)?;
                    self.group_field(dst, set, field);
                }
                Insn::OnPackets { dst, set } => {
                    self.charge(pc, u.by_field[0], self.card(set))?;
                    let (v, on) = (self.v, self.this.this_on());
                    self.keep(dst, set, |pos| v.on_key(pos) == Some(on));
                }
                Insn::DistinctPorts { dst, set } => {
                    self.charge(pc, u.distinct_ports, self.card(set))?;
                    let n = self.distinct_ports(set);
                    self.set_sc(dst, u128::from(n));
                }
                Insn::GroupContent { dests, content, set } => {
                    self.charge(pc, u.group_by_content, self.card(set))?;
                    self.charge(pc, u.grouping, 1)?;
                    self.group_content(dests, content, set);
                }
                Insn::ContainsString { dst, set, needle } => {
                    self.charge(pc, u.contains_string, self.card(set))?;
                    self.bytes(pc, self.m.strs[self.idx(needle)].bytes.len())?;
                    let r = self.contains(set, needle);
                    self.set_sc(dst, u128::from(r));
                }
                Insn::Count { dst, set } => {
                    let n = self.card(set);
                    self.charge(pc, u.count, n)?;
                    self.set_sc(dst, u128::from(n));
                }
                Insn::DistinctDst { dst, set } => {
                    self.charge(pc, u.distinct_destinations, self.card(set))?;
                    let n = self.distinct_dst(set);
                    self.set_sc(dst, u128::from(n));
                }
                Insn::Discard { set } => {
                    self.charge(pc, u.discard, self.card(set))?;
                    let o = self.so(set);
                    let nw = self.m.words_per_set;
                    let Machine { sets, effects, .. } = &mut *self.m;
                    for (d, s) in effects.drops.iter_mut().zip(&sets[o..o + nw]) {
                        *d |= s;
                    }
                }
                Insn::Generate { src, dst, payload } => self.generate(pc, src, dst, payload)?,
                Insn::If { cond, then_len, else_len } => {
                    let t = pc + 1 + then_len as usize;
                    let e = t + else_len as usize;
                    if self.sc(cond) != 0 {
                        self.block(pc + 1, t)?;
                    } else {
                        self.block(t, e)?;
                    }
                    pc = e;
                    continue;
                }
                Insn::Foreach { groups, key, set, body_len } => {
                    let end_body = pc + 1 + body_len as usize;
                    self.foreach(pc, groups, key, set, end_body)?;
                    pc = end_body;
                    continue;
                }
                Insn::While { cond_len, cond, body_len, bound, .. } => {
                    let c_end = pc + 1 + cond_len as usize;
                    let b_end = c_end + body_len as usize;
                    let mut iters: u32 = 0;
                    loop {
                        self.block(pc + 1, c_end)?;
                        if self.sc(cond) == 0 {
                            break;
                        }
                        if iters >= bound {
                            return Err(Fault::LoopBound { at: pc as u32, line: self.line(pc), bound });
                        }
                        iters += 1;
                        self.charge(pc, self.p.units.loop_turn(), 1)?;
                        self.block(c_end, b_end)?;
                    }
                    pc = b_end;
                    continue;
                }
            }
            pc += 1;
        }
        Ok(())
    }

    fn load(&mut self, pc: usize, dst: Reg, c: &Const, src: FinderSrc) -> Result<(), Fault> {
        if let Const::Str(s) = c {
            self.bytes(pc, s.len())?;
        }
        match *c {
            // IPv4 as IPv4-mapped: one 128-bit form for both families.
            Const::Addr(_) | Const::Addr6(_) => self.set_sc(dst, c.addr().unwrap_or_default()),
            Const::Prefix(..) | Const::Prefix6(..) => self.set_prefix(dst, c.prefix().unwrap_or_default()),
            Const::Num(n) => self.set_sc(dst, u128::from(n)),
            Const::Str(ref s) => {
                let i = self.idx(dst);
                let d = &mut self.m.strs[i];
                d.bytes.clear();
                d.bytes.extend_from_slice(s.as_bytes());
                d.finder = src;
            }
        }
        Ok(())
    }

    /// `dst = src`: a string costs its bytes, a grouping or a list one
    /// instruction unit per member (what the copy moves).
    fn copy(&mut self, pc: usize, dst: Reg, src: Reg) -> Result<(), Fault> {
        let u = self.p.units;
        match self.slot(src) {
            Slot::Str(s) => self.bytes(pc, self.m.strs[s as usize].bytes.len())?,
            Slot::Groups(s) => self.charge(pc, u.instruction, self.m.groups[s as usize].members.len() as u64)?,
            Slot::Addrs(s) => self.charge(pc, u.instruction, self.m.addrs[s as usize].len() as u64)?,
            Slot::Content(s) => self.charge(pc, u.instruction, self.m.contents[s as usize].len() as u64)?,
            Slot::Scalar(_) | Slot::Set(_) => {}
        }
        if dst == src {
            return Ok(());
        }
        fn dup<T: Clone + Default>(v: &mut [T], d: usize, s: usize) {
            let x = std::mem::take(&mut v[s]);
            v[d].clone_from(&x);
            v[s] = x;
        }
        let m = &mut *self.m;
        match (self.p.slots[dst as usize], self.p.slots[src as usize]) {
            (Slot::Scalar(d), Slot::Scalar(s)) => {
                m.scalars[d as usize] = m.scalars[s as usize];
                m.lens[d as usize] = m.lens[s as usize];
            }
            (Slot::Set(d), Slot::Set(s)) => {
                let nw = m.words_per_set;
                m.sets.copy_within(s as usize * nw..(s as usize + 1) * nw, d as usize * nw);
            }
            (Slot::Groups(d), Slot::Groups(s)) => dup(&mut m.groups, d as usize, s as usize),
            (Slot::Str(d), Slot::Str(s)) => dup(&mut m.strs, d as usize, s as usize),
            (Slot::Addrs(d), Slot::Addrs(s)) => dup(&mut m.addrs, d as usize, s as usize),
            (Slot::Content(d), Slot::Content(s)) => dup(&mut m.contents, d as usize, s as usize),
            (d, s) => unreachable!("copy between {d:?} and {s:?} (validated module)"),
        }
        Ok(())
    }

    /// `dst = {p in set | col(p) matches by}`, `by` an address or a prefix.
    fn filter(&mut self, dst: Reg, set: Reg, by: Reg, by_dst: bool) {
        let (net, mask) = match self.p.module.regs[by as usize] {
            Ty::Prefix => {
                let (net, len) = self.prefix(by);
                (net, netmask(len))
            }
            _ => (self.sc(by), u128::MAX),
        };
        let col = if by_dst { self.v.dst } else { self.v.src };
        let (so, d, nw, n) = (self.so(set), self.so(dst), self.m.words_per_set, self.m.packets);
        let sets = &mut self.m.sets;
        if so != d {
            sets.copy_within(so..so + nw, d);
        }
        for w in 0..nw {
            let s = sets[d + w];
            if s == 0 {
                continue;
            }
            let base = w * 64;
            let bits = match col.get(base..base + 64) {
                Some(full) => match_bits(full, net, mask),
                // A short tail (small buckets are common): a plain loop.
                None => col[base..n].iter().enumerate().fold(0u64, |b, (j, &x)| b | (u64::from(x & mask == net) << j)),
            };
            sets[d + w] = s & bits;
        }
    }

    /// Group the packets of `set` by destination or source.
    fn group(&mut self, dst: Reg, set: Reg, by_dst: bool) {
        let col = if by_dst { self.v.dst } else { self.v.src };
        self.group_by(dst, set, |pos| Some(col[pos]));
    }

    /// Group the packets of `set` by `key`: groups in the order their keys
    /// first occur, members in arrival order; a packet whose key is `None` is
    /// in no group.
    fn group_by(&mut self, dst: Reg, set: Reg, key: impl Fn(usize) -> Option<u128>) {
        let (so, nw, gi) = (self.so(set), self.m.words_per_set, self.idx(dst));
        let n_in = self.card(set) as usize;
        let Machine { sets, groups, table, member_group, member_pos, .. } = &mut *self.m;
        let g = &mut groups[gi];
        g.keys.clear();
        table.reset(n_in);
        member_group.clear();
        member_pos.clear();
        for_each_bit(&sets[so..so + nw], |pos| {
            let Some(key) = key(pos) else { return };
            let (id, new) = table.get_or_insert(key, g.keys.len() as u32);
            if new {
                g.keys.push(key);
            }
            member_group.push(id);
            member_pos.push(pos as u32);
        });
        counting_sort(g, member_group, member_pos);
    }

    /// `dst = {p in set | p passes test}` (GROUP_BY_PROTOCOL and the port
    /// narrowings keyed, TCP_FLAGS).
    fn narrow(&mut self, dst: Reg, set: Reg, test: FieldTest) {
        let (so, d, nw) = (self.so(set), self.so(dst), self.m.words_per_set);
        let v = self.v;
        let sets = &mut self.m.sets;
        if so != d {
            sets.copy_within(so..so + nw, d);
        }
        for w in 0..nw {
            let s = sets[d + w];
            if s != 0 {
                sets[d + w] = s & field_bits(&v, test, w * 64);
            }
        }
    }

    /// `dst` = the packets of `set` for whose position `test` holds.
    fn keep(&mut self, dst: Reg, set: Reg, test: impl Fn(usize) -> bool) {
        let (so, d, nw) = (self.so(set), self.so(dst), self.m.words_per_set);
        let sets = &mut self.m.sets;
        if so != d {
            sets.copy_within(so..so + nw, d);
        }
        for w in 0..nw {
            let mut bits = sets[d + w];
            let mut keep = 0u64;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if test(w * 64 + b) {
                    keep |= 1 << b;
                }
            }
            sets[d + w] = keep;
        }
    }

    /// Group the packets of `set` that have `field` by its value, as
    /// [`Run::group`] groups by address; packets without the field are in no group.
    fn group_field(&mut self, dst: Reg, set: Reg, field: Field) {
        let v = self.v;
        self.group_by(dst, set, |pos| Some(v.field(field, pos)).filter(|&k| k != ABSENT).map(u128::from));
    }

    /// DISTINCT_DESTINATION_PORTS: distinct destination ports among the
    /// packets of `set` with ports.
    fn distinct_ports(&mut self, set: Reg) -> u64 {
        let (so, nw) = (self.so(set), self.m.words_per_set);
        let n_in = self.card(set) as usize;
        let v = self.v;
        let Machine { sets, table, .. } = &mut *self.m;
        table.reset(n_in);
        let mut count = 0u64;
        for_each_bit(&sets[so..so + nw], |pos| {
            let p = v.field(Field::DstPort, pos);
            if p != ABSENT && table.get_or_insert(u128::from(p), 0).1 {
                count += 1;
            }
        });
        count
    }

    fn distinct_dst(&mut self, set: Reg) -> u64 {
        let (so, nw) = (self.so(set), self.m.words_per_set);
        let n_in = self.card(set) as usize;
        let col = self.v.dst;
        let Machine { sets, table, .. } = &mut *self.m;
        table.reset(n_in);
        let mut count = 0u64;
        for_each_bit(&sets[so..so + nw], |pos| {
            if table.get_or_insert(col[pos], 0).1 {
                count += 1;
            }
        });
        count
    }

    fn group_content(&mut self, dests: Reg, content: Reg, set: Reg) {
        let (so, nw) = (self.so(set), self.m.words_per_set);
        let (di, ci) = (self.idx(dests), self.idx(content));
        let n_in = self.card(set) as usize;
        let v = self.v;
        let Machine { sets, addrs, contents, table, chain, hasher, .. } = &mut *self.m;
        let ds = &mut addrs[di];
        ds.clear();
        table.reset(n_in);
        for_each_bit(&sets[so..so + nw], |pos| {
            if table.get_or_insert(v.dst[pos], 0).1 {
                ds.push(v.dst[pos]);
            }
        });
        // Distinct payloads: a keyed hash (the payloads are the sender's
        // choice) with a collision chain that compares bytes.
        let cs = &mut contents[ci];
        cs.clear();
        chain.clear();
        table.reset(n_in);
        for_each_bit(&sets[so..so + nw], |pos| {
            let pay = v.payload(pos);
            let h = hasher.hash_one(pay);
            let new = cs.len() as u32;
            let (head, inserted) = table.get_or_insert(u128::from(h), new);
            if inserted {
                cs.push(pos as u32);
                chain.push(u32::MAX);
                return;
            }
            let mut id = head;
            loop {
                if v.payload(cs[id as usize] as usize) == pay {
                    return;
                }
                let next = chain[id as usize];
                if next == u32::MAX {
                    chain[id as usize] = new;
                    cs.push(pos as u32);
                    chain.push(u32::MAX);
                    return;
                }
                id = next;
            }
        });
    }

    fn contains(&mut self, set: Reg, needle: Reg) -> bool {
        let (so, nw) = (self.so(set), self.m.words_per_set);
        let ni = self.idx(needle);
        let v = self.v;
        let p = self.p;
        let inst = self.inst;
        let Machine { sets, strs, table, member_group, member_pos, flow_first, chain, stream, flows, .. } = &mut *self.m;
        let words = &sets[so..so + nw];
        let sv = &strs[ni];
        if sv.bytes.is_empty() {
            return words.iter().any(|&w| w != 0);
        }
        let shared = match sv.finder {
            FinderSrc::Const(k) => p.const_finders.get(k as usize).and_then(Option::as_ref),
            FinderSrc::Param(i) => inst.param_finders.get(i as usize).and_then(Option::as_ref),
            FinderSrc::None => None,
        };
        let local;
        let finder = match shared {
            Some(f) if f.needle() == sv.bytes.as_slice() => f,
            _ => {
                local = Finder::new(&sv.bytes);
                &local
            }
        };
        let mut found = false;
        for_each_bit(words, |pos| found = found || finder.find(v.payload(pos)).is_some());
        if found {
            return true;
        }
        // Across windows (SEMANTICS): a packet's flow held the word before
        // it, or the word straddles the bytes before it and its payload.
        if let Some(notes) = v.notes {
            let h = crate::stream::word_hash(&sv.bytes);
            let reach = sv.bytes.len() - 1;
            for_each_bit(words, |pos| {
                if found || v.proto[pos] != 6 {
                    return;
                }
                let Some(p) = v.origin(pos) else { return };
                if notes.held(p, h) {
                    found = true;
                    return;
                }
                let before = notes.before(p);
                if before.is_empty() || reach == 0 {
                    return;
                }
                let payload = v.payload(pos);
                stream.clear();
                stream.extend_from_slice(&before[before.len().saturating_sub(reach)..]);
                stream.extend_from_slice(&payload[..payload.len().min(reach)]);
                found = finder.find(stream).is_some();
            });
            if found {
                return true;
            }
        }
        if sv.bytes.len() < 2 {
            return false;
        }
        // Across contiguous segments of one TCP flow (SEMANTICS): flows of
        // the TCP packets of S, members in arrival order, runs of continuing
        // segments searched as one stream.
        const TCP: u8 = 6;
        let n_in = popcount(words) as usize;
        table.reset(n_in);
        member_group.clear(); // flow id per TCP member
        member_pos.clear(); // member positions
        flow_first.clear(); // representative position per flow
        chain.clear();
        for_each_bit(words, |pos| {
            if v.proto[pos] != TCP {
                return;
            }
            let same =
                |q: usize| v.src[q] == v.src[pos] && v.dst[q] == v.dst[pos] && v.sport[q] == v.sport[pos] && v.dport[q] == v.dport[pos];
            let h = (v.src[pos] ^ v.dst[pos].rotate_left(47))
                ^ u128::from(u64::from(v.sport[pos]) << 16 | u64::from(v.dport[pos])).wrapping_mul(0xff51_afd7_ed55_8ccd);
            let new = flow_first.len() as u32;
            let (head, inserted) = table.get_or_insert(h, new);
            let id = if inserted {
                flow_first.push(pos as u32);
                chain.push(u32::MAX);
                new
            } else {
                let mut id = head;
                loop {
                    if same(flow_first[id as usize] as usize) {
                        break id;
                    }
                    let next = chain[id as usize];
                    if next == u32::MAX {
                        chain[id as usize] = new;
                        flow_first.push(pos as u32);
                        chain.push(u32::MAX);
                        break new;
                    }
                    id = next;
                }
            };
            member_group.push(id);
            member_pos.push(pos as u32);
        });
        if flow_first.len() == member_pos.len() {
            return false; // one packet per flow: nothing continues
        }
        flows.keys.clear();
        flows.keys.resize(flow_first.len(), 0);
        counting_sort(flows, member_group, member_pos);
        for f in 0..flows.keys.len() {
            let members = &flows.members[flows.starts[f] as usize..flows.starts[f + 1] as usize];
            let mut run_len = 0usize;
            stream.clear();
            for (k, &pos) in members.iter().enumerate() {
                let pos = pos as usize;
                let continues = k > 0 && {
                    let prev = members[k - 1] as usize;
                    v.seq[pos] == v.seq[prev].wrapping_add(v.pay_len[prev])
                };
                if !continues {
                    if run_len >= 2 && finder.find(stream).is_some() {
                        return true;
                    }
                    stream.clear();
                    run_len = 0;
                }
                stream.extend_from_slice(v.payload(pos));
                run_len += 1;
            }
            if run_len >= 2 && finder.find(stream).is_some() {
                return true;
            }
        }
        false
    }

    fn generate(&mut self, pc: usize, src: Reg, dst: Reg, payload: Reg) -> Result<(), Fault> {
        let (s, d) = (self.sc(src), self.sc(dst));
        // One IPv4 and one IPv6 address: no packet can carry them. Charged
        // as any GENERATE, nothing emitted, counted as one skipped
        // generation (never silent).
        let emits = family(s, d).is_some();
        if !emits {
            self.m.effects.skipped += 1;
        }
        let unit = self.p.units.generate;
        let too_large = Fault::TooLarge { at: pc as u32, line: self.line(pc), what: "a generated payload" };
        match self.slot(payload) {
            Slot::Str(i) => {
                let len = self.m.strs[i as usize].bytes.len();
                self.charge(pc, unit, len.div_ceil(64).max(1) as u64)?;
                self.bytes(pc, len)?;
                let Machine { strs, effects, .. } = &mut *self.m;
                let b = &strs[i as usize].bytes;
                if b.len() > MAX_PAYLOAD {
                    return Err(too_large);
                }
                if emits {
                    emit(effects, s, d, b);
                }
            }
            Slot::Addrs(i) => {
                let n = self.m.addrs[i as usize].len();
                self.charge(pc, unit, n as u64)?;
                let Machine { addrs, effects, stream, .. } = &mut *self.m;
                for chunk in addrs[i as usize].chunks(ADDRS_PER_PACKET).filter(|_| emits) {
                    address_list(stream, chunk);
                    emit(effects, s, d, stream);
                }
            }
            Slot::Content(i) => {
                let n = self.m.contents[i as usize].len();
                self.charge(pc, unit, n as u64)?;
                let v = self.v;
                let Machine { contents, effects, .. } = &mut *self.m;
                let items = &contents[i as usize];
                if items.iter().any(|&pos| v.payload(pos as usize).len() > MAX_PAYLOAD) {
                    return Err(too_large);
                }
                for &pos in items.iter().filter(|_| emits) {
                    emit(effects, s, d, v.payload(pos as usize));
                }
            }
            other => unreachable!("GENERATE of {other:?} (validated module)"),
        }
        let (bytes, limit) = (self.m.effects.gen_bytes.len() as u64, self.p.generated_up);
        if bytes > limit {
            return Err(Fault::OverGenerated { at: pc as u32, line: self.line(pc), bytes, limit });
        }
        Ok(())
    }

    fn foreach(&mut self, pc: usize, groups: Reg, key: Reg, set: Reg, end: usize) -> Result<(), Fault> {
        let gi = self.idx(groups);
        let snap = self.p.snapshot[pc];
        let depth = self.m.depth;
        if snap {
            if self.m.snaps.len() <= depth {
                self.m.snaps.resize_with(depth + 1, Groups::default);
            }
            let Machine { groups: gs, snaps, .. } = &mut *self.m;
            snaps[depth].clone_from(&gs[gi]);
        }
        let n_groups = if snap { self.m.snaps[depth].keys.len() } else { self.m.groups[gi].keys.len() };
        let (so, nw) = (self.so(set), self.m.words_per_set);
        self.m.depth += 1;
        for g in 0..n_groups {
            let Machine { groups: gs, snaps, sets, .. } = &mut *self.m;
            let grp = if snap { &snaps[depth] } else { &gs[gi] };
            let k = grp.keys[g];
            let words = &mut sets[so..so + nw];
            words.iter_mut().for_each(|w| *w = 0);
            for &pos in &grp.members[grp.starts[g] as usize..grp.starts[g + 1] as usize] {
                words[pos as usize / 64] |= 1 << (pos % 64);
            }
            self.set_sc(key, k);
            // One unit per iteration (SEMANTICS: loops are not free).
            self.charge(pc, self.p.units.loop_turn(), 1)?;
            self.block(pc + 1, end)?;
        }
        self.m.depth -= 1;
        Ok(())
    }
}

/// Fill `g.starts` and `g.members` from member group ids `ids` and positions
/// `pos` (ascending): members of each group in arrival order. `g.keys` must
/// already have one entry per group.
fn counting_sort(g: &mut Groups, ids: &[u32], pos: &[u32]) {
    let ng = g.keys.len();
    g.starts.clear();
    g.starts.resize(ng + 1, 0);
    for &id in ids {
        g.starts[id as usize + 1] += 1;
    }
    for i in 0..ng {
        g.starts[i + 1] += g.starts[i];
    }
    g.members.clear();
    g.members.resize(ids.len(), 0);
    // Walk backwards, using `starts[id + 1]` as group id's moving end; it ends
    // at group id's start, so shift the array back by one afterwards.
    for (&id, &p) in ids.iter().zip(pos).rev() {
        let e = &mut g.starts[id as usize + 1];
        *e -= 1;
        g.members[*e as usize] = p;
    }
    g.starts.copy_within(1..=ng, 0);
    g.starts[ng] = ids.len() as u32;
}

/// The payload of an address-list packet (SEMANTICS "GENERATE"): the magic
/// `VND1`, a big-endian u32 count, then the addresses, big-endian: 4 bytes
/// each when every address of the packet is IPv4 (its IPv4 address), else 16
/// each (IPv4 among them as IPv4-mapped). The width follows from the length:
/// `8 + 4 n` or `8 + 16 n` bytes for `n` addresses. At most
/// [`ADDRS_PER_PACKET`] addresses (5,768 bytes), within the checker's 72
/// bytes an item, headers included (`vinet_checker::vcgen`).
pub(super) fn address_list(out: &mut Vec<u8>, addrs: &[u128]) {
    out.clear();
    out.extend_from_slice(b"VND1");
    out.extend_from_slice(&(addrs.len() as u32).to_be_bytes());
    if addrs.iter().all(|&a| crate::packet::is_mapped(a)) {
        for &a in addrs {
            out.extend_from_slice(&(a as u32).to_be_bytes());
        }
    } else {
        for a in addrs {
            out.extend_from_slice(&a.to_be_bytes());
        }
    }
}
