//! Why a process could not start: an invalid config, a table that does not compile, a
//! listener that cannot bind (named by its config key, with the OS error in a few words).

use std::net::SocketAddr;

use crate::config;

/// Why the process could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config file is invalid or unreadable.
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// The first table could not be built.
    #[error("{0}")]
    Compile(#[from] crate::routing::CompileError),
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}{}: {}", role.label(), bind_reason(source))]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Which of the config's listeners it is.
        role: Role,
        /// Why.
        source: std::io::Error,
    },
    /// Something else needed to start failed.
    #[error("{0}")]
    Startup(String),
}

/// Which listener of the config a socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `[listen] http`.
    Http,
    /// `[listen] https`.
    Https,
    /// `[admin] listen`.
    Admin,
    /// `[admin] metrics_listen`.
    Metrics,
}

impl Role {
    /// The config key that sets it.
    pub fn key(self) -> &'static str {
        match self {
            Role::Http => "[listen] http",
            Role::Https => "[listen] https",
            Role::Admin => "[admin] listen",
            Role::Metrics => "[admin] metrics_listen",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Role::Http | Role::Https => "",
            Role::Admin => " (admin API)",
            Role::Metrics => " (metrics)",
        }
    }
}

/// A bind error in a few words ("address in use" rather than the OS's sentence).
fn bind_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "address in use".to_owned(),
        std::io::ErrorKind::AddrNotAvailable => "no such address on this host".to_owned(),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)".to_owned()
        }
        _ => e.to_string(),
    }
}
