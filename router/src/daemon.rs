//! `vinetd`: the router daemon's threads, wired together.
//!
//! - the **packet thread** ([`crate::live`]): windows, programs, verdicts;
//! - the **scheduler thread** ([`Admission::run_scheduler`]): queued uploads
//!   through capacity, quotas, the checker and install; lease expiry;
//! - the **accept thread** and one thread per connection ([`Conns`]): at
//!   most `max_connections` served at once, and at most
//!   `max_connections_per_address` from one address (by default a quarter of
//!   them, at least 4; more from it are closed at once). When every slot is
//!   taken, the newcomer takes the slot of the connection that has waited
//!   longest for bytes from its client (a handshake or request being
//!   dribbled, or an idle one), so that slow or silent clients cannot keep
//!   real ones out; only when every slot is busy being answered are the next
//!   ones, up to as many again, answered "busy", and beyond that closed
//!   (and at most four times `max_connections` threads, those being cut off
//!   included);
//! - the **metrics thread** ([`crate::metrics::serve`]).
//!
//! The router's Noise static key lives in `router_key`
//! ([`vinet_proto::keyfile::router_key`] creates it on first start).

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::admission::Admission;
use crate::config::{Config, LiveMode};
use crate::live::{LiveSource, PacketPath};
use crate::metrics::Metrics;
use vinet_engine::window::WindowConfig;
use vinet_proto::identity::hex;
use vinet_proto::keyfile;
use vinet_proto::protocol::{self, Channel, Refusal, Reply, WireError};

/// A running daemon.
pub struct Daemon {
    /// The admission side.
    pub admission: Arc<Admission>,
    /// Where requests are accepted.
    pub listen: SocketAddr,
    /// Where metrics are served.
    pub metrics: Option<SocketAddr>,
    /// The router's public Noise key.
    pub public_key: [u8; 32],
    /// The overlay (`[overlay]`): its participant server runs while this lives.
    pub overlay: Option<Arc<crate::overlay::Overlay>>,
    accept: Option<JoinHandle<()>>,
    scheduler: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("listen", &self.listen).finish_non_exhaustive()
    }
}

