//! Issue 15: IPv6 literals end to end, through the public API: what they lower
//! to, how they print, and where a malformed one is reported.

use vinet_checker::bytecode::{Const, Insn};
use vinet_lang::reference::{self, RefEnv, RefPacket};
use vinet_lang::{compile, Compiled};

const DOC: u128 = 0x2001_0db8 << 96; // 2001:db8::

fn ok(src: &str) -> Compiled {
    compile("t.vinet", src.as_bytes(), &[]).unwrap_or_else(|d| panic!("{}", d.render()))
}

fn errors(src: &str) -> String {
    match compile("t.vinet", src.as_bytes(), &[]) {
        Ok(_) => panic!("accepted: {src}"),
        Err(d) => d.render(),
    }
}

#[test]
fn ipv6_literals_lower_to_ipv6_constants_and_ipv4_mapped_to_ipv4() {
    let c = ok("LIFETIME = 1 days\nPARAM SrcIP = 2001:db8:bad::9;\nPARAM Old = ::ffff:203.0.113.9;\nPARAM Net = 2001:db8::/32;\n\
                Mine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n\
                if THIS_IP in 2001:db8:1::/48 or THIS_IP in ::ffff:10.0.0.0/104 or THIS_IP & ffff:ffff:ffff:ffff:: == 2001:db8:1:2:: then\n\
                  DISCARD(GROUP_BY_SOURCE(GROUP_BY_SOURCE(Mine, ::/0), SrcIP));");
    let params: Vec<&Const> = c.module.params.iter().map(|p| &p.default).collect();
    assert_eq!(params, [&Const::Addr6(DOC | 0xbad << 80 | 9), &Const::Addr(0xcb00_7109), &Const::Prefix6(DOC, 32)]);
    for want in [
        Const::Prefix6(DOC | 1 << 80, 48),
        Const::Prefix(0x0a00_0000, 8),
        Const::Addr6(u128::MAX << 64),
        Const::Addr6(DOC | 1 << 80 | 2 << 64),
        Const::Prefix6(0, 0),
    ] {
        assert!(c.module.consts.contains(&want), "{want:?} not in {:?}", c.module.consts);
    }
    // The module validates (compile validates it), and an IPv4-mapped literal is one
    // constant with its dotted spelling.
    let c = ok("LIFETIME = 1 days\nX = ::ffff:10.0.0.1 == 10.0.0.1;");
    assert_eq!(c.module.consts, [Const::Addr(0x0a00_0001)]);
}

