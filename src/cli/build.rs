//! `vinetc build PROG.vinet [-o PROG.vbc] [--param NAME=VALUE]...`

use std::path::PathBuf;

use vinet_checker::Module;

use super::{fmt_lifetime, read_input, Failure};

const AFTER_HELP: &str = "\
Example:
  vinetc build examples/firewall.vinet --param SrcIP=198.51.100.23 -o firewall.vbc

--param values are typed by their syntax: 1.2.3.4 is an address, 10.0.0.0/8 a
prefix, 42 a number, \"...\" or any other text a string. A --param gives a value
to a name the program uses without declaring, or overrides a PARAM line.";

/// Arguments of `vinetc build`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The VInet program.
    #[arg(value_name = "PROG.vinet")]
    pub program: PathBuf,
    /// Where to write the module [default: the program's path with .vbc].
    #[arg(short, long, value_name = "PROG.vbc")]
    pub output: Option<PathBuf>,
    /// Give or override a parameter.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = param)]
    pub params: Vec<(String, String)>,
}

pub(crate) fn param(arg: &str) -> Result<(String, String), String> {
    let (name, value) = vinet_lang::parse_param_arg(arg)?;
    vinet_lang::parse_param_value(&value).map_err(|e| format!("{name}: {e}"))?;
    Ok((name, value))
}

/// Run `vinetc build`.
pub fn run(args: Args) -> Result<(), Failure> {
    let source = read_input(&args.program)?;
    let name = args.program.display().to_string();
    let compiled = match vinet_lang::compile(&name, &source, &args.params) {
        Ok(c) => c,
        Err(diagnostics) => {
            diagnostics.emit();
            return Err(Failure::Rejected(String::new()));
        }
    };
    if !compiled.warnings.is_empty() {
        compiled.warnings.emit();
    }
    let output = args.output.unwrap_or_else(|| args.program.with_extension("vbc"));
    let bytes = compiled.module.encode();
    std::fs::write(&output, &bytes).map_err(|e| Failure::Usage(format!("cannot write {}: {e}", output.display())))?;
    println!("built {}: {}", output.display(), summary(&compiled.module, &bytes));
    Ok(())
}

/// One line about a module: id prefix, sizes, class, lifetime.
pub fn summary(m: &Module, bytes: &[u8]) -> String {
    let id = Module::id_of(bytes).to_string();
    let class = vinet_vocab::names::class_name(m.header.class);
    let n = |count: usize, what: &str| format!("{count} {what}{}", if count == 1 { "" } else { "s" });
    format!(
        "module {}, {}, {}, {}, {}, class {class}, lifetime {}",
        &id[..12],
        n(m.code.len(), "instruction"),
        n(m.regs.len(), "register"),
        n(m.consts.len(), "constant"),
        n(m.params.len(), "param"),
        fmt_lifetime(m.header.lifetime_secs),
    )
}
