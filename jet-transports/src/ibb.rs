//! Jingle In-Band Bytestreams: XEP-0261 over XEP-0047.
//!
//! Negotiation: the offerer puts `<transport block-size sid stanza='iq'/>`
//! into its Jingle stanza; the answerer may lower `block-size` (never raise
//! it: a larger answer is refused). In `establish` the session initiator
//! sends `<open/>` (XEP-0261 §2), the other side waits for it; the
//! [`TransportSignals`] are not needed.
//!
//! Data: `<data seq sid>` IQs carrying base64 blocks of at most
//! `block-size` bytes (counted before base64). `seq` is a `u16` that starts
//! at 0 and wraps to 0 after 65535 (XEP-0047 §2.2). Both directions can
//! carry data, each with its own `seq` (XEP-0047 allows it).
//!
//! Flow control and memory:
//! - the sender keeps at most [`IbbConfig::window`] data IQs unacknowledged
//!   (default 8); `poll_write` returns `Pending` when they are all in flight
//!   and a further block is ready;
//! - the receiver acknowledges a block only when it has room in a buffer of
//!   [`IbbConfig::receive_buffer`] blocks that the reader drains, so a slow
//!   reader slows the sender down and memory stays bounded (on a
//!   well-behaved peer: about `window + receive_buffer` blocks).
//!
//! Errors: a `seq` gap or duplicate, bad base64 or an oversized block is
//! answered with an IQ error (`unexpected-request`, `bad-request`), followed
//! by `<close/>`, and the reader's next read fails with an
//! [`io::ErrorKind::InvalidData`] error that says what was wrong. A second
//! `<open/>` for the same sid is accepted only before any data and with no
//! larger block size (some clients let the data sender open), otherwise
//! refused with `unexpected-request`.
//! Requests for another sid never reach this stream (the subscription filter
//! matches the sid and the peer JID); the connection answers them with
//! `service-unavailable`. A peer that answers our data with an error fails
//! the writer.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use jet_core::channel::{iq, iq_error, iq_result, StanzaChannel};
use jet_core::error::{ChannelError, TransportError};
use jet_core::jid::{FullJid, Jid};
use jet_core::minidom::Element;
use jet_core::ns;
use jet_core::transport::{
    BoxedStream, Role, TransportAdapter, TransportContext, TransportNegotiation, TransportSignals,
};
use jet_core::xml::BuilderExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use crate::util::{random_id, within};

/// The block size offered when nothing else is configured (XEP-0047
/// suggests 4096).
pub const DEFAULT_BLOCK_SIZE: u16 = 4096;

/// Settings of the IBB transport.
#[derive(Debug, Clone)]
pub struct IbbConfig {
    /// Largest block (bytes before base64) we offer or accept; 1..=65535.
    pub block_size: u16,
    /// Data IQs the sender keeps unacknowledged at most.
    pub window: usize,
    /// Blocks the receiver buffers before it stops acknowledging.
    pub receive_buffer: usize,
    /// Bound for each IQ (open, data, close) to be answered.
    pub iq_timeout: Duration,
    /// Bound for waiting for the peer's `<open/>`.
    pub open_timeout: Duration,
    /// A read that sees no data for this long fails with a timeout.
    pub read_idle_timeout: Duration,
}

impl Default for IbbConfig {
    fn default() -> Self {
        IbbConfig {
            block_size: DEFAULT_BLOCK_SIZE,
            window: 8,
            receive_buffer: 8,
            iq_timeout: Duration::from_secs(30),
            open_timeout: Duration::from_secs(60),
            read_idle_timeout: Duration::from_secs(120),
        }
    }
}

/// The IBB [`TransportAdapter`].
#[derive(Debug, Clone, Default)]
pub struct IbbTransport {
    config: Arc<IbbConfig>,
}

impl IbbTransport {
    /// An adapter with these settings. A `block_size` of 0 is raised to 1;
    /// `window` and `receive_buffer` of 0 to 1.
    pub fn new(mut config: IbbConfig) -> Self {
        config.block_size = config.block_size.max(1);
        config.window = config.window.max(1);
        config.receive_buffer = config.receive_buffer.max(1);
        IbbTransport {
            config: Arc::new(config),
        }
    }

