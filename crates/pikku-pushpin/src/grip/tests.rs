use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use http::HeaderValue;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{EncodePublicKey as _, LineEnding};

use super::*;

const NOW_SECS: u64 = 1_800_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn signing_input(alg: &str, claims: &serde_json::Value) -> String {
    let header = serde_json::json!({"typ": "JWT", "alg": alg});
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn hs256_token(key: &[u8], claims: &serde_json::Value) -> String {
    let input = signing_input("HS256", claims);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

fn es256_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap()
}

fn es256_token(key: &p256::ecdsa::SigningKey, claims: &serde_json::Value) -> String {
    let input = signing_input("ES256", claims);
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

fn es256_verifier(key: &p256::ecdsa::SigningKey) -> GripVerifier {
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    GripVerifier::es256_pem(&pem).unwrap()
}

fn valid_claims() -> serde_json::Value {
    serde_json::json!({"iss": "pushpin", "exp": NOW_SECS + 3600})
}

fn header(token: &str) -> HeaderValue {
    HeaderValue::from_str(token).unwrap()
}

#[test]
fn a_valid_hs256_token_is_accepted_with_its_claims() {
    let verifier = GripVerifier::hs256("changeme");
    let token = hs256_token(b"changeme", &valid_claims());
    let claims = verifier.verify(Some(&header(&token)), now()).unwrap();
    assert_eq!(claims.iss(), Some("pushpin"));
    assert_eq!(
        claims.expires_at(),
        UNIX_EPOCH + Duration::from_secs(NOW_SECS + 3600)
    );
}

#[test]
fn an_hs256_token_signed_with_another_key_is_rejected() {
    let token = hs256_token(b"other key", &valid_claims());
    assert_eq!(
        GripVerifier::hs256("changeme").verify_token(&token, now()),
        Err(GripError::BadSignature)
    );
}

#[test]
fn a_token_whose_claims_were_changed_is_rejected() {
    let token = hs256_token(b"changeme", &valid_claims());
    let parts: Vec<&str> = token.split('.').collect();
    let forged_claims = b64(
        serde_json::json!({"iss": "mallory", "exp": NOW_SECS + 3600})
            .to_string()
            .as_bytes(),
    );
    let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    assert_eq!(
        GripVerifier::hs256("changeme").verify_token(&forged, now()),
        Err(GripError::BadSignature)
    );
}

#[test]
fn expired_tokens_and_tokens_without_exp_are_rejected() {
    let verifier = GripVerifier::hs256("changeme");
    let expired = hs256_token(
        b"changeme",
        &serde_json::json!({"iss": "pushpin", "exp": NOW_SECS - 1}),
    );
    assert_eq!(
        verifier.verify_token(&expired, now()),
        Err(GripError::Expired {
            expires_at: UNIX_EPOCH + Duration::from_secs(NOW_SECS - 1)
        })
    );
    // Expiring exactly now is expired.
    let at_now = hs256_token(b"changeme", &serde_json::json!({"exp": NOW_SECS}));
    assert!(matches!(
        verifier.verify_token(&at_now, now()),
        Err(GripError::Expired { .. })
    ));
    let no_exp = hs256_token(b"changeme", &serde_json::json!({"iss": "pushpin"}));
    assert_eq!(
        verifier.verify_token(&no_exp, now()),
        Err(GripError::NoExpiry)
    );
    let bad_exp = hs256_token(b"changeme", &serde_json::json!({"exp": -5}));
    assert!(matches!(
        verifier.verify_token(&bad_exp, now()),
        Err(GripError::Malformed(_))
    ));
}

#[test]
fn a_missing_header_is_missing() {
    assert_eq!(
        GripVerifier::hs256("k").verify(None, now()),
        Err(GripError::Missing)
    );
}

#[test]
fn malformed_tokens_are_rejected() {
    let verifier = GripVerifier::hs256("changeme");
    let valid = hs256_token(b"changeme", &valid_claims());
    let parts: Vec<&str> = valid.split('.').collect();
    for token in [
        String::new(),
        "abc".to_owned(),
        "a.b".to_owned(),
        format!("{valid}.extra"),
        format!("!!.{}.{}", parts[1], parts[2]),
        format!("{}.{}.", b64(b"not json"), parts[1]),
        format!("{}.{}.{}", parts[0], parts[1], "*not*base64*"),
        "x".repeat(5000),
    ] {
        assert!(
            matches!(
                verifier.verify_token(&token, now()),
                Err(GripError::Malformed(_))
            ),
            "{token:?}"
        );
    }
    // Valid signature over claims that are not JSON.
    let input = format!("{}.{}", parts[0], b64(b"[1,2"));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"changeme").unwrap();
    mac.update(input.as_bytes());
    let token = format!("{input}.{}", b64(&mac.finalize().into_bytes()));
    assert_eq!(
        verifier.verify_token(&token, now()),
        Err(GripError::Malformed("the claims are not a JSON object"))
    );
    let not_ascii = HeaderValue::from_bytes(b"\xffabc").unwrap();
    assert!(matches!(
        verifier.verify(Some(&not_ascii), now()),
        Err(GripError::Malformed(_))
    ));
}

#[test]
fn a_valid_es256_token_is_accepted() {
    let key = es256_key();
    let token = es256_token(
        &key,
        &serde_json::json!({"iss": "fastly", "exp": NOW_SECS + 60}),
    );
    let claims = es256_verifier(&key)
        .verify(Some(&header(&token)), now())
        .unwrap();
    assert_eq!(claims.iss(), Some("fastly"));
}

#[test]
fn an_es256_token_from_another_key_is_rejected() {
    let other = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
    let token = es256_token(&other, &valid_claims());
    assert_eq!(
        es256_verifier(&es256_key()).verify_token(&token, now()),
        Err(GripError::BadSignature)
    );
}

#[test]
fn each_key_accepts_only_its_own_algorithm() {
    let hs = hs256_token(b"changeme", &valid_claims());
    assert_eq!(
        es256_verifier(&es256_key()).verify_token(&hs, now()),
        Err(GripError::WrongAlgorithm {
            expected: "ES256",
            found: "HS256".into()
        })
    );
    let es = es256_token(&es256_key(), &valid_claims());
    assert_eq!(
        GripVerifier::hs256("changeme").verify_token(&es, now()),
        Err(GripError::WrongAlgorithm {
            expected: "HS256",
            found: "ES256".into()
        })
    );
    // An unsigned token never passes.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(valid_claims().to_string().as_bytes())
    );
    assert!(matches!(
        GripVerifier::hs256("changeme").verify_token(&none, now()),
        Err(GripError::WrongAlgorithm { .. })
    ));
}

#[test]
fn sig_key_values_follow_pushpin_conf() {
    let token = hs256_token(&[0, 1, 2], &valid_claims());
    assert!(GripVerifier::from_sig_key("base64:AAEC")
        .unwrap()
        .verify_token(&token, now())
        .is_ok());
    let token = hs256_token(b"changeme", &valid_claims());
    assert!(GripVerifier::from_sig_key("changeme")
        .unwrap()
        .verify_token(&token, now())
        .is_ok());
    assert_eq!(
        GripVerifier::from_sig_key("base64:@@").unwrap_err(),
        GripKeyError::Base64
    );
}

#[test]
fn bad_pem_keys_are_rejected() {
    assert_eq!(GripVerifier::es256_pem("").unwrap_err(), GripKeyError::Pem);
    let garbage = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    assert_eq!(
        GripVerifier::es256_pem(garbage).unwrap_err(),
        GripKeyError::Pem
    );
}

#[test]
fn the_debug_form_hides_the_secret() {
    let debug = format!("{:?}", GripVerifier::hs256("topsecret"));
    assert!(!debug.contains("topsecret"), "{debug}");
    assert!(debug.contains("HS256"));
}
