//! Shared helpers of the router tests (`tests/router_*.rs`, `tests/netns_*.rs`):
//! a scratch directory with an operator (authority) key, clients with keys and
//! identities, bundles proved with the real `vinetc`, and a real `vinetd`
//! process that can be killed with SIGKILL and restarted on the same state.
#![allow(dead_code)]

pub mod netns;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const VINETC: &str = env!("CARGO_BIN_EXE_vinetc");
pub const VINETD: &str = env!("CARGO_BIN_EXE_vinetd");

/// How long a test waits for something that should happen before it calls
/// it a hang. Tests wait for events (a line in a log, a lease gone from the
/// status, a packet counted), never for a fixed time, and this deadline is
/// only there so a real hang fails instead of running for ever: it is far
/// longer than anything takes on a loaded machine, and a test never asserts
/// that something happened quickly.
pub const HANG: Duration = Duration::from_secs(120);

/// Poll `done` every 20 ms until it holds (true) or `deadline` passes (false).
pub fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if done() {
            return true;
        }
        if t0.elapsed() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`wait_until`], failing the test with "hang" and `what` at the deadline.
pub fn wait_for(what: &str, deadline: Duration, done: impl FnMut() -> bool) {
    assert!(wait_until(deadline, done), "hang: still waiting for {what} after the {deadline:?} hang deadline");
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("vinet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("VINET_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The outcome of a vinetc run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        }
    }
    /// Assert success and return stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stdout
    }
    /// Assert a refusal (exit 1) naming `reason` on stderr.
    pub fn refused(&self, reason: &str) -> &str {
        assert_eq!(self.code, 1, "expected a refusal ({reason}):\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        assert!(self.stderr.contains(&format!("refused ({reason})")), "expected reason {reason}:\n{}", self.stderr);
        &self.stderr
    }
}