impl Daemon {
    /// Start everything.
    pub fn start(cfg: Config) -> Result<Daemon, String> {
        let created = !cfg.router_key.exists();
        let (private, public) = keyfile::router_key(&cfg.router_key)?;
        if created {
            tracing::info!(path = %cfg.router_key.display(), "created the router's static key");
        }
        let wcfg = WindowConfig::new(cfg.window_packets(), cfg.window_millis);
        // The participant server first: its store's leases are in the data
        // plane before the ON lane takes a packet.
        let overlay = cfg.overlay.as_ref().map(crate::overlay::Overlay::start).transpose()?.map(Arc::new);
        let source = match cfg.live {
            LiveMode::None => LiveSource::None,
            #[cfg(target_os = "linux")]
            LiveMode::Nfqueue(n) => LiveSource::Nfqueue(crate::live::NfqueueSource {
                hooks: crate::live::hooks::HookConfig {
                    first_queue: n.queue,
                    local_lanes: n.threads,
                    window_lanes: n.window_threads,
                    down_open: n.down_open,
                    ipv6_drop: n.ipv6_drop,
                    overlay: overlay.is_some(),
                },
                manage_hooks: n.hooks,
                queue_full_accept: n.queue_full_accept,
                overlay: overlay.as_ref().map(|o| Arc::clone(o.data())),
            }),
            #[cfg(not(target_os = "linux"))]
            LiveMode::Nfqueue(_) => return Err("NFQUEUE is available on Linux only".into()),
        };
        let packets = PacketPath::start(wcfg, source).map_err(|e| {
            format!("cannot start the packet path: {e} (NFQUEUE needs root or CAP_NET_ADMIN, and the nfnetlink_queue module)")
        })?;
        let metrics_listener = match &cfg.metrics {
            Some(m) => Some(TcpListener::bind(m).map_err(|e| format!("cannot serve metrics on {m}: {e}"))?),
            None => None,
        };
        let metrics = Arc::new(Metrics::default());
        let timeout = Duration::from_secs(cfg.request_timeout_secs);
        let (max_conn, max_req, per_address) = (cfg.max_connections, cfg.max_request_bytes, cfg.max_connections_per_address);
        let listen_at = cfg.listen.clone();
        let operator_socket = cfg.operator_socket.clone();
        // Reload (re-check and re-install every lease) before accepting requests.
        let admission = Admission::start(cfg, public, packets, Arc::clone(&metrics))?;
        // Only now, with every stored lease in force, does traffic flow.
        admission.go_live()?;
        let listener = TcpListener::bind(&listen_at).map_err(|e| format!("cannot listen on {listen_at}: {e}"))?;
        let listen = listener.local_addr().map_err(|e| e.to_string())?;
        let metrics_addr = match metrics_listener {
            Some(l) => {
                let a = l.local_addr().ok();
                let adm = Arc::clone(&admission);
                let ov = overlay.clone();
                let render = move || match &ov {
                    None => adm.render_metrics(),
                    Some(o) => adm.render_metrics() + &o.render_metrics(adm.packets().overlay_lane()),
                };
                crate::metrics::serve(l, Arc::new(render)).map_err(|e| e.to_string())?;
                a
            }
            None => None,
        };
        #[cfg(unix)]
        crate::operator::serve(&operator_socket, Arc::clone(&admission))?;
        let adm = Arc::clone(&admission);
        let scheduler =
            std::thread::Builder::new().name("vinet-scheduler".into()).spawn(move || adm.run_scheduler()).map_err(|e| e.to_string())?;
        let adm = Arc::clone(&admission);
        let active = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(Conns::default());
        let accept = std::thread::Builder::new()
            .name("vinet-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(stream) = conn else { continue };
                    let Ok(peer) = stream.peer_addr().map(|a| a.ip()) else { continue };
                    if conns.from(peer) >= per_address {
                        adm.count_refusal(Refusal::Busy, &format!("{peer} holds {per_address} connections already: closed unanswered"));
                        continue;
                    }
                    if conns.len() >= max_conn && conns.shed() {
                        adm.metrics().inc("vinet_connections_shed_total", "");
                    }
                    // Threads of connections just cut off may not have ended yet: the
                    // cap on threads leaves room for them.
                    if conns.len() >= 2 * max_conn || active.load(Ordering::SeqCst) >= 4 * max_conn {
                        adm.count_refusal(Refusal::Busy, "too many connections: closed unanswered");
                        continue;
                    }
                    let busy = conns.len() >= max_conn;
                    let Some(id) = conns.open(peer, &stream) else { continue };
                    active.fetch_add(1, Ordering::SeqCst);
                    adm.metrics().inc("vinet_connections_total", "");
                    let (adm, active, conns) = (Arc::clone(&adm), Arc::clone(&active), Arc::clone(&conns));
                    let spawned = std::thread::Builder::new().name("vinet-conn".into()).spawn(move || {
                        serve_connection(&adm, stream, &private, timeout, max_req, busy, &|waiting| conns.waiting(id, waiting));
                        conns.close(id);
                        active.fetch_sub(1, Ordering::SeqCst);
                    });
                    if spawned.is_err() {
                        tracing::error!("cannot start a connection thread");
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        tracing::info!(%listen, router_key = %hex(&public), metrics = ?metrics_addr, "vinetd ready");
        Ok(Daemon {
            admission,
            listen,
            metrics: metrics_addr,
            public_key: public,
            overlay,
            accept: Some(accept),
            scheduler: Some(scheduler),
        })
    }

    /// Run until the process is killed.
    pub fn wait(mut self) {
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.admission.stop();
        if let Some(t) = self.scheduler.take() {
            let _ = t.join();
        }
    }
}

/// The connections being served: each one's address, a handle that cuts it
/// off, and since when it has been waiting for bytes from its client (none
/// while the router works on its request).
#[derive(Default)]
struct Conns {
    open: Mutex<(u64, HashMap<u64, Conn>)>,
}

/// A served connection: its client's address, a handle that cuts it off, and
/// since when it has waited for its client.
type Conn = (IpAddr, TcpStream, Option<Instant>);

impl Conns {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<u64, Conn>)> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn len(&self) -> usize {
        self.lock().1.len()
    }
    fn from(&self, ip: IpAddr) -> usize {
        self.lock().1.values().filter(|c| c.0 == ip).count()
    }
    fn open(&self, ip: IpAddr, stream: &TcpStream) -> Option<u64> {
        let handle = stream.try_clone().ok()?;
        let mut g = self.lock();
        g.0 += 1;
        let id = g.0;
        g.1.insert(id, (ip, handle, Some(Instant::now())));
        Some(id)
    }
    fn close(&self, id: u64) {
        self.lock().1.remove(&id);
    }
    /// Mark a connection waiting for its client (`true`) or being answered.
    fn waiting(&self, id: u64, waiting: bool) {
        if let Some(c) = self.lock().1.get_mut(&id) {
            c.2 = if waiting { Some(c.2.unwrap_or_else(Instant::now)) } else { None };
        }
    }
    /// Cut off the connection that has waited longest for its client, if any.
    fn shed(&self) -> bool {
        let mut g = self.lock();
        let Some(id) = g.1.iter().filter_map(|(id, c)| c.2.map(|t| (t, *id))).min().map(|(_, id)| id) else { return false };
        if let Some((_, s, _)) = g.1.remove(&id) {
            let _ = s.shutdown(Shutdown::Both);
        }
        true
    }
}

fn serve_connection(
    adm: &Admission, stream: TcpStream, private: &[u8; 32], timeout: Duration, max_req: usize, busy: bool, waiting: &dyn Fn(bool),
) {
    let peer = stream.peer_addr().ok();
    let mut ch = match Channel::accept(stream, private, timeout, max_req) {
        Ok(c) => c,
        Err(e) => {
            adm.metrics().inc("vinet_disconnects_total", "");
            tracing::info!(?peer, error = %e, "handshake failed");
            return;
        }
    };
    loop {
        waiting(true);
        let got = ch.recv();
        waiting(false);
        let reply = match got {
            Ok(None) => return,
            Ok(Some(_)) if busy => {
                let m = "the router is serving too many connections; try again later";
                adm.count_refusal(Refusal::Busy, m);
                Reply::Refused { reason: Refusal::Busy, message: m.into() }
            }
            Ok(Some(bytes)) => adm.handle(&bytes),
            Err(WireError::Oversized { size, max }) => {
                let m = format!("the request of {size} bytes exceeds this router's maximum of {max}");
                adm.count_refusal(Refusal::Oversized, &m);
                let _ = ch.send(&protocol::encode(&Reply::Refused { reason: Refusal::Oversized, message: m }));
                ch.drain(size.min(64 << 20) + size / 1000 + 64);
                return;
            }
            Err(e) => {
                adm.metrics().inc("vinet_disconnects_total", "");
                tracing::info!(?peer, error = %e, "connection failed or closed mid-request; nothing done for it");
                return;
            }
        };
        if let Err(e) = ch.send(&protocol::encode(&reply)) {
            adm.metrics().inc("vinet_disconnects_total", "");
            tracing::info!(?peer, error = %e, "client left before its reply");
            return;
        }
        if busy {
            return;
        }
    }
}
