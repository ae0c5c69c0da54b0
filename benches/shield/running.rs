//! nginx or Varnish under measurement, a child in the foreground: ready once its port accepts,
//! stopped by SIGTERM to its own PID (SIGKILL after 5 s). Nothing else is ever signalled.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A proxy other than bascule, started here as a child in the foreground.
pub struct Running {
    /// Where it serves plain HTTP.
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl Running {
    /// Waits (10 s at most) until `addr` accepts; kills the child if it does not.
    pub async fn ready(
        mut child: std::process::Child,
        addr: SocketAddr,
        name: &str,
    ) -> Result<Self, String> {
        let start = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if start.elapsed() > Duration::from_secs(10) || matches!(child.try_wait(), Ok(Some(_)))
            {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name} did not start"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { addr, child })
    }

    /// SIGTERM to our child's PID (varnishd's manager then stops its worker), SIGKILL after 5 s.
    pub async fn stop(mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child, not yet reaped (its pid cannot be reused).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
