//! `Grip-Sig` verification: proof that a request came through the GRIP proxy.
//!
//! Pushpin signs every request it forwards with a short-lived JWT in the `Grip-Sig` header: HS256 with the
//! `sig_key` of its `[proxy]` configuration, `iss` set to its `sig_iss` (`pushpin` by default) and an `exp` an
//! hour ahead. Fastly Fanout signs with ES256 instead, under a published P-256 public key. A worker that
//! answers only signed requests cannot be driven by a client that reaches it without the proxy, so it checks
//! the header on every request with a [`GripVerifier`] and treats a request that fails as unsigned.
//!
//! The verifier checks, in this order: the token's shape, that its `alg` is the one of the key (a key never
//! accepts another algorithm, so an HS256 token cannot pass as ES256 or the reverse, and `none` never passes),
//! the signature, and only then the claims: `exp` must be present and in the future.
//!
//! ```
//! use std::time::SystemTime;
//! use pikku_pushpin::grip::{GripError, GripVerifier};
//!
//! let verifier = GripVerifier::hs256("changeme");
//! assert!(matches!(verifier.verify(None, SystemTime::now()), Err(GripError::Missing)));
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use http::HeaderValue;
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;

/// Signs a `Grip-Sig` token as Pushpin does (HS256 with `key`, `iss`, `exp` `valid_for` from now), for tests
/// and tools that call a worker directly, without Pushpin in front.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use pikku_pushpin::grip::{sign_hs256, GripVerifier};
///
/// let token = sign_hs256(b"changeme", "pushpin", Duration::from_secs(60));
/// let claims = GripVerifier::hs256("changeme").verify_token(&token, SystemTime::now()).unwrap();
/// assert_eq!(claims.iss(), Some("pushpin"));
/// ```
#[must_use]
pub fn sign_hs256(key: &[u8], iss: &str, valid_for: Duration) -> String {
    let exp = (SystemTime::now() + valid_for)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS256"}"#);
    let claims = URL_SAFE_NO_PAD.encode(serde_json::json!({ "iss": iss, "exp": exp }).to_string());
    let signed = format!("{header}.{claims}");
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// The request header that carries the signature.
pub const GRIP_SIG_HEADER: &str = "grip-sig";

/// The longest token the verifier looks at; Pushpin's are about 150 bytes, so anything near this is not one.
const MAX_TOKEN_LEN: usize = 4096;

/// Checks `Grip-Sig` tokens against one key.
///
/// ```
/// use pikku_pushpin::grip::GripVerifier;
///
/// // The key of Pushpin's `sig_key`, as written in pushpin.conf (a `base64:` prefix means binary).
/// let plain = GripVerifier::from_sig_key("changeme").unwrap();
/// let binary = GripVerifier::from_sig_key("base64:AAEC").unwrap();
/// assert_eq!(plain.algorithm(), "HS256");
/// # let _ = binary;
/// ```
#[derive(Clone)]
pub struct GripVerifier {
    key: Key,
}

#[derive(Clone)]
enum Key {
    Hs256(Vec<u8>),
    Es256(Box<p256::ecdsa::VerifyingKey>),
}

impl fmt::Debug for GripVerifier {
    // The HS256 key is a shared secret: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GripVerifier")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl GripVerifier {
    /// A verifier for HS256 tokens signed with the shared secret `key` (Pushpin's `sig_key`).
    ///
    /// ```
    /// use pikku_pushpin::grip::GripVerifier;
    ///
    /// let verifier = GripVerifier::hs256(b"changeme".to_vec());
    /// assert_eq!(verifier.algorithm(), "HS256");
    /// ```
    #[must_use]
    pub fn hs256(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: Key::Hs256(key.into()),
        }
    }

    /// A verifier for HS256 tokens, from a `sig_key` value as pushpin.conf spells it: the key's text, or
    /// `base64:` followed by the standard base64 of a binary key.
    ///
    /// # Errors
    /// [`GripKeyError::Base64`] when the part after `base64:` is not base64.
    ///
    /// ```
    /// use pikku_pushpin::grip::GripVerifier;
    ///
    /// assert!(GripVerifier::from_sig_key("base64:not base64!").is_err());
    /// ```
    pub fn from_sig_key(value: &str) -> Result<Self, GripKeyError> {
        match value.strip_prefix("base64:") {
            Some(encoded) => STANDARD
                .decode(encoded)
                .map(Self::hs256)
                .map_err(|_| GripKeyError::Base64),
            None => Ok(Self::hs256(value)),
        }
    }

    /// A verifier for ES256 tokens, from a P-256 public key in SPKI PEM form
    /// (`-----BEGIN PUBLIC KEY-----`), as Fanout publishes its key.
    ///
    /// # Errors
    /// [`GripKeyError::Pem`] when `pem` is not such a key.
    ///
    /// ```
    /// use pikku_pushpin::grip::{GripKeyError, GripVerifier};
    ///
    /// assert_eq!(GripVerifier::es256_pem("not a key").unwrap_err(), GripKeyError::Pem);
    /// ```
    pub fn es256_pem(pem: &str) -> Result<Self, GripKeyError> {
        let key = p256::ecdsa::VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|_| GripKeyError::Pem)?;
        Ok(Self {
            key: Key::Es256(Box::new(key)),
        })
    }

    /// The JWT algorithm this verifier accepts: `HS256` or `ES256`.
    #[must_use]
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Key::Hs256(_) => "HS256",
            Key::Es256(_) => "ES256",
        }
    }

    /// Verifies the `Grip-Sig` header of a request at time `now`.
    ///
    /// # Errors
    /// [`GripError::Missing`] without a header, [`GripError::Malformed`] when it is not a JWT of the
    /// expected form, [`GripError::WrongAlgorithm`], [`GripError::BadSignature`], [`GripError::NoExpiry`] and
    /// [`GripError::Expired`].
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use http::HeaderValue;
    /// use pikku_pushpin::grip::{GripError, GripVerifier};
    ///
    /// let verifier = GripVerifier::hs256("changeme");
    /// let header = HeaderValue::from_static("not.a.jwt");
    /// assert!(matches!(verifier.verify(Some(&header), SystemTime::now()), Err(GripError::Malformed(_))));
    /// ```
    pub fn verify(
        &self,
        header: Option<&HeaderValue>,
        now: SystemTime,
    ) -> Result<GripClaims, GripError> {
        let header = header.ok_or(GripError::Missing)?;
        let token = header
            .to_str()
            .map_err(|_| GripError::Malformed("the header is not visible ASCII"))?;
        self.verify_token(token, now)
    }

    /// Verifies a token given as text (the header's value).
    ///
    /// # Errors
    /// As [`verify`](Self::verify), but never [`GripError::Missing`].
    pub fn verify_token(&self, token: &str, now: SystemTime) -> Result<GripClaims, GripError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(GripError::Malformed("the token is too long"));
        }
        let mut parts = token.trim().split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(GripError::Malformed("a JWT has three dot-separated parts"));
        };

        let header: JwtHeader = decode_json(
            header_b64,
            "the header is not base64url",
            "the header is not a JSON object with alg",
        )?;
        if header.alg != self.algorithm() {
            return Err(GripError::WrongAlgorithm {
                expected: self.algorithm(),
                found: header.alg,
            });
        }

        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| GripError::Malformed("the signature is not base64url"))?;
        let signed = &token.trim().as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
        self.check_signature(signed, &signature)?;

        let claims: JwtClaims = decode_json(
            claims_b64,
            "the claims are not base64url",
            "the claims are not a JSON object",
        )?;
        let exp = claims.exp.ok_or(GripError::NoExpiry)?;
        if !exp.is_finite() || exp < 0.0 {
            return Err(GripError::Malformed("exp is not a time"));
        }
        let expires_at = UNIX_EPOCH + Duration::from_secs_f64(exp.min(u64::MAX as f64 / 2.0));
        if expires_at <= now {
            return Err(GripError::Expired { expires_at });
        }
        Ok(GripClaims {
            iss: claims.iss,
            expires_at,
        })
    }

    fn check_signature(&self, signed: &[u8], signature: &[u8]) -> Result<(), GripError> {
        match &self.key {
            Key::Hs256(secret) => {
                // Any key length is valid for HMAC, so this cannot fail.
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret)
                    .map_err(|_| GripError::BadSignature)?;
                mac.update(signed);
                // `verify_slice` compares in constant time.
                mac.verify_slice(signature)
                    .map_err(|_| GripError::BadSignature)
            }
            Key::Es256(key) => {
                // JWS carries ES256 signatures as the 64 bytes r || s, not DER.
                let signature = p256::ecdsa::Signature::from_slice(signature)
                    .map_err(|_| GripError::BadSignature)?;
                key.verify(signed, &signature)
                    .map_err(|_| GripError::BadSignature)
            }
        }
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(
    part: &str,
    not_base64: &'static str,
    not_json: &'static str,
) -> Result<T, GripError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| GripError::Malformed(not_base64))?;
    serde_json::from_slice(&bytes).map_err(|_| GripError::Malformed(not_json))
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
}