    /// The settings.
    pub fn config(&self) -> &IbbConfig {
        &self.config
    }
}

fn protocol(msg: impl Into<String>) -> TransportError {
    TransportError::Protocol(msg.into())
}

/// Reads `<transport xmlns=ibb block-size sid stanza/>`.
fn parse_transport(el: &Element) -> Result<(String, u16), TransportError> {
    if !el.is("transport", ns::JINGLE_IBB) {
        return Err(protocol(format!(
            "expected an IBB <transport/>, got <{}/> in {}",
            el.name(),
            el.ns()
        )));
    }
    let sid = el
        .attr("sid")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| protocol("IBB <transport/> lacks its sid"))?;
    let bs = el
        .attr("block-size")
        .ok_or_else(|| protocol("IBB <transport/> lacks its block-size"))?;
    let bs = bs
        .parse::<u16>()
        .ok()
        .filter(|b| *b > 0)
        .ok_or_else(|| protocol(format!("IBB block-size {bs:?} is not in 1..=65535")))?;
    match el.attr("stanza") {
        None | Some("iq") => {}
        Some(other) => {
            return Err(protocol(format!(
                "IBB over {other:?} stanzas is not supported (only iq)"
            )))
        }
    }
    Ok((sid.to_string(), bs))
}

#[async_trait]
impl TransportAdapter for IbbTransport {
    fn namespace(&self) -> &'static str {
        ns::JINGLE_IBB
    }

    async fn offer(
        &self,
        ctx: &TransportContext,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError> {
        let sid = random_id(16)?;
        Ok(Box::new(IbbNegotiation::new(
            ctx,
            self.config.clone(),
            sid,
            self.config.block_size,
            false,
        )))
    }

    async fn answer(
        &self,
        ctx: &TransportContext,
        offer: &Element,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError> {
        let (sid, offered) = parse_transport(offer)?;
        // XEP-0261 §2: the responder may choose a smaller block size.
        let bs = offered.min(self.config.block_size);
        Ok(Box::new(IbbNegotiation::new(
            ctx,
            self.config.clone(),
            sid,
            bs,
            true,
        )))
    }
}

/// One IBB transport being negotiated.
pub struct IbbNegotiation {
    ctx: TransportContext,
    config: Arc<IbbConfig>,
    sid: String,
    block_size: u16,
    remote_known: bool,
    requests: mpsc::UnboundedReceiver<Element>,
}

impl IbbNegotiation {
    fn new(
        ctx: &TransportContext,
        config: Arc<IbbConfig>,
        sid: String,
        block_size: u16,
        remote_known: bool,
    ) -> Self {
        // Subscribe now: the peer may send <open/> as soon as it has our
        // answer, before our establish runs.
        let peer = ctx.peer.clone();
        let fsid = sid.clone();
        let requests = ctx.channel.subscribe(Arc::new(move |iq: &Element| {
            iq.name() == "iq"
                && matches!(iq.attr("type"), Some("set"))
                // Compare parsed JIDs: the server's spelling of `from` may
                // differ from ours in case.
                && iq
                    .attr("from")
                    .and_then(|f| f.parse::<FullJid>().ok())
                    .is_some_and(|f| f == peer)
                && iq.children().next().is_some_and(|c| {
                    c.ns() == ns::IBB
                        && matches!(c.name(), "open" | "data" | "close")
                        && c.attr("sid") == Some(fsid.as_str())
                })
        }));
        IbbNegotiation {
            ctx: ctx.clone(),
            config,
            sid,
            block_size,
            remote_known,
            requests,
        }
    }

    /// The transport (and XEP-0047) sid.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The block size in use.
    pub fn block_size(&self) -> u16 {
        self.block_size
    }
}

fn ibb_el(name: &str, sid: &str) -> jet_core::minidom::ElementBuilder {
    Element::builder(name, ns::IBB).a("sid", sid)
}

#[async_trait]
impl TransportNegotiation for IbbNegotiation {
    fn local_transport(&self) -> Element {
        Element::builder("transport", ns::JINGLE_IBB)
            .a("block-size", self.block_size.to_string())
            .a("sid", self.sid.as_str())
            .a("stanza", "iq")
            .build()
    }

    fn set_remote(&mut self, remote: &Element) -> Result<(), TransportError> {
        let (sid, bs) = parse_transport(remote)?;
        if sid != self.sid {
            return Err(protocol(format!(
                "the peer answered IBB sid {sid:?}, we offered {:?}",
                self.sid
            )));
        }
        if bs > self.block_size {
            return Err(protocol(format!(
                "the peer answered IBB block-size {bs}, larger than the {} we offered",
                self.block_size
            )));
        }
        self.block_size = bs;
        self.remote_known = true;
        Ok(())
    }

    async fn establish(
        mut self: Box<Self>,
        _signals: &mut dyn TransportSignals,
    ) -> Result<BoxedStream, TransportError> {
        if !self.remote_known {
            return Err(protocol(
                "IBB establish before the peer's <transport/> was known",
            ));
        }
        let peer: Jid = self.ctx.peer.clone().into();
        if self.ctx.role == Role::Initiator {
            // XEP-0261 §2: the initiator opens the bytestream.
            let open = ibb_el("open", &self.sid)
                .a("block-size", self.block_size.to_string())
                .a("stanza", "iq")
                .build();
            let ch = self.ctx.channel.clone();
            within(
                self.config.iq_timeout,
                "the peer's answer to IBB <open/>",
                async { Ok(ch.request(iq("set", "", None, &peer, Some(open))).await?) },
            )
            .await?;
        } else {
            let ch = self.ctx.channel.clone();
            let bs = self.block_size;
            let requests = &mut self.requests;
            within(self.config.open_timeout, "the peer's IBB <open/>", async {
                let req = requests.recv().await.ok_or(TransportError::Channel(ChannelError::Closed))?;
                let child = req.children().next().cloned();
                let child = child.ok_or_else(|| protocol("empty IBB request"))?;
                if child.name() != "open" {
                    ch.send(iq_error(&req, "cancel", "unexpected-request", None)).await?;
                    return Err(protocol(format!(
                        "the peer sent IBB <{}/> before <open/>",
                        child.name()
                    )));
                }
                let asked = child.attr("block-size").and_then(|b| b.parse::<u16>().ok());
                match asked {
                    Some(b) if b > 0 && b <= bs => {}
                    _ => {
                        // XEP-0047 §2.1: a block size we cannot take.
                        ch.send(iq_error(&req, "modify", "resource-constraint", None)).await?;
                        return Err(protocol(format!(
                            "the peer opened IBB with block-size {:?}, more than the negotiated {bs}",
                            child.attr("block-size").unwrap_or("")
                        )));
                    }
                }
                if !matches!(child.attr("stanza"), None | Some("iq")) {
                    ch.send(iq_error(&req, "cancel", "feature-not-implemented", None)).await?;
                    return Err(protocol("the peer opened IBB over message stanzas"));
                }
                ch.send(iq_result(&req, None)).await?;
                Ok(())
            })
            .await?;
        }
        let this = *self;
        Ok(Box::new(IbbStream::start(
            this.ctx.channel,
            this.ctx.peer,
            this.sid,
            this.block_size,
            this.config,
            this.requests,
        )))
    }
}

// ---------------------------------------------------------------------------
// The stream

enum Cmd {
    Data(Vec<u8>),
    Flush(oneshot::Sender<Result<(), String>>),
    Close(oneshot::Sender<Result<(), String>>),
}

type ErrSlot = Arc<Mutex<Option<String>>>;
type Inflight = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Reserve = Pin<
    Box<dyn Future<Output = Result<mpsc::OwnedPermit<Cmd>, mpsc::error::SendError<()>>> + Send>,
>;

/// An open IBB bytestream: [`AsyncRead`] gives the peer's data,
/// [`AsyncWrite`] sends ours. `poll_shutdown` sends `<close/>`.
pub struct IbbStream {
    // reading
    incoming: mpsc::Receiver<Vec<u8>>,
    read_err: ErrSlot,
    chunk: Vec<u8>,
    pos: usize,
    idle: Duration,
    idle_timer: Pin<Box<tokio::time::Sleep>>,
    // writing
    cmds: mpsc::Sender<Cmd>,
    buf: Vec<u8>,
    block_size: usize,
    reserving: Option<Reserve>,
    flushing: Option<oneshot::Receiver<Result<(), String>>>,
    closing: Option<oneshot::Receiver<Result<(), String>>>,
    closed: bool,
    write_err: ErrSlot,
}

impl IbbStream {
    fn start(
        channel: Arc<dyn StanzaChannel>,
        peer: FullJid,
        sid: String,
        block_size: u16,
        config: Arc<IbbConfig>,
        requests: mpsc::UnboundedReceiver<Element>,
    ) -> Self {
        let (in_tx, incoming) = mpsc::channel(config.receive_buffer);
        let (cmds, cmd_rx) = mpsc::channel(1);
        let write_err: ErrSlot = Arc::default();
        let read_err: ErrSlot = Arc::default();
        // Neither task is aborted when the stream is dropped: the receiver
        // ends as soon as nobody reads, the sender after sending `<close/>`;
        // every wait of theirs is bounded by `iq_timeout`.
        tokio::spawn(receive(
            Link {
                channel: channel.clone(),
                peer: peer.clone(),
                sid: sid.clone(),
                iq_timeout: config.iq_timeout,
            },
            block_size,
            requests,
            in_tx,
            read_err.clone(),
        ));
        tokio::spawn(send(
            channel,
            peer.into(),
            sid,
            config.window,
            config.iq_timeout,
            cmd_rx,
            write_err.clone(),
        ));
        IbbStream {
            incoming,
            read_err,
            chunk: Vec::new(),
            pos: 0,
            idle: config.read_idle_timeout,
            idle_timer: Box::pin(tokio::time::sleep(config.read_idle_timeout)),
            cmds,
            buf: Vec::with_capacity(block_size as usize),
            block_size: block_size as usize,
            reserving: None,
            flushing: None,
            closing: None,
            closed: false,
            write_err,
        }
    }

    fn read_error(&self) -> Option<io::Error> {
        let msg = self.read_err.lock().ok()?.clone()?;
        Some(io::Error::new(io::ErrorKind::InvalidData, msg))
    }

    fn write_error(&self) -> io::Error {
        let msg = self
            .write_err
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_else(|| "the IBB sender stopped".to_string());
        io::Error::new(io::ErrorKind::BrokenPipe, msg)
    }

    fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<mpsc::OwnedPermit<Cmd>>> {
        let fut = self
            .reserving
            .get_or_insert_with(|| Box::pin(self.cmds.clone().reserve_owned()));
        let r = ready!(fut.as_mut().poll(cx));
        self.reserving = None;
        Poll::Ready(r.map_err(|_| self.write_error()))
    }

    /// Hands the current block to the sender task.
    fn poll_ship(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let permit = ready!(self.poll_permit(cx))?;
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(self.block_size));
        permit.send(Cmd::Data(block));
        Poll::Ready(Ok(()))
    }

    fn poll_wait(&mut self, cx: &mut Context<'_>, close: bool) -> Poll<io::Result<()>> {
        if !self.buf.is_empty() {
            ready!(self.poll_ship(cx))?;
        }
        let pending = if close { &self.closing } else { &self.flushing };
        if pending.is_none() {
            let permit = ready!(self.poll_permit(cx))?;
            let (tx, rx) = oneshot::channel();
            permit.send(if close {
                Cmd::Close(tx)
            } else {
                Cmd::Flush(tx)
            });
            if close {
                self.closing = Some(rx);
            } else {
                self.flushing = Some(rx);
            }
        }
        let rx = if close {
            self.closing.as_mut()
        } else {
            self.flushing.as_mut()
        };
        let Some(rx) = rx else {
            return Poll::Ready(Ok(()));
        };
        let r = ready!(Pin::new(rx).poll(cx));
        if close {
            self.closing = None;
        } else {
            self.flushing = None;
        }
        match r {
            Ok(Ok(())) => Poll::Ready(Ok(())),
            Ok(Err(e)) => Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, e))),
            Err(_) => Poll::Ready(Err(self.write_error())),
        }
    }
}

