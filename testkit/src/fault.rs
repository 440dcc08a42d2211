//! The fault layer: a loopback proxy in front of one upstream server that
//! injects the failures real stores and networks produce, and the store
//! quirks local servers lack.
//!
//! It takes origin-form requests (give the binary [`FaultProxy::url`] as
//! its endpoint), absolute-form ones (`HTTP_PROXY`; any host name reaches
//! the upstream, so virtual-host bucket names need no DNS), and `CONNECT`,
//! which is relayed to the upstream as raw bytes. Each request is checked
//! against the [`Rule`]s in the order they were injected; the first that
//! matches with uses left supplies its [`Fault`]; a rule still skipping
//! (`skip(n)`) counts the request and lets later rules look at it. When no
//! rule applies, the seeded soak of [`FaultProxy::random_faults`] may pick
//! one. [`Quirks`] refuse what a real store refuses, for requests no rule
//! picked. Every request is recorded as a [`Seen`]. A CONNECT is recorded
//! and never faulted.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::http::{self, lock, Body, Cut, Handler, Reply, Request, Server};

/// What happens to a request a rule picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with an empty body; the upstream is not asked.
    Status(u16),
    /// This status with an empty body and a `Retry-After` header.
    StatusRetryAfter(u16, RetryAfter),
    /// 503 with S3's `SlowDown` error XML.
    SlowDown,
    /// This status with an S3 error XML body carrying this `<Code>`.
    Xml(u16, &'static str),
    /// Read the whole request, then reset without answering (not forwarded).
    ResetBeforeResponse,
    /// Read half the request body (at most 64 KiB), then reset.
    ResetDuringUpload,
    /// Forward, send the head and this percentage of the body, then reset.
    ResetDuringDownload(usize),
    /// Forward, send the head with the full Content-Length but only half
    /// the body, then close cleanly.
    ShortBody,
    /// Read the whole request, send nothing for this long, then close.
    Stall(Duration),
    /// Read the whole request, then hold it until the test opens the
    /// [`Gate`] (or [`HOLD_MAX`] passed), then forward it.
    Hold(Gate),
    /// Forward, send the head and half the body, then nothing for this
    /// long, then close.
    StallDuringDownload(Duration),
    /// Forward, flipping every bit of the body's middle byte.
    CorruptBody,
    /// Flip every bit of the request body's middle byte (same length, same
    /// headers), then forward: bytes damaged on the way up.
    CorruptUpload,
    /// Forward, drop the Content-Length, and send this many bytes more
    /// than the body (delimited by the close).
    Overlong(usize),
    /// A [`Quirks`] refusal: this status with S3 error XML carrying this
    /// `<Code>` and, unless empty, this `<Header>`.
    Refused(u16, &'static str, String),
}

/// What a `Retry-After` header says, in either of RFC 9110's forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// Delta-seconds: `Retry-After: 2`.
    Seconds(u64),
    /// An IMF-fixdate this many seconds after the answer is made:
    /// `Retry-After: Wed, 21 Oct 2015 07:28:02 GMT`.
    DateIn(u64),
}

impl RetryAfter {
    fn header(self) -> String {
        match self {
            RetryAfter::Seconds(n) => n.to_string(),
            RetryAfter::DateIn(n) => {
                imf_fixdate(time::OffsetDateTime::now_utc() + Duration::from_secs(n))
            }
        }
    }
}