#[test]
fn an_ipv4_param_takes_an_ipv6_value_and_back() {
    let fw = std::fs::read(format!("{}/../examples/firewall.vinet", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let c = compile("f", &fw, &[("SrcIP".into(), "2001:db8:bad::9".into())]).unwrap();
    assert_eq!(c.module.params[0].default, Const::Addr6(DOC | 0xbad << 80 | 9));
    let src =
        "LIFETIME = 1 days\nPARAM SrcIP = 2001:db8:bad::9;\nDISCARD(GROUP_BY_SOURCE(GROUP_BY_DESTINATION(AllPackets, THIS_IP), SrcIP));";
    let c = compile("f", src.as_bytes(), &[("SrcIP".into(), "198.51.100.1".into())]).unwrap();
    assert_eq!(c.module.params[0].default, Const::Addr(0xc633_6401));
    let e = compile("f", src.as_bytes(), &[("SrcIP".into(), "2001:db8::/32".into())]).unwrap_err().render();
    assert!(e.contains("--param SrcIP gives a prefix, but `SrcIP` is an IP address"), "{e}");
}

#[test]
fn malformed_ipv6_literals_are_located_errors() {
    for (src, at, message, label) in [
        ("PARAM A = 2001:db8:::1;", "2:19", "`2001:db8:::1` is not a valid IPv6 address", "a second `::`"),
        ("PARAM A = 2001::db8::1;", "2:20", "`2001::db8::1` is not a valid IPv6 address", "a second `::`"),
        ("PARAM A = 2001:db8::12345;", "2:21", "`2001:db8::12345` is not a valid IPv6 address", "`12345` is not a group"),
        ("PARAM A = 2001:db8::g1;", "2:21", "`2001:db8::g1` is not a valid IPv6 address", "`g1` is not a group"),
        ("PARAM A = 1:2:3:4:5:6:7:8:9;", "2:11", "`1:2:3:4:5:6:7:8:9` is not a valid IPv6 address", "9 groups"),
        ("PARAM A = 2001:db8:1;", "2:11", "`2001:db8:1` is not a valid IPv6 address", "3 groups and no `::`"),
        ("PARAM A = ::ffff:1.2.3.400;", "2:18", "`::ffff:1.2.3.400` is not a valid IPv6 address", "`1.2.3.400` is not an IPv4"),
        ("PARAM A = 2001:db8::/129;", "2:11", "`2001:db8::/129` has a prefix length above 128", "not an IPv6 prefix"),
        ("PARAM A = 2001:db8::1/32;", "2:11", "the prefix `2001:db8::1/32` has host bits set", "did you mean `2001:db8::/32`?"),
        ("PARAM A = ::ffff:10.1.0.1/112;", "2:11", "the prefix `::ffff:10.1.0.1/112` has host bits set", "did you mean `10.1.0.0/16`?"),
    ] {
        let e = errors(&format!("LIFETIME = 1 days\n{src}\nX = A;"));
        assert!(e.contains(&format!("t.vinet:{at}")), "{src}: {e}");
        assert!(e.contains(message), "{src}: {e}");
        assert!(e.contains(label), "{src}: {e}");
        assert!(e.contains("(1 error)"), "{src}: one error: {e}");
    }
    // Every bad literal of a run is reported, and the help says how IPv6 is written.
    let e = errors("LIFETIME = 1 days\nA = 2001:db8:::1;\nB = fe80::1::2;\nC = ::/200;\n");
    assert!(e.contains("(3 errors)"), "{e}");
    assert!(e.contains("help: an IPv6 address is eight groups"), "{e}");
}

#[test]
fn ipv6_this_ip_and_subnet_in_the_reference_interpreter() {
    let c = ok("LIFETIME = 1 days\nPARAM SrcIP = 2001:db8:bad::9;\nPARAM Old = 203.0.113.9;\n\
                Mine = GROUP_BY_DESTINATION(AllPackets, THIS_SUBNET_IP);\n\
                DISCARD(GROUP_BY_SOURCE(Mine, SrcIP));\nDISCARD(GROUP_BY_SOURCE(Mine, Old));\n\
                D, C = GROUP_BY_CONTENT(Mine);\nGENERATE(SrcIP, THIS_IP, D);\nGENERATE(Old, THIS_IP, \"mixed\");");
    let me = DOC | 0xa << 80 | 7; // 2001:db8:a::7
    let pkt = |src: u128, dst: u128| RefPacket {
        src,
        dst,
        proto: 17,
        sport: 1,
        dport: 2,
        has_ports: true,
        tcp_flags: 0,
        seq: 0,
        on_key: None,
        payload: vec![],
    };
    let v4 = vinet_checker::mapped;
    let w = [
        pkt(DOC | 0xbad << 80 | 9, DOC | 0xa << 80 | 1),
        pkt(DOC | 0xbad << 80 | 9, DOC | 0xb << 80 | 1), // outside THIS_SUBNET_IP
        pkt(v4(0xcb00_7109), DOC | 0xa << 80 | 2),
        pkt(v4(0xcb00_7109), v4(0x0a00_0001)), // IPv4: outside an IPv6 subnet
        pkt(DOC | 0xbad << 80 | 8, DOC | 0xa << 80 | 3),
    ];
    let env = RefEnv {
        this_ip: me,
        this_subnet: (DOC | 0xa << 80, 48),
        params: vec![],
        unit_costs: vinet_checker::policy::UnitCosts {
            discard: 1,
            group_by_destination: 1,
            group_by_source: 1,
            group_by_content: 1,
            contains_string: 1,
            generate: 1,
            count: 1,
            distinct_destinations: 1,
            by_field: [1; 4],
            distinct_ports: 1,
            grouping: 1,
            instruction: 1,
            bytes: 1,
        },
        fuel: None,
    };
    let fx = reference::run(&c.program, &w, &env).unwrap();
    assert_eq!(fx.dropped, [0, 2]);
    // The destinations list has IPv6 addresses: 16 bytes each. The IPv4 source to the
    // IPv6 THIS_IP cannot be one packet: skipped, not sent.
    let [(src, dst, list)] = fx.generated.as_slice() else { panic!("{:?}", fx.generated) };
    assert_eq!((*src, *dst), (DOC | 0xbad << 80 | 9, me));
    assert_eq!(&list[..8], b"VND1\0\0\0\x03");
    assert_eq!(list.len(), 8 + 3 * 16);
    assert_eq!(&list[8..24], &(DOC | 0xa << 80 | 1).to_be_bytes());
    assert_eq!(fx.skipped, 1);
}

#[test]
fn the_compiler_prints_addresses_as_rfc_5952() {
    let e = errors("LIFETIME = 1 days\nPARAM A = 2001:DB8:0:0:0:0:0:1/64;\nX = A;");
    assert!(e.contains("did you mean `2001:db8::/64`?"), "{e}");
    let c = ok("LIFETIME = 1 days\nX = 2001:0DB8::0001 == 2001:db8:0:0:0:0:0:1;");
    assert!(c.module.code.iter().any(|i| matches!(i, Insn::Cmp { .. })));
    assert_eq!(c.module.consts, [Const::Addr6(DOC | 1)], "one constant, however it is written");
}
