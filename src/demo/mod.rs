//! `bascule demo`: a self-contained failover demo on loopback. One process runs an origin and
//! two simulated CDNs (each marking its answers with its name), writes a config with the three
//! tiers and fast health checks, and runs the proxy with its admin API and dashboard. Each
//! simulated upstream can be broken (refuse connections, hang, answer 503) and healed from
//! the dashboard or with a JSON `POST /demo/NAME/MODE` on the admin API. `serve_one` runs a single
//! simulated upstream (`bascule demo-upstream`), for the compose demo's containers.
//!
//! The simulated upstream itself ([`SimUpstream`], switchable through a [`Mode`]) is also the
//! fake upstream of the integration tests and the benches.

mod answer;
mod banner;
mod listener;
mod mode;
mod upstream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub use banner::{banner, invocation, sweep, ConfigDir};
pub use mode::{Mode, Page};
pub use upstream::{Builder, Seen, SimUpstream, Wording, PROBE_PATH};

/// The simulated upstreams of `bascule demo`, switchable through the admin API's `/demo`.
pub trait DemoControl: Send + Sync {
    /// Each simulated upstream's name and mode.
    fn modes(&self) -> Vec<(String, Mode)>;
    /// Switches upstream `name` to `mode`; an error names what is wrong (an unknown name).
    fn set(&self, name: &str, mode: Mode) -> Result<(), String>;
}

/// The simulated upstreams, in tier order.
pub const UPSTREAMS: [&str; 3] = ["primary-cdn", "secondary-cdn", "origin"];

/// The demo's simulated upstreams, switchable from the admin API.
pub struct Demo {
    upstreams: BTreeMap<String, SimUpstream>,
}

impl Demo {
    /// Starts the simulated upstreams on ephemeral loopback ports.
    pub async fn start() -> std::io::Result<Arc<Demo>> {
        let mut upstreams = BTreeMap::new();
        for name in UPSTREAMS {
            let sim = SimUpstream::builder(name)
                .wording(Wording::Demo)
                .start()
                .await?;
            upstreams.insert(name.to_owned(), sim);
        }
        Ok(Arc::new(Demo { upstreams }))
    }

    /// The demo's config file: the three tiers, fast checks, a short failback delay.
    pub fn config(&self, listen: SocketAddr, admin: SocketAddr) -> String {
        let mut ups = String::new();
        for name in UPSTREAMS {
            if let Some(u) = self.upstreams.get(name) {
                let role = if name.ends_with("-cdn") {
                    "cdn"
                } else {
                    "origin"
                };
                ups.push_str(&format!(
                    "[upstreams.{name}]\naddress = \"{}\"\nrole = \"{role}\"\n\n",
                    u.address()
                ));
            }
        }
        format!(
            "# Written by `bascule demo`: edit it while the demo runs and watch it reload.\n\
             [listen]\nhttp = [\"{listen}\"]\ndebug_headers = true\n\n\
             [admin]\nlisten = \"{admin}\"\n\n\
             [log]\naccess = false\n\n\
             [defaults]\nconnect_timeout = \"500ms\"\nresponse_timeout = \"2s\"\n\
             [defaults.health]\ninterval = \"500ms\"\ntimeout = \"400ms\"\n\
             [defaults.passive]\nejection = \"5s\"\n\n\
             {ups}\
             [[routes]]\nname = \"site\"\nhosts = [\"*\"]\n\
             tiers = [\"primary-cdn\", \"secondary-cdn\", \"origin\"]\nfailback_delay = \"5s\"\n"
        )
    }
}

/// Serves one simulated upstream named `name` on `listen` until SIGTERM or SIGINT (the
/// containers of the compose demo, where it runs as PID 1); always healthy: stop or disconnect
/// its container to break it.
pub async fn serve_one(name: &str, listen: SocketAddr) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    );
    let sim = SimUpstream::builder(name)
        .at(listen)
        .wording(Wording::Demo)
        .start()
        .await?;
    tracing::info!(upstream = name, addr = %sim.addr, "demo upstream listening");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    drop(sim);
    Ok(())
}

impl DemoControl for Demo {
    fn modes(&self) -> Vec<(String, Mode)> {
        self.upstreams
            .iter()
            .map(|(n, u)| (n.clone(), u.mode()))
            .collect()
    }

    fn set(&self, name: &str, mode: Mode) -> Result<(), String> {
        let u = self
            .upstreams
            .get(name)
            .ok_or_else(|| format!("no simulated upstream named {name:?}"))?;
        tracing::info!(upstream = name, %mode, "demo: simulated upstream switched");
        u.switch(mode);
        Ok(())
    }
}
