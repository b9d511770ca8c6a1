//! Name resolution for the transport, remembered for a while.
//!
//! ureq's default resolver starts a thread for every request that has a timeout, to be
//! able to give up on a slow lookup, even when the host is an IP address and the
//! connection comes from its pool. At ~60 requests a second under load that thread was
//! most of the shipping thread's CPU. This resolves through ureq's own resolver (so the
//! timeout still holds) and keeps the answer for `TTL`, so a server that moves is found
//! again within that time.

use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ureq::config::Config;
use ureq::http::uri::Authority;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a lookup is trusted: DNS records of a log server rarely change faster.
const TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct CachingResolver {
    inner: DefaultResolver,
    last: Mutex<Option<Lookup>>,
}

struct Lookup {
    authority: String,
    addrs: ResolvedSocketAddrs,
    at: Instant,
}

impl fmt::Debug for CachingResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CachingResolver")
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let authority = uri.authority().map(Authority::as_str).unwrap_or_default();
        if let Some(hit) = self
            .last
            .lock()
            .as_ref()
            .filter(|l| l.authority == authority && l.at.elapsed() < TTL)
        {
            return Ok(hit.addrs.clone());
        }
        // Failures are not remembered: the next request asks again.
        let addrs = self.inner.resolve(uri, config, timeout)?;
        *self.last.lock() = Some(Lookup {
            authority: authority.to_owned(),
            addrs: addrs.clone(),
            at: Instant::now(),
        });
        Ok(addrs)
    }
}
