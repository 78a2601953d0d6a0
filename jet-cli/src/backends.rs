//! Which implementation does each cipher's work. jet-ciphers takes that as
//! a value ([`Backends`]) and reads no environment; the `jet` binary keeps
//! its switches: `JET_GCM_BACKEND` (`openssl` | `rustcrypto`),
//! `JET_CHACHA_BACKEND` (`openssl` | `rustcrypto`) and `JET_CHUNKED_BACKEND`
//! (`ring` | `rustcrypto`). Unset, or a name that is not built in: the best
//! built in.

use std::sync::OnceLock;

use jet_ciphers::chacha::ChaChaBackend;
use jet_ciphers::chunked::ChunkBackend;
use jet_ciphers::gcm::GcmBackend;
use jet_ciphers::{Backends, CipherRegistry};

/// The backends the environment names (read once per process).
pub fn chosen() -> Backends {
    static CHOICE: OnceLock<Backends> = OnceLock::new();
    *CHOICE.get_or_init(|| from_vars(|var| std::env::var(var).ok()))
}

/// Every suite, on [`chosen`] backends, in the default order.
pub fn registry() -> CipherRegistry {
    CipherRegistry::with_backends(chosen())
}

/// The backends named by the variables `var` looks up.
fn from_vars(var: impl Fn(&str) -> Option<String>) -> Backends {
    let best = Backends::default();
    Backends {
        gcm: var("JET_GCM_BACKEND")
            .and_then(|n| GcmBackend::from_name(&n))
            .unwrap_or(best.gcm),
        chacha: var("JET_CHACHA_BACKEND")
            .and_then(|n| ChaChaBackend::from_name(&n))
            .unwrap_or(best.chacha),
        chunk: var("JET_CHUNKED_BACKEND")
            .and_then(|n| ChunkBackend::from_name(&n))
            .unwrap_or(best.chunk),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_name_built_in_backends_and_nothing_else() {
        assert_eq!(from_vars(|_| None), Backends::default());
        let all_rust = from_vars(|_| Some(" rustcrypto ".into()));
        assert_eq!(all_rust.gcm, GcmBackend::RustCrypto);
        assert_eq!(all_rust.chacha, ChaChaBackend::RustCrypto);
        assert_eq!(all_rust.chunk, ChunkBackend::RustCrypto);
        assert_eq!(
            from_vars(|_| Some("no-such-backend".into())),
            Backends::default()
        );
        // Each variable sets its own family only.
        let only_gcm = from_vars(|v| (v == "JET_GCM_BACKEND").then(|| "rustcrypto".into()));
        assert_eq!(
            only_gcm,
            Backends {
                gcm: GcmBackend::RustCrypto,
                ..Backends::default()
            }
        );
        // The registry serves exactly the suites on those backends.
        let reg = CipherRegistry::with_backends(all_rust);
        let suites: [&'static dyn jet_core::cipher::CipherSuite; 4] = [
            all_rust.aes_128_gcm(),
            all_rust.aes_256_gcm(),
            all_rust.aes_256_gcm_chunked(),
            all_rust.chacha20_poly1305(),
        ];
        for s in suites {
            assert!(
                std::ptr::addr_eq(reg.get(s.urn()).unwrap(), s),
                "{}",
                s.urn()
            );
        }
    }
}
