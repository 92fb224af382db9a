fn main() { eprintln!("vinetc: not built yet"); std::process::exit(2) }