/// `Wed, 21 Oct 2015 07:28:00 GMT`, of a UTC time.
pub fn imf_fixdate(at: time::OffsetDateTime) -> String {
    let short = |name: String| name[..3].to_string();
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        short(at.weekday().to_string()),
        at.day(),
        short(at.month().to_string()),
        at.year(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The longest a [`Fault::Hold`] holds a request whose gate is never
/// opened: a hang guard for a failing test, not a timing.
pub const HOLD_MAX: Duration = Duration::from_secs(120);

/// Where a [`Fault::Hold`] keeps its requests: the test waits until one is
/// held ([`Gate::wait_held`]), does what must happen meanwhile, and
/// [`Gate::open`]s it. Clones share the gate.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<GateState>, Condvar)>);

#[derive(Default)]
struct GateState {
    held: usize,
    open: bool,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Waits until a request is held, at most `within`; whether one was.
    pub fn wait_held(&self, within: Duration) -> bool {
        let (state, changed) = &*self.0;
        let (state, _) = changed
            .wait_timeout_while(lock(state), within, |st| st.held == 0)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.held > 0
    }

    /// Lets every held request, and every later one, through.
    pub fn open(&self) {
        let (state, changed) = &*self.0;
        lock(state).open = true;
        changed.notify_all();
    }

    /// Holds the calling request until the gate opens (or `HOLD_MAX`).
    fn hold(&self) {
        let (state, changed) = &*self.0;
        let mut st = lock(state);
        st.held += 1;
        changed.notify_all();
        let _ = changed
            .wait_timeout_while(st, HOLD_MAX, |st| !st.open)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = lock(&self.0 .0);
        write!(f, "Gate(held {}, open {})", st.held, st.open)
    }
}

/// Gates are equal when they are the same gate.
impl PartialEq for Gate {
    fn eq(&self, other: &Gate) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Gate {}

/// Refusals real stores make that the local servers don't; the default
/// makes none.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quirks {
    /// A bucket policy that requires encryption: 403 AccessDenied to
    /// PutObject and CreateMultipartUpload without
    /// `x-amz-server-side-encryption`.
    pub require_encryption: bool,
    /// No conditional writes: 501 NotImplemented naming `If-None-Match`.
    pub no_conditional_writes: bool,
    /// No checksum headers: this status (400 InvalidArgument or 501
    /// NotImplemented), naming the header, to a PUT or POST carrying an
    /// `x-amz-checksum-*` or `x-amz-sdk-checksum-*` header.
    pub no_checksums: Option<u16>,
    /// No DeleteObjects: 501 NotImplemented to `POST ?delete`.
    pub no_delete_objects: bool,
}

impl Quirks {
    fn refusal(&self, req: &Request) -> Option<Fault> {
        let write = req.method == "PUT" || req.method == "POST";
        let checksum = req
            .headers
            .iter()
            .map(|(n, _)| n)
            .find(|n| n.starts_with("x-amz-checksum-") || n.starts_with("x-amz-sdk-checksum-"));
        if self.require_encryption
            && (req.is_put_object() || req.is_create_multipart())
            && req.header("x-amz-server-side-encryption").is_none()
        {
            Some(Fault::Refused(403, "AccessDenied", String::new()))
        } else if self.no_conditional_writes && req.header("if-none-match").is_some() {
            let name = "If-None-Match".to_string();
            Some(Fault::Refused(501, "NotImplemented", name))
        } else if let (Some(status), true, Some(name)) = (self.no_checksums, write, checksum) {
            let code = if status == 400 {
                "InvalidArgument"
            } else {
                "NotImplemented"
            };
            Some(Fault::Refused(status, code, name.clone()))
        } else if self.no_delete_objects && req.is_delete_objects() {
            Some(Fault::Refused(501, "NotImplemented", String::new()))
        } else {
            None
        }
    }
}

/// Which requests a fault applies to; conditions combine with "and".
#[derive(Clone, Debug)]
pub struct Rule {
    method: Option<String>,
    path: Option<String>,
    query: Option<String>,
    times: usize,
    skip: usize,
}

impl Rule {
    /// Every request, once.
    pub fn any() -> Rule {
        Rule {
            method: None,
            path: None,
            query: None,
            times: 1,
            skip: 0,
        }
    }

    pub fn method(mut self, m: &str) -> Rule {
        self.method = Some(m.to_string());
        self
    }

    /// The path (no query) contains `s`.
    pub fn path_contains(mut self, s: &str) -> Rule {
        self.path = Some(s.to_string());
        self
    }

    /// The query string contains `s`.
    pub fn query_contains(mut self, s: &str) -> Rule {
        self.query = Some(s.to_string());
        self
    }

    /// The next `n` matching requests (default 1); `usize::MAX` is forever.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = n;
        self
    }

    /// First lets `n` matching requests past untouched.
    pub fn skip(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }

    fn matches(&self, req: &Request) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(&req.method))
            && self.path.as_deref().is_none_or(|p| req.path().contains(p))
            && self
                .query
                .as_deref()
                .is_none_or(|q| req.query().contains(q))
    }
}

/// One request as it reached the proxy (its body not kept).
#[derive(Clone, Debug)]
pub struct Seen {
    pub request: Request,
    /// The upstream's status; `None` when the request was not forwarded.
    pub status: Option<u16>,
    pub fault: Option<Fault>,
}

impl Deref for Seen {
    type Target = Request;

    fn deref(&self) -> &Request {
        &self.request
    }
}