#[derive(Deserialize)]
struct JwtClaims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    exp: Option<f64>,
}

/// The claims of a verified token.
///
/// ```
/// # use pikku_pushpin::grip::GripClaims;
/// fn signed_by_pushpin(claims: &GripClaims) -> bool {
///     claims.iss() == Some("pushpin")
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GripClaims {
    iss: Option<String>,
    expires_at: SystemTime,
}

impl GripClaims {
    /// The issuer (`iss`), a hint of which key signed the token: Pushpin's `sig_iss`.
    #[must_use]
    pub fn iss(&self) -> Option<&str> {
        self.iss.as_deref()
    }

    /// When the token expires (`exp`).
    #[must_use]
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

/// Why a `Grip-Sig` was not accepted. The GRIP protocol asks the worker to treat every one of these as if
/// the header were absent.
///
/// ```
/// use pikku_pushpin::grip::GripError;
///
/// assert_eq!(GripError::BadSignature.to_string(), "Grip-Sig has a bad signature");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GripError {
    /// The request has no `Grip-Sig` header.
    Missing,
    /// The header is not a JWT of the expected form; the text says which part is wrong.
    Malformed(&'static str),
    /// The token names another algorithm than the key's.
    WrongAlgorithm {
        /// The key's algorithm.
        expected: &'static str,
        /// The token's `alg`.
        found: String,
    },
    /// The signature does not match the key.
    BadSignature,
    /// The token has no `exp` claim, which GRIP requires.
    NoExpiry,
    /// The token expired.
    Expired {
        /// When it expired.
        expires_at: SystemTime,
    },
}

impl fmt::Display for GripError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("the request has no Grip-Sig header"),
            Self::Malformed(what) => write!(f, "Grip-Sig is malformed: {what}"),
            Self::WrongAlgorithm { expected, found } => {
                write!(
                    f,
                    "Grip-Sig is signed with '{found}', expected '{expected}'"
                )
            }
            Self::BadSignature => f.write_str("Grip-Sig has a bad signature"),
            Self::NoExpiry => f.write_str("Grip-Sig has no exp claim"),
            Self::Expired { expires_at } => {
                let secs = expires_at
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                write!(f, "Grip-Sig expired at {secs} (seconds since the epoch)")
            }
        }
    }
}

impl std::error::Error for GripError {}

/// Why a key could not be loaded.
///
/// ```
/// use pikku_pushpin::grip::GripKeyError;
///
/// assert_eq!(GripKeyError::Pem.to_string(), "not a P-256 public key in SPKI PEM form");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GripKeyError {
    /// The PEM text is not a P-256 public key in SPKI form.
    Pem,
    /// A `base64:` key whose rest is not standard base64.
    Base64,
}

impl fmt::Display for GripKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pem => "not a P-256 public key in SPKI PEM form",
            Self::Base64 => "the key after 'base64:' is not base64",
        })
    }
}

impl std::error::Error for GripKeyError {}

#[cfg(test)]
mod tests;