impl AsyncRead for IbbStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos < this.chunk.len() {
                let n = out.remaining().min(this.chunk.len() - this.pos);
                out.put_slice(&this.chunk[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = this.read_error() {
                return Poll::Ready(Err(e));
            }
            match this.incoming.poll_recv(cx) {
                Poll::Ready(Some(block)) => {
                    this.chunk = block;
                    this.pos = 0;
                    let deadline = tokio::time::Instant::now() + this.idle;
                    this.idle_timer.as_mut().reset(deadline);
                }
                Poll::Ready(None) => {
                    return Poll::Ready(match this.read_error() {
                        Some(e) => Err(e),
                        // The peer closed the bytestream: end of stream.
                        None => Ok(()),
                    });
                }
                Poll::Pending => {
                    ready!(this.idle_timer.as_mut().poll(cx));
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no IBB data from the peer for {} s", this.idle.as_secs()),
                    )));
                }
            }
        }
    }
}

impl AsyncWrite for IbbStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the IBB stream is shut down",
            )));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.buf.len() >= this.block_size {
            ready!(this.poll_ship(cx))?;
        }
        let n = data.len().min(this.block_size - this.buf.len());
        this.buf.extend_from_slice(&data[..n]);
        if this.buf.len() == this.block_size {
            // Hand the full block over now if there is room; if not, the
            // next write (or flush) waits for it.
            if let Poll::Ready(Err(e)) = this.poll_ship(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        self.poll_wait(cx, false)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_wait(cx, true))?;
        self.closed = true;
        Poll::Ready(Ok(()))
    }
}