pub fn vinetc(args: &[&str]) -> Run {
    Run::from(Command::new(VINETC).args(args).stdin(Stdio::null()).output().expect("run vinetc"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A router's settings for [`Env::config`].
#[derive(Clone, Debug)]
pub struct Settings {
    pub capacity: u64,
    pub max_request_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_address: Option<usize>,
    pub max_queue: usize,
    pub drop_for_everyone: usize,
    pub quota_filtering: usize,
    pub grant: u64,
    pub check_cache: bool,
    pub lemmas: Option<PathBuf>,
    pub serves: Vec<String>,
    pub live: String,
    pub window_millis: u64,
    pub listen_host: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            capacity: 100_000,
            max_request_bytes: 1 << 20,
            max_connections: 64,
            max_connections_per_address: None,
            max_queue: 1024,
            drop_for_everyone: 100,
            quota_filtering: 100,
            grant: 10_000,
            check_cache: true,
            lemmas: None,
            serves: vec![],
            live: "mode = \"none\"".into(),
            window_millis: 5,
            listen_host: "127.0.0.1".into(),
        }
    }
}

/// A client: key file and identity file.
#[derive(Clone, Debug)]
pub struct ClientFiles {
    pub key: PathBuf,
    pub id: PathBuf,
}

/// A test world: an operator, clients, bundles, a router config.
pub struct Env {
    pub dir: Scratch,
    pub operator: PathBuf,
    pub listen: String,
    pub metrics: String,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let dir = Scratch::new(name);
        let operator = dir.path("operator.key");
        vinetc(&["keygen", "-o", operator.to_str().unwrap()]).ok();
        let listen = format!("127.0.0.1:{}", free_port());
        let metrics = format!("127.0.0.1:{}", free_port());
        Env { dir, operator, listen, metrics }
    }

    pub fn p(&self, name: &str) -> String {
        self.dir.path(name).to_str().unwrap().to_string()
    }

    /// A client with an end-user identity for `addr`, issued by `authority`
    /// (default: the operator).
    pub fn client(&self, name: &str, addr: &str) -> ClientFiles {
        self.client_by(name, addr, &self.operator.clone(), &[])
    }

    pub fn client_by(&self, name: &str, addr: &str, authority: &Path, extra: &[&str]) -> ClientFiles {
        let key = self.dir.path(&format!("{name}.key"));
        if !key.exists() {
            vinetc(&["keygen", "-o", key.to_str().unwrap()]).ok();
        }
        let id = self.dir.path(&format!("{name}.vid"));
        let mut args = vec!["identity", "issue", "--authority", authority.to_str().unwrap(), "--client"];
        let pubk = format!("{}.pub", key.display());
        args.push(&pubk);
        args.extend(["--address", addr, "-o", id.to_str().unwrap()]);
        args.extend(extra);
        vinetc(&args).ok();
        ClientFiles { key, id }
    }

    /// Prove `source` (a VInet program) against the end-user policy.
    pub fn bundle(&self, name: &str, source: &str) -> String {
        self.bundle_with(name, source, &root().join("examples/policies/end-user.toml"))
    }

    pub fn bundle_with(&self, name: &str, source: &str, policy: &Path) -> String {
        let src = self.dir.path(&format!("{name}.vinet"));
        std::fs::write(&src, source).unwrap();
        let out = self.p(&format!("{name}.vpc"));
        vinetc(&["prove", src.to_str().unwrap(), "--policy", policy.to_str().unwrap(), "-o", &out]).ok();
        out
    }

    /// The paper's firewall with a given lifetime.
    pub fn firewall(&self, name: &str, lifetime: &str) -> String {
        self.bundle(
            name,
            &format!(
                "LIFETIME = {lifetime}\nPARAM SrcIP = 203.0.113.9;\nMyPackets = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nBadPackets = GROUP_BY_SOURCE(MyPackets, SrcIP);\nDISCARD(BadPackets);\n"
            ),
        )
    }

    /// Write the router config; returns its path.
    pub fn config(&self, s: &Settings) -> PathBuf {
        let pubkey = std::fs::read_to_string(format!("{}.pub", self.operator.display())).unwrap();
        let key = pubkey.split_whitespace().nth(1).unwrap().to_string();
        let listen = self.listen.replace("127.0.0.1", &s.listen_host);
        let lemmas = s.lemmas.as_ref().map_or(String::new(), |l| format!("lemmas = \"{}\"\n", l.display()));
        let serves = if s.serves.is_empty() {
            String::new()
        } else {
            format!("serves = [{}]\n", s.serves.iter().map(|x| format!("\"{x}\"")).collect::<Vec<_>>().join(", "))
        };
        let text = format!(
            r#"listen = "{listen}"
metrics = "{metrics}"
database = "{db}"
router_key = "{rk}"
{lemmas}{serves}capacity = {cap}
window_millis = {wm}
cost_units_per_credit = 1_000_000
drop_for_everyone = {dfe}
max_request_bytes = {mrb}
max_connections = {mc}
max_connections_per_address = {mpa}
max_queue = {mq}
request_timeout_secs = 5
check_cache = {cc}

[policies]
end-user = "{root}/examples/policies/end-user.toml"
edge-router = "{root}/examples/policies/edge-router.toml"

[[authorities]]
name = "operator"
key = "{key}"
grant = {grant}

[quotas]
filtering = {qf}
multicast = 100
monitoring = 100

[live]
{live}
"#,
            metrics = self.metrics,
            db = self.p("router.db"),
            rk = self.p("router.key"),
            cap = s.capacity,
            wm = s.window_millis,
            dfe = s.drop_for_everyone,
            mrb = s.max_request_bytes,
            mc = s.max_connections,
            mpa = s.max_connections_per_address.unwrap_or(s.max_connections.div_ceil(4).max(4)).min(s.max_connections),
            mq = s.max_queue,
            cc = s.check_cache,
            root = root().display(),
            grant = s.grant,
            qf = s.quota_filtering,
            live = s.live,
        );
        let p = self.dir.path("router.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Connection arguments for a client.
    pub fn conn<'a>(&'a self, c: &'a ClientFiles) -> Vec<String> {
        vec![
            "--router".into(),
            self.listen.clone(),
            "--router-key".into(),
            self.p("router.key.pub"),
            "--key".into(),
            c.key.display().to_string(),
            "--identity".into(),
            c.id.display().to_string(),
        ]
    }

    /// `vinetc <cmd> [pre..] <conn> [post..]`.
    pub fn run(&self, cmd: &str, pre: &[&str], c: &ClientFiles, post: &[&str]) -> Run {
        let mut args: Vec<String> = vec![cmd.into()];
        args.extend(pre.iter().map(|s| s.to_string()));
        args.extend(self.conn(c));
        args.extend(post.iter().map(|s| s.to_string()));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        vinetc(&a)
    }

    pub fn upload(&self, bundle: &str, c: &ClientFiles, pay: u64, extra: &[&str]) -> Run {
        let pay = pay.to_string();
        let mut post = vec!["--pay", &pay, "--format", "text"];
        post.extend(extra);
        self.run("upload", &[bundle], c, &post)
    }

    /// `vinetc status --format json` for a client.
    pub fn status(&self, c: &ClientFiles) -> serde_json::Value {
        let r = self.run("status", &[], c, &["--format", "json"]);
        serde_json::from_str(r.ok()).unwrap()
    }

    /// The metrics page.
    pub fn metrics(&self) -> String {
        let mut s = TcpStream::connect(&self.metrics).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut page = String::new();
        s.read_to_string(&mut page).unwrap();
        page
    }

    /// A metric's value (0 if absent).
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

/// A running vinetd, killed with SIGKILL on drop.
pub struct Vinetd {
    pub child: Child,
    pub log: PathBuf,
}

impl Vinetd {
    /// Start vinetd with `config`, wait until it accepts connections.
    pub fn start(config: &Path, listen: &str, log: PathBuf) -> Vinetd {
        Vinetd::start_with(Command::new(VINETD), config, listen, log)
    }

    /// Start with a prepared command (e.g. `ip netns exec R vinetd`).
    pub fn start_with(mut cmd: Command, config: &Path, listen: &str, log: PathBuf) -> Vinetd {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let from = f.metadata().map_or(0, |m| m.len() as usize);
        let child = cmd.arg("--config").arg(config).stdin(Stdio::null()).stdout(Stdio::null()).stderr(f).spawn().expect("start vinetd");
        let mut d = Vinetd { child, log };
        d.wait_ready(listen, from);
        d
    }

    fn wait_ready(&mut self, listen: &str, from: usize) {
        let ready = wait_until(HANG, || {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("vinetd exited ({st}) before it was ready:\n{}", self.log_text());
            }
            self.log_text().get(from..).is_some_and(|t| t.contains("vinetd ready"))
                && (listen.is_empty() || TcpStream::connect(listen).is_ok())
        });
        assert!(ready, "hang: vinetd not ready after the {HANG:?} hang deadline:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Lines of the log containing `what`.
    pub fn log_lines(&self, what: &str) -> Vec<String> {
        std::io::BufReader::new(std::fs::File::open(&self.log).unwrap())
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains(what))
            .collect()
    }
}

impl Drop for Vinetd {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The median (the upper one of an even count) of measurements.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A bench binary's arguments: whether to run the quick version (`--quick`,
/// `VINET_BENCH_QUICK=1`, or run other than by `cargo bench`, which passes
/// `--bench`), or the exit code for an argument it does not know.
pub fn bench_quick(name: &str) -> Result<bool, std::process::ExitCode> {
    let mut quick = std::env::var("VINET_BENCH_QUICK").as_deref() == Ok("1");
    let mut bench = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--quick" => quick = true,
            "--bench" => bench = true,
            other => {
                eprintln!("{name}: unknown argument {other:?} (the options are --quick; cargo passes --bench)");
                return Err(std::process::ExitCode::from(2));
            }
        }
    }
    Ok(quick || !bench)
}
