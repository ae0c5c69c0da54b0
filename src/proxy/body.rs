//! The response body the client receives: an upstream's streamed body, or a short local
//! answer. The request bodies of attempts are the client's (`client::body`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

use crate::health::InFlight;

/// A response body for the client.
#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
    /// Keeps the answering upstream's in-flight count until the body is done.
    _in_flight: Option<InFlight>,
    /// Keeps the client connection's upstream slot until the body is done.
    _slot: Option<OwnedSemaphorePermit>,
}

#[derive(Debug)]
enum Kind {
    Upstream(Incoming),
    Full(Option<Bytes>),
}

impl ProxyBody {
    /// An upstream's body, streamed; `in_flight` is released when it ends.
    pub fn upstream(body: Incoming, in_flight: InFlight) -> ProxyBody {
        ProxyBody {
            kind: Kind::Upstream(body),
            _in_flight: Some(in_flight),
            _slot: None,
        }
    }

    /// A local answer.
    pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
        let b: Bytes = bytes.into();
        ProxyBody {
            kind: Kind::Full((!b.is_empty()).then_some(b)),
            _in_flight: None,
            _slot: None,
        }
    }

    /// No body.
    pub fn empty() -> ProxyBody {
        ProxyBody {
            kind: Kind::Full(None),
            _in_flight: None,
            _slot: None,
        }
    }

    /// Holds `slot` (the client connection's permit to use an upstream) until the body ends.
    pub fn hold(&mut self, slot: OwnedSemaphorePermit) {
        if matches!(self.kind, Kind::Upstream(_)) {
            self._slot = Some(slot);
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Upstream(b) => {
                let r = Pin::new(b).poll_frame(cx);
                if let Poll::Ready(None) = r {
                    this._in_flight = None;
                    this._slot = None;
                }
                r
            }
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream(b) => b.is_end_stream(),
            Kind::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream(b) => b.size_hint(),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}