/// Who the receiving task talks to.
struct Link {
    channel: Arc<dyn StanzaChannel>,
    peer: FullJid,
    sid: String,
    iq_timeout: Duration,
}

/// The receiving task: checks each `<data/>`, hands it to the reader, and
/// only then acknowledges it (flow control).
async fn receive(
    link: Link,
    block_size: u16,
    mut requests: mpsc::UnboundedReceiver<Element>,
    incoming: mpsc::Sender<Vec<u8>>,
    read_err: ErrSlot,
) {
    let Link {
        channel,
        peer,
        sid,
        iq_timeout,
    } = link;
    let mut expected: u16 = 0;
    let set_err = |msg: String| {
        if let Ok(mut slot) = read_err.lock() {
            slot.get_or_insert(msg);
        }
    };
    // Refuses `req`, fails the reader (which wakes up when this task ends
    // and drops `incoming`) and closes the bytestream in the background.
    let fail = |req: Element, type_: &'static str, cond: &'static str, msg: String| {
        set_err(msg);
        let channel = channel.clone();
        let peer: Jid = peer.clone().into();
        let sid = sid.clone();
        async move {
            let _ = channel.send(iq_error(&req, type_, cond, None)).await;
            // XEP-0047 §2.2: an out-of-sequence packet closes the bytestream.
            tokio::spawn(async move {
                let close = ibb_el("close", &sid).build();
                let _ = tokio::time::timeout(
                    iq_timeout,
                    channel.request(iq("set", "", None, &peer, Some(close))),
                )
                .await;
            });
        }
    };
    loop {
        let req = tokio::select! {
            _ = incoming.closed() => return,
            r = requests.recv() => match r {
                Some(r) => r,
                None => {
                    set_err("the XMPP connection closed".into());
                    return;
                }
            },
        };
        let Some(child) = req.children().next().cloned() else {
            continue;
        };
        match child.name() {
            "data" => {
                let seq = child.attr("seq").and_then(|s| s.parse::<u16>().ok());
                if seq != Some(expected) {
                    let msg = format!(
                        "IBB packet out of sequence: expected seq {expected}, got {:?}",
                        child.attr("seq").unwrap_or("")
                    );
                    fail(req, "cancel", "unexpected-request", msg).await;
                    return;
                }
                let text: String = child.text().split_ascii_whitespace().collect();
                // Refuse an oversized block before decoding it.
                if text.len() > (block_size as usize).div_ceil(3) * 4 {
                    let msg = format!(
                        "IBB packet {expected} carries more than the block-size {block_size}"
                    );
                    fail(req, "modify", "bad-request", msg).await;
                    return;
                }
                let block = match base64::engine::general_purpose::STANDARD.decode(text.as_bytes())
                {
                    Ok(b) => b,
                    Err(e) => {
                        let msg = format!("IBB packet {expected} is not valid base64: {e}");
                        fail(req, "cancel", "bad-request", msg).await;
                        return;
                    }
                };
                if block.len() > block_size as usize {
                    let msg = format!(
                        "IBB packet {expected} carries {} bytes, more than the block-size {block_size}",
                        block.len()
                    );
                    fail(req, "modify", "bad-request", msg).await;
                    return;
                }
                expected = expected.wrapping_add(1);
                // Wait for room in the reader's buffer before acknowledging.
                if incoming.send(block).await.is_err() {
                    let _ = channel
                        .send(iq_error(&req, "cancel", "item-not-found", None))
                        .await;
                    return;
                }
                let _ = channel.send(iq_result(&req, None)).await;
            }
            "close" => {
                let _ = channel.send(iq_result(&req, None)).await;
                // Dropping `incoming` ends the reader with EOF.
                return;
            }
            _ => {
                // An <open/> from the non-initiator as well (some clients let
                // the data sender open): harmless before any data, as long as
                // it asks for no larger blocks. Anything later is refused.
                let fits = child
                    .attr("block-size")
                    .and_then(|b| b.parse::<u16>().ok())
                    .is_some_and(|b| b > 0 && b <= block_size);
                let answer = if expected == 0 && fits {
                    iq_result(&req, None)
                } else {
                    iq_error(&req, "cancel", "unexpected-request", None)
                };
                let _ = channel.send(answer).await;
            }
        }
    }
}