#[derive(Default)]
struct State {
    rules: Vec<(Rule, Fault)>,
    /// xorshift state, per mille, kinds.
    random: Option<(u64, u64, Vec<Fault>)>,
    seen: Vec<Seen>,
    faults_applied: usize,
    quirks: Quirks,
    /// Conditional PUTs to hold until this many have arrived.
    hold: usize,
    held: usize,
    /// CompleteMultipartUploads to hold until this many have arrived (or
    /// `release_completes`), then to send together.
    hold_completes: usize,
    completes_held: usize,
    completes_released: bool,
}

struct Layer {
    upstream: SocketAddr,
    state: Mutex<State>,
    arrived: Condvar,
    /// Held conditional PUTs go to the upstream one at a time.
    serial: Mutex<()>,
}

/// The running proxy; dropping it stops it.
pub struct FaultProxy {
    layer: Arc<Layer>,
    server: Server,
}

impl FaultProxy {
    /// Listens on a random loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let layer = Arc::new(Layer {
            upstream,
            state: Mutex::default(),
            arrived: Condvar::new(),
            serial: Mutex::new(()),
        });
        FaultProxy {
            server: Server::start(layer.clone()),
            layer,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Adds a rule after the existing ones.
    pub fn inject(&self, rule: Rule, fault: Fault) {
        lock(&self.layer.state).rules.push((rule, fault));
    }

    /// Every request in arrival order, CONNECTs included.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.layer.state).seen.clone()
    }

    /// How many requests so far match `filter`.
    pub fn count(&self, filter: impl Fn(&Seen) -> bool) -> usize {
        self.seen().iter().filter(|s| filter(s)).count()
    }

    /// How many requests got a fault (a quirk's refusal included).
    pub fn faults_applied(&self) -> usize {
        lock(&self.layer.state).faults_applied
    }

    /// From now on refuses what a store with `quirks` refuses.
    pub fn set_quirks(&self, quirks: Quirks) {
        lock(&self.layer.state).quirks = quirks;
    }

    /// The `host:port` of every CONNECT, in arrival order.
    pub fn connects(&self) -> Vec<String> {
        (self.seen().into_iter())
            .filter(|s| s.method == "CONNECT")
            .map(|s| s.request.target)
            .collect()
    }

    /// From now on each request no rule applies to gets, with probability
    /// `per_mille`/1000, one of `kinds`, drawn from a xorshift seeded with
    /// `seed`: the same requests in the same order get the same faults.
    pub fn random_faults(&self, seed: u64, per_mille: u32, kinds: Vec<Fault>) {
        lock(&self.layer.state).random = Some((seed | 1, per_mille.into(), kinds));
    }

    /// An atomic store, whatever the upstream: PUTs carrying `If-None-Match`
    /// are held until `n` have arrived (or a minute passed), then sent to
    /// the upstream one at a time, so a racer's check and write never
    /// interleave with another's.
    pub fn serialise_conditional_puts(&self, n: usize) {
        lock(&self.layer.state).hold = n;
    }

    /// The worst moment of a race: CompleteMultipartUploads (`POST
    /// ?uploadId=`) are held until `n` have arrived, then all sent to the
    /// upstream at once (not one at a time), so each racer's Complete
    /// meets the others' in flight.
    pub fn hold_completes(&self, n: usize) {
        lock(&self.layer.state).hold_completes = n;
    }

    /// How many CompleteMultipartUploads have reached the hold.
    pub fn completes_held(&self) -> usize {
        lock(&self.layer.state).completes_held
    }

    /// Sends the held CompleteMultipartUploads on now, and every later one
    /// at once: for a race in which fewer than the `n` of
    /// `hold_completes` got that far.
    pub fn release_completes(&self) {
        lock(&self.layer.state).completes_released = true;
        self.layer.arrived.notify_all();
    }
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

