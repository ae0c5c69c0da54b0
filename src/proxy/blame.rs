//! Whose fault a failed attempt was (DESIGN §7.1 attribution and §7.6): pure policy, applied
//! by the forwarder once a request's fate is known.
//!
//! - The client's stalled or broken body is the client's; bascule out of descriptors or memory
//!   is bascule's: neither is charged to anyone.
//! - An origin-role upstream's failure is the origin's.
//! - A CDN's answer (a status, its error page, no answer in time, a broken exchange) is the
//!   origin's fault when the route's origins are failing — by their own active checks, or
//!   because this same request failed on an origin-role upstream too — and the CDN's
//!   otherwise (a route with no origin-role upstream has no origin to blame). A CDN that
//!   cannot be reached is at fault whatever the origin does.
//! - Whoever is at fault, a failure counts toward passive ejection only under the blame rule
//!   of [`Failure::blames_upstream`]: a request-dependent failure (a status, a CDN's error
//!   page, a timeout, a broken exchange) only when another upstream answered the same request;
//!   and a CDN's failure only when it is the CDN's fault.

use super::error::Failure;
use crate::config::Role;
use crate::metrics::Fault;

/// How one failed attempt is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// Whose fault it is (`bascule_upstream_failures_total{fault}`); None: nobody upstream.
    pub fault: Option<Fault>,
    /// Whether it counts toward the upstream's passive ejection.
    pub ejects: bool,
}

/// The charge for a `failure` on an upstream of `role`, given whether another upstream
/// answered the same request and whether the route's origins are failing (by their checks,
/// or on this very request).
pub fn charge(
    role: Role,
    failure: Failure,
    answered_elsewhere: bool,
    origins_failing: bool,
) -> Charge {
    if !failure.is_upstream_side() {
        return Charge {
            fault: None,
            ejects: false,
        };
    }
    // A CDN that cannot be reached is at fault whatever the origin does: only what it
    // answers (or fails to answer in time) can be the origin's, seen through it.
    let fault = match role {
        Role::Cdn if origins_failing && !failure.nothing_sent() => Fault::Origin,
        Role::Cdn => Fault::Cdn,
        Role::Origin => Fault::Origin,
    };
    let charged_here = role == Role::Origin || fault == Fault::Cdn;
    Charge {
        fault: Some(fault),
        ejects: charged_here && failure.blames_upstream(answered_elsewhere),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Failure::*;

    #[test]
    fn who_is_charged_for_what() {
        // (role, failure, answered elsewhere, origins failing) -> (fault, ejects)
        let cdn = Some(Fault::Cdn);
        let origin = Some(Fault::Origin);
        let table = [
            // A CDN that cannot be reached is at fault whatever the request.
            (Role::Cdn, Connect, false, false, cdn, true),
            (Role::Cdn, ConnectTimeout, true, false, cdn, true),
            // Its own error page, when the next tier served the request: the CDN's.
            (Role::Cdn, CdnError, true, false, cdn, true),
            // Every tier failed the same request: its own page still names the CDN, but one
            // request cannot eject it.
            (Role::Cdn, CdnError, false, false, cdn, false),
            (Role::Cdn, Status, false, false, cdn, false),
            // The origins are failing: whatever a CDN answers is the origin's.
            (Role::Cdn, Status, true, true, origin, false),
            (Role::Cdn, CdnError, true, true, origin, false),
            (Role::Cdn, ResponseTimeout, true, true, origin, false),
            // ...but not its own refusal: nothing reached the origin through it.
            (Role::Cdn, Connect, false, true, cdn, true),
            // The origin's own failures are its own.
            (Role::Origin, Status, true, false, origin, true),
            (Role::Origin, Status, false, true, origin, false),
            (Role::Origin, Connect, false, true, origin, true),
            // The client's and bascule's own are nobody's upstream.
            (Role::Cdn, ClientBody, true, false, None, false),
            (Role::Origin, Local, true, false, None, false),
        ];
        for (role, failure, answered, failing, fault, ejects) in table {
            assert_eq!(
                charge(role, failure, answered, failing),
                Charge { fault, ejects },
                "{role:?} {failure:?} answered elsewhere={answered} origins failing={failing}"
            );
        }
    }
}