/// The sending task: numbers blocks, keeps up to `window` data IQs in
/// flight, fails on the first error answer, or when no acknowledgement
/// arrives for `iq_timeout` while data is in flight.
///
/// The bound runs from the last acknowledgement (or from the first send
/// after an idle moment), not from each IQ's own send: behind a server's
/// traffic shaper (ejabberd's stock 3000 B/s) the last of `window` large
/// blocks is acknowledged long after it was sent while every block is, so
/// a per-IQ bound would call a slow stream a stalled one.
async fn send(
    channel: Arc<dyn StanzaChannel>,
    peer: Jid,
    sid: String,
    window: usize,
    iq_timeout: Duration,
    mut cmds: mpsc::Receiver<Cmd>,
    err_slot: ErrSlot,
) {
    let mut seq: u16 = 0;
    let mut inflight: VecDeque<Inflight> = VecDeque::new();
    // Unbounded here: the progress timer below (and `drain`) bound them.
    let request = |payload: Element, what: String| -> Inflight {
        let channel = channel.clone();
        let to = peer.clone();
        Box::pin(async move {
            channel
                .request(iq("set", "", None, &to, Some(payload)))
                .await
                .map(|_| ())
                .map_err(|e| refusal(&what, &e))
        })
    };
    let silent = || {
        format!(
            "the peer acknowledged no IBB data for {} s",
            iq_timeout.as_secs()
        )
    };
    let mut progress = Box::pin(tokio::time::sleep(iq_timeout));
    let fail = |e: String| {
        if let Ok(mut slot) = err_slot.lock() {
            slot.get_or_insert(e);
        }
    };
    enum Ev {
        Cmd(Option<Cmd>),
        Acked(Result<(), String>),
        Silent,
    }
    loop {
        let ev = std::future::poll_fn(|cx| {
            // Poll in send order so that the requests go out in seq order.
            let mut acked = false;
            let mut i = 0;
            while i < inflight.len() {
                match inflight[i].as_mut().poll(cx) {
                    Poll::Ready(Ok(())) => {
                        let _ = inflight.remove(i);
                        acked = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Ev::Acked(Err(e))),
                    Poll::Pending => i += 1,
                }
            }
            if acked {
                return Poll::Ready(Ev::Acked(Ok(())));
            }
            if !inflight.is_empty() && progress.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ev::Silent);
            }
            if inflight.len() < window {
                if let Poll::Ready(c) = cmds.poll_recv(cx) {
                    return Poll::Ready(Ev::Cmd(c));
                }
            }
            Poll::Pending
        })
        .await;
        let cmd = match ev {
            Ev::Acked(Ok(())) => {
                progress
                    .as_mut()
                    .reset(tokio::time::Instant::now() + iq_timeout);
                continue;
            }
            Ev::Acked(Err(e)) => {
                fail(e);
                return;
            }
            Ev::Silent => {
                fail(silent());
                return;
            }
            Ev::Cmd(c) => c,
        };
        match cmd {
            Some(Cmd::Data(block)) => {
                if inflight.is_empty() {
                    progress
                        .as_mut()
                        .reset(tokio::time::Instant::now() + iq_timeout);
                }
                let data = ibb_el("data", &sid)
                    .a("seq", seq.to_string())
                    .append(base64::engine::general_purpose::STANDARD.encode(&block))
                    .build();
                inflight.push_back(request(data, format!("data seq {seq}")));
                // XEP-0047 §2.2: seq wraps to 0 after 65535.
                seq = seq.wrapping_add(1);
            }
            Some(Cmd::Flush(reply)) => {
                let r = drain(&mut inflight, iq_timeout).await;
                if let Err(e) = &r {
                    fail(e.clone());
                }
                let failed = r.is_err();
                let _ = reply.send(r);
                if failed {
                    return;
                }
            }
            Some(Cmd::Close(reply)) => {
                let mut r = drain(&mut inflight, iq_timeout).await;
                if r.is_ok() {
                    r = bounded(
                        iq_timeout,
                        "close",
                        request(ibb_el("close", &sid).build(), "close".into()),
                    )
                    .await;
                }
                if let Err(e) = &r {
                    fail(e.clone());
                }
                let _ = reply.send(r);
                return;
            }
            None => {
                // The stream was dropped without shutdown: finish what is in
                // flight, then close politely.
                if drain(&mut inflight, iq_timeout).await.is_ok() {
                    let close = request(ibb_el("close", &sid).build(), "close".into());
                    let _ = bounded(iq_timeout, "close", close).await;
                }
                return;
            }
        }
    }
}