impl Layer {
    /// Records a request and picks its fault; gives its index in `seen`.
    fn arrive(&self, req: &Request) -> (usize, Option<Fault>) {
        let mut st = lock(&self.state);
        let mut fault = None;
        let rules = if req.method == "CONNECT" {
            &mut [][..]
        } else {
            &mut st.rules[..]
        };
        for (rule, f) in rules {
            if rule.times == 0 || !rule.matches(req) {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            rule.times -= usize::from(rule.times != usize::MAX);
            fault = Some(f.clone());
            break;
        }
        if fault.is_none() && req.method != "CONNECT" {
            fault = st.quirks.refusal(req);
        }
        if let (None, false, Some((x, per_mille, kinds))) =
            (&fault, req.method == "CONNECT", &mut st.random)
        {
            if xorshift(x) % 1000 < *per_mille && !kinds.is_empty() {
                fault = kinds
                    .get((xorshift(x) % kinds.len() as u64) as usize)
                    .cloned();
            }
        }
        st.faults_applied += usize::from(fault.is_some());
        st.seen.push(Seen {
            request: req.summary(),
            status: None,
            fault: fault.clone(),
        });
        (st.seen.len() - 1, fault)
    }

    /// Forwards, holding and serialising conditional PUTs, and holding
    /// CompleteMultipartUploads, when asked to.
    fn forward(&self, req: &Request) -> std::io::Result<Reply> {
        if req.method == "POST" && req.query().contains("uploadId=") {
            self.hold_complete();
            return http::forward(self.upstream, req);
        }
        if req.method != "PUT" || req.header("if-none-match").is_none() {
            return http::forward(self.upstream, req);
        }
        let mut st = lock(&self.state);
        if st.hold == 0 {
            drop(st);
            return http::forward(self.upstream, req);
        }
        st.held += 1;
        self.arrived.notify_all();
        let (st, _) = self
            .arrived
            .wait_timeout_while(st, Duration::from_secs(60), |st| st.held < st.hold)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        drop(st);
        let _one_at_a_time = lock(&self.serial);
        http::forward(self.upstream, req)
    }
}

impl Layer {
    /// Blocks a CompleteMultipartUpload while `hold_completes` holds them.
    fn hold_complete(&self) {
        let mut st = lock(&self.state);
        if st.hold_completes == 0 || st.completes_released {
            return;
        }
        st.completes_held += 1;
        self.arrived.notify_all();
        let _ = self
            .arrived
            .wait_timeout_while(st, Duration::from_secs(60), |st| {
                st.completes_held < st.hold_completes && !st.completes_released
            });
    }
}

impl Handler for Layer {
    fn call(&self, mut req: Request, body: Body<'_>) -> Reply {
        let (idx, fault) = self.arrive(&req);
        if req.method == "CONNECT" {
            return Reply::default().cut(Cut::Tunnel(self.upstream));
        }
        if fault == Some(Fault::ResetDuringUpload) {
            return Reply::default().cut(Cut::ResetUpload);
        }
        if let Err(e) = body.read(&mut req) {
            return Reply::status(400, &e.to_string()).cut(Cut::Close);
        }
        lock(&self.state).seen[idx].request.body_len = req.body_len;
        if fault == Some(Fault::CorruptUpload) {
            let middle = req.body.len() / 2;
            if let Some(b) = req.body.get_mut(middle) {
                *b ^= 0xFF;
            }
        }
        match &fault {
            Some(Fault::Status(status)) => return Reply::status(*status, ""),
            Some(Fault::StatusRetryAfter(status, after)) => {
                return Reply::status(*status, "").header("retry-after", &after.header())
            }
            Some(Fault::SlowDown) => return Reply::s3_error(503, "SlowDown", ""),
            Some(Fault::Xml(status, code)) => return Reply::s3_error(*status, code, ""),
            Some(Fault::Refused(status, code, name)) => {
                return Reply::s3_error(*status, code, name)
            }
            Some(Fault::ResetBeforeResponse) => return Reply::default().cut(Cut::Reset),
            Some(Fault::Stall(d)) => return Reply::default().cut(Cut::Stall(*d)),
            Some(Fault::Hold(gate)) => gate.hold(),
            _ => {}
        }
        let mut reply = match self.forward(&req) {
            Ok(r) => r,
            Err(e) => return Reply::status(502, &format!("fault proxy: {e}")),
        };
        lock(&self.state).seen[idx].status = Some(reply.status);
        let len = reply.body.len();
        match fault {
            Some(Fault::ShortBody) => reply.cut(Cut::Short),
            Some(Fault::ResetDuringDownload(p)) => reply.cut(Cut::ResetMidBody(len * p / 100)),
            Some(Fault::StallDuringDownload(d)) => reply.cut(Cut::StallMidBody(d)),
            Some(Fault::Overlong(extra)) => reply.cut(Cut::Overlong(extra)),
            Some(Fault::CorruptBody) => {
                if let Some(b) = reply.body.get_mut(len / 2) {
                    *b ^= 0xFF;
                }
                reply
            }
            _ => reply,
        }
    }
}
