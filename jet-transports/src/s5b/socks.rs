//! The SOCKS5 part of XEP-0065/XEP-0260: a client that connects with the
//! session hash, and a minimal server that accepts only that hash.
//!
//! Only what XEP-0065 §5.3.3 uses: method "no authentication", command
//! CONNECT, address type DOMAINNAME (3) carrying the hash, port 0.

use sha1::{Digest, Sha1};
use socks5_proto::handshake::{Method, Request as HandshakeRequest, Response as HandshakeResponse};
use socks5_proto::{Address, Command, Reply, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use jet_core::error::TransportError;

use super::element::protocol;

/// XEP-0065 §5.3.2 / XEP-0260 §2.3: DST.ADDR = lowercase hex
/// SHA-1(SID + offerer full JID + other party's full JID).
///
/// "Offerer" is the party that offered the candidate being connected to
/// (the owner of the listening socket, or for a proxy the party that put the
/// proxy into its `<transport/>` and will send `<activate/>`): when Juliet
/// connects to Romeo's candidate she uses `dst_addr_hash(sid, romeo,
/// juliet)`, and Romeo's server side expects exactly that. XEP-0260 §2.3
/// spells it with the Jingle roles: towards the initiator's candidates the
/// hash is SID + initiator + responder, towards the responder's it is
/// SID + responder + initiator.
pub fn dst_addr_hash(sid: &str, offerer: &str, other: &str) -> String {
    let mut h = Sha1::new();
    h.update(sid.as_bytes());
    h.update(offerer.as_bytes());
    h.update(other.as_bytes());
    hex::encode(h.finalize())
}

fn socks_err(what: &str, e: impl std::fmt::Display) -> TransportError {
    protocol(format!("SOCKS5 {what}: {e}"))
}

/// Client side: SOCKS5 handshake on a connected stream, CONNECT to
/// `hash:0`. The caller bounds the whole exchange with a timeout.
pub async fn client_handshake(stream: &mut TcpStream, hash: &str) -> Result<(), TransportError> {
    HandshakeRequest::new(vec![Method::NONE])
        .write_to(stream)
        .await?;
    let resp = HandshakeResponse::read_from(stream)
        .await
        .map_err(|e| socks_err("method selection", e))?;
    if resp.method != Method::NONE {
        return Err(protocol(format!(
            "SOCKS5 server chose method {:#04x} instead of no-authentication",
            resp.method.0
        )));
    }
    Request::new(
        Command::Connect,
        Address::DomainAddress(hash.as_bytes().to_vec(), 0),
    )
    .write_to(stream)
    .await?;
    let resp = Response::read_from(stream)
        .await
        .map_err(|e| socks_err("CONNECT reply", e))?;
    if resp.reply != Reply::Succeeded {
        return Err(protocol(format!(
            "SOCKS5 server refused the connection: {:?}",
            resp.reply
        )));
    }
    Ok(())
}

/// Connects to `host:port` and runs [`client_handshake`]. `host` may be a
/// name or an IP address (IPv6 without brackets). No timeout here: the caller
/// sets one.
pub async fn connect(host: &str, port: u16, hash: &str) -> Result<TcpStream, TransportError> {
    let mut stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    client_handshake(&mut stream, hash).await?;
    Ok(stream)
}

/// Server side: accepts the SOCKS5 greeting and a CONNECT to exactly
/// `expected_hash` (any port, XEP-0065 says 0), answers success, and returns.
/// Anything else — other methods only, another command, another address
/// type, another hash — gets a refusal (where SOCKS5 has one) and an error.
///
/// Generic over the stream so that it can be fuzzed over an in-memory
/// duplex (`fuzz/`); the listener calls it with a `TcpStream`.
pub async fn server_handshake<S>(stream: &mut S, expected_hash: &str) -> Result<(), TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let greeting = HandshakeRequest::read_from(stream)
        .await
        .map_err(|e| socks_err("greeting", e))?;
    if !greeting.methods.contains(&Method::NONE) {
        HandshakeResponse::new(Method::UNACCEPTABLE)
            .write_to(stream)
            .await?;
        let _ = stream.shutdown().await;
        return Err(protocol("SOCKS5 client does not offer no-authentication"));
    }
    HandshakeResponse::new(Method::NONE)
        .write_to(stream)
        .await?;
    let req = Request::read_from(stream)
        .await
        .map_err(|e| socks_err("request", e))?;
    let refuse = |reply: Reply| Response::new(reply, Address::unspecified());
    if req.command != Command::Connect {
        refuse(Reply::CommandNotSupported).write_to(stream).await?;
        let _ = stream.shutdown().await;
        return Err(protocol(format!(
            "SOCKS5 client sent {:?}, not CONNECT",
            req.command
        )));
    }
    let Address::DomainAddress(host, port) = &req.address else {
        refuse(Reply::AddressTypeNotSupported)
            .write_to(stream)
            .await?;
        let _ = stream.shutdown().await;
        return Err(protocol("SOCKS5 client did not send the hash as DST.ADDR"));
    };
    if host.as_slice() != expected_hash.as_bytes() {
        refuse(Reply::ConnectionNotAllowed).write_to(stream).await?;
        let _ = stream.shutdown().await;
        return Err(protocol(
            "SOCKS5 client sent the wrong DST.ADDR hash (not this session or not this peer)",
        ));
    }
    Response::new(
        Reply::Succeeded,
        Address::DomainAddress(host.clone(), *port),
    )
    .write_to(stream)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn spec_vectors() {
        // XEP-0260 §2.3 / XEP-0065 examples.
        assert_eq!(
            dst_addr_hash(
                "vj3hs98y",
                "romeo@montague.lit/orchard",
                "juliet@capulet.lit/balcony"
            ),
            "972b7bf47291ca609517f67f86b5081086052dad"
        );
        assert_eq!(
            dst_addr_hash(
                "vj3hs98y",
                "juliet@capulet.lit/balcony",
                "romeo@montague.lit/orchard"
            ),
            "1a12fb7bc625e55f3ed5b29a53dbe0e4aa7d80ba"
        );
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        (c.unwrap(), s.unwrap().0)
    }

    #[tokio::test]
    async fn right_hash_connects_and_carries_bytes() {
        let (mut c, mut s) = pair().await;
        let hash = dst_addr_hash("s", "a@b/c", "d@e/f");
        let h2 = hash.clone();
        let server = tokio::spawn(async move {
            server_handshake(&mut s, &h2).await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            buf
        });
        client_handshake(&mut c, &hash).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        assert_eq!(&server.await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn wrong_hash_is_refused_on_both_sides() {
        let (mut c, mut s) = pair().await;
        let server = tokio::spawn(async move { server_handshake(&mut s, "expected").await });
        let r = tokio::time::timeout(Duration::from_secs(5), client_handshake(&mut c, "other"))
            .await
            .unwrap();
        assert!(matches!(r, Err(TransportError::Protocol(m)) if m.contains("refused")));
        let r = server.await.unwrap();
        assert!(matches!(r, Err(TransportError::Protocol(m)) if m.contains("wrong DST.ADDR")));
    }

    #[tokio::test]
    async fn garbage_is_an_error_not_a_panic() {
        for garbage in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            &[5, 1, 0, 5, 1, 0, 9][..],
            &[5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 0][..],
            &[5, 0][..],
            &[5, 1, 2][..],
        ] {
            let (mut c, mut s) = pair().await;
            let server = tokio::spawn(async move { server_handshake(&mut s, "h").await });
            c.write_all(garbage).await.unwrap();
            c.shutdown().await.unwrap();
            let r = tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .expect("server handshake hung")
                .unwrap();
            assert!(r.is_err(), "{garbage:?} accepted");
        }
    }

    #[tokio::test]
    async fn closed_port_is_an_io_error() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let r = tokio::time::timeout(Duration::from_secs(5), connect("127.0.0.1", port, "h"))
            .await
            .unwrap();
        assert!(matches!(r, Err(TransportError::Io(_))), "{r:?}");
    }
}