/// Why a data IQ failed. The conditions a server answers for a resource
/// that is gone (RFC 6120 §8.5.3.2.1: `service-unavailable`, or
/// `recipient-unavailable`), which a peer also answers for a bytestream it
/// closed, say that the other side went away: the user is told so.
fn refusal(what: &str, e: &ChannelError) -> String {
    match e {
        ChannelError::StanzaError { condition, .. }
            if matches!(
                condition.as_str(),
                "service-unavailable" | "recipient-unavailable"
            ) =>
        {
            format!(
                "the peer refused IBB {what} with {condition}: it went offline or closed the bytestream"
            )
        }
        ChannelError::Unavailable(_) => {
            format!("the peer refused IBB {what}: {e}; it went offline or closed the bytestream")
        }
        e => format!("the peer refused IBB {what}: {e}"),
    }
}

/// Waits for every IQ in flight, in order; fails when one is refused or
/// when `iq_timeout` passes without an acknowledgement (the bound restarts
/// with each one, as in [`send`]).
async fn drain(inflight: &mut VecDeque<Inflight>, iq_timeout: Duration) -> Result<(), String> {
    while let Some(f) = inflight.pop_front() {
        tokio::time::timeout(iq_timeout, f).await.map_err(|_| {
            format!(
                "the peer acknowledged no IBB data for {} s",
                iq_timeout.as_secs()
            )
        })??;
    }
    Ok(())
}

/// `f`, failing after `iq_timeout`.
async fn bounded(iq_timeout: Duration, what: &str, f: Inflight) -> Result<(), String> {
    tokio::time::timeout(iq_timeout, f)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the peer did not acknowledge IBB {what} within {} s",
                iq_timeout.as_secs()
            ))
        })
}

#[cfg(test)]
mod refusal_tests {
    use super::*;

    #[test]
    fn a_gone_peer_is_named_as_such() {
        let gone = ChannelError::StanzaError {
            error_type: "cancel".into(),
            condition: "service-unavailable".into(),
            text: None,
        };
        let m = refusal("data seq 7", &gone);
        assert!(m.contains("went offline"), "{m}");
        assert!(
            m.contains("data seq 7") && m.contains("service-unavailable"),
            "{m}"
        );
        let refused = ChannelError::StanzaError {
            error_type: "cancel".into(),
            condition: "not-acceptable".into(),
            text: None,
        };
        let m = refusal("data seq 7", &refused);
        assert!(m.starts_with("the peer refused IBB data seq 7"), "{m}");
        assert!(!m.contains("went offline"), "{m}");
    }
}
