//! `vinetc lemmas build [lemmas/] [-o LIB]`

use std::path::PathBuf;

use super::Failure;

const AFTER_HELP: &str = "\
Example:
  vinetc lemmas build lemmas/ -o lemmas/library.vnl

Builds the lemma library from its source (every .vl file of the folder, in name
order): elaborates each lemma's proof, checks it with the proof kernel from the
axioms and the lemmas before it, and writes the content-addressed library file
that routers load and `vinetc check --lemmas` reads.";

/// Arguments of `vinetc lemmas`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// What to do with the library.
    #[command(subcommand)]
    pub action: Action,
}

/// Library actions.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Check the lemma sources and write the library file.
    Build {
        /// The folder of .vl sources.
        #[arg(value_name = "DIR", default_value = "lemmas")]
        dir: PathBuf,
        /// Where to write the library [default: DIR/library.vnl].
        #[arg(short, long, value_name = "LIB")]
        output: Option<PathBuf>,
    },
}

/// Run `vinetc lemmas`.
pub fn run(args: Args) -> Result<(), Failure> {
    let Action::Build { dir, output } = args.action;
    let mut files = vec![];
    let entries = std::fs::read_dir(&dir).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", dir.display())))?;
    for e in entries {
        let path = e.map_err(|e| Failure::Usage(e.to_string()))?.path();
        if path.extension().is_some_and(|x| x == "vl") {
            let text = std::fs::read_to_string(&path).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
            files.push((path.file_name().unwrap_or_default().to_string_lossy().into_owned(), text));
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Failure::Usage(format!("no .vl lemma sources in {}", dir.display())));
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let set = vinet_prover::lemma_src::build(&refs).map_err(|e| Failure::Rejected(format!("lemma library refused: {e}")))?;
    let bytes = vinet_checker::cert::encode_file(&set.library, vinet_checker::cert::LIBRARY_MAGIC);
    let output = output.unwrap_or_else(|| dir.join("library.vnl"));
    std::fs::write(&output, &bytes).map_err(|e| Failure::Usage(format!("cannot write {}: {e}", output.display())))?;
    let steps: usize = set.library.lemmas.iter().map(|l| l.proof.steps.len()).sum();
    println!(
        "built {}: {} lemmas, {} proof steps, {} bytes, each checked by the kernel",
        output.display(),
        set.library.lemmas.len(),
        steps,
        bytes.len()
    );
    Ok(())
}
