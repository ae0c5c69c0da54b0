//! The response body the client receives: an upstream's streamed body, or a short local
//! answer. The request bodies of attempts are the client's (`client::body`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
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
    /// An upstream's body; `prefix` is what was read of it already (a CDN's 5xx, inspected).
    Upstream {
        prefix: Option<Bytes>,
        body: crate::client::Body,
    },
    Full(Option<Bytes>),
}

impl ProxyBody {
    /// An upstream's body, streamed; `in_flight` is released when it ends.
    pub fn upstream(body: crate::client::Body, in_flight: InFlight) -> ProxyBody {
        Self::upstream_after(None, body, in_flight)
    }

    /// An upstream's body of which `prefix` was read already: `prefix` first, then the rest.
    pub fn upstream_after(
        prefix: Option<Bytes>,
        body: crate::client::Body,
        in_flight: InFlight,
    ) -> ProxyBody {
        ProxyBody {
            kind: Kind::Upstream {
                prefix: prefix.filter(|p| !p.is_empty()),
                body,
            },
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
        if matches!(self.kind, Kind::Upstream { .. }) {
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
            Kind::Upstream { prefix, body } => {
                if let Some(p) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                let r = Pin::new(body).poll_frame(cx);
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
            Kind::Upstream { prefix, body } => prefix.is_none() && body.is_end_stream(),
            Kind::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream { prefix, body } => {
                let before = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let rest = body.size_hint();
                let mut h = SizeHint::new();
                h.set_lower(rest.lower() + before);
                if let Some(u) = rest.upper() {
                    h.set_upper(u + before);
                }
                h
            }
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use http_body_util::BodyExt;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::config::PassiveSpec;
    use crate::events::Signals;
    use crate::health::Health;

    fn health() -> Arc<Health> {
        let (signals, _rx) = Signals::channel();
        let spec = PassiveSpec::consecutive(3, Duration::from_secs(1));
        Arc::new(Health::new("up", &spec, signals))
    }

    #[tokio::test]
    async fn a_local_answer_is_sent_once_with_its_exact_size() {
        let body = ProxyBody::full("no upstream");
        assert_eq!(body.size_hint().exact(), Some(11));
        assert!(!body.is_end_stream());
        assert_eq!(
            body.collect().await.expect("body").to_bytes(),
            "no upstream"
        );
    }

    #[test]
    fn an_empty_local_answer_has_ended_before_it_is_read() {
        assert!(ProxyBody::full("").is_end_stream());
        assert!(ProxyBody::empty().is_end_stream());
        assert_eq!(ProxyBody::empty().size_hint().exact(), Some(0));
    }

    #[test]
    fn a_local_answer_holds_no_upstream_slot() {
        let slots = Arc::new(Semaphore::new(1));
        let mut body = ProxyBody::full("x");
        body.hold(Arc::clone(&slots).try_acquire_owned().expect("a slot"));
        assert_eq!(slots.available_permits(), 1, "given back at once");
    }

    #[tokio::test]
    async fn an_upstream_body_keeps_its_slot_and_in_flight_count_until_it_ends() {
        let (incoming, mut chunks) = crate::client::body::tests::loopback().await;
        let h = health();
        let slots = Arc::new(Semaphore::new(1));
        let mut body =
            ProxyBody::upstream(crate::client::Body::detached(incoming), h.start_request());
        body.hold(Arc::clone(&slots).try_acquire_owned().expect("a slot"));
        assert_eq!((h.in_flight(), slots.available_permits()), (1, 0));
        chunks
            .send_data(Bytes::from_static(b"part"))
            .await
            .expect("send");
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.into_data().expect("data"), "part");
        assert_eq!(
            (h.in_flight(), slots.available_permits()),
            (1, 0),
            "mid-body"
        );
        drop(chunks);
        assert!(body.frame().await.is_none(), "the end");
        assert_eq!(
            (h.in_flight(), slots.available_permits()),
            (0, 1),
            "released at the end"
        );
        drop(body);
    }

    #[tokio::test]
    async fn an_upstream_body_dropped_early_releases_what_it_held() {
        let (incoming, _chunks) = crate::client::body::tests::loopback().await;
        let h = health();
        let slots = Arc::new(Semaphore::new(1));
        let mut body =
            ProxyBody::upstream(crate::client::Body::detached(incoming), h.start_request());
        body.hold(Arc::clone(&slots).try_acquire_owned().expect("a slot"));
        drop(body);
        assert_eq!((h.in_flight(), slots.available_permits()), (0, 1));
    }
}
