//! Unit tests of the token rules.

use super::*;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn token(claims: serde_json::Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("encode")
}

fn rules() -> TokenRules {
    TokenRules {
        issuers: vec!["https://id.example".into()],
        audiences: vec!["boxoffice".into()],
        max_lifetime: Duration::from_secs(3600),
        privileged_issuers: Vec::new(),
        leeway: Duration::from_secs(5),
    }
}

fn good() -> serde_json::Value {
    json!({"sub": "ann", "exp": now() + 600, "iat": now(), "iss": "https://id.example", "aud": "boxoffice"})
}

fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
    let mut c = good();
    c[field] = value;
    c
}

fn without(field: &str) -> serde_json::Value {
    let mut c = good();
    c.as_object_mut().expect("object").remove(field);
    c
}

#[test]
fn a_short_hs256_secret_is_refused() {
    assert!(matches!(
        Auth::hs256(b"0123456789abcdef", TokenRules::default()),
        Err(KeyError::ShortSecret)
    ));
    assert!(Auth::hs256(SECRET, TokenRules::default()).is_ok());
}

#[test]
fn every_rule_is_checked() {
    let auth = Auth::hs256(SECRET, rules()).expect("auth");
    assert_eq!(auth.verify(&token(good())).expect("good").id, "ann");
    for (why, claims) in [
        ("not yet valid", with("nbf", json!(now() + 120))),
        ("wrong issuer", with("iss", json!("https://evil.example"))),
        ("no issuer", without("iss")),
        ("wrong audience", with("aud", json!("other"))),
        ("no audience", without("aud")),
        ("expired", with("exp", json!(now() - 60))),
        ("no expiry", without("exp")),
        ("too far ahead", with("exp", json!(now() + 7200))),
        ("issued in the future", with("iat", json!(now() + 600))),
        ("empty subject", with("sub", json!(""))),
    ] {
        assert!(auth.verify(&token(claims)).is_err(), "{why} was accepted");
    }
    // A token older than the lifetime allows, even if it has not expired.
    let long = with("iat", json!(now() - 7200));
    assert!(
        auth.verify(&token(long)).is_err(),
        "overlong token accepted"
    );
}

#[test]
fn another_algorithm_or_key_is_refused() {
    let auth = Auth::hs256(SECRET, TokenRules::default()).expect("auth");
    let claims = json!({"sub": "ann", "exp": now() + 60});
    let other = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
    )
    .expect("encode");
    assert!(auth.verify(&other).is_err());
    let hs384 = encode(
        &Header::new(Algorithm::HS384),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("encode");
    assert!(auth.verify(&hs384).is_err());
}

#[test]
fn roles_count_only_from_privileged_issuers() {
    let mut r = rules();
    r.issuers.push("https://customers.example".into());
    r.privileged_issuers = vec!["https://id.example".into()];
    let auth = Auth::hs256(SECRET, r).expect("auth");
    let staff = with("roles", json!(["admin"]));
    assert!(auth.verify(&token(staff.clone())).expect("staff").staff);
    let mut customer = staff;
    customer["iss"] = json!("https://customers.example");
    let user = auth.verify(&token(customer)).expect("customer");
    assert!(!user.staff, "admin from a customer issuer counted");
}

#[test]
fn jwks_es256_keys_are_picked_by_kid() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let make = || {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let raw = pair.public_key_raw().to_vec();
        (pair.serialize_pem(), raw)
    };
    let (pem_a, raw_a) = make();
    let (pem_b, _) = make();
    let jwk = |kid: &str, raw: &[u8]| {
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
               "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..65])})
    };
    let doc = json!({"keys": [jwk("a", &raw_a)]}).to_string();
    let auth = Auth::jwks(doc.as_bytes(), TokenRules::default()).expect("jwks");
    let sign = |pem: &str, kid: &str| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        encode(
            &header,
            &json!({"sub": "ann", "exp": now() + 60, "roles": ["staff"]}),
            &EncodingKey::from_ec_pem(pem.as_bytes()).expect("ec pem"),
        )
        .expect("encode")
    };
    let user = auth.verify(&sign(&pem_a, "a")).expect("signed with key a");
    assert!(user.staff);
    assert!(
        auth.verify(&sign(&pem_b, "a")).is_err(),
        "another key passed"
    );
    assert!(
        auth.verify(&sign(&pem_a, "z")).is_err(),
        "an unknown kid passed"
    );
    let hs = token(json!({"sub": "ann", "exp": now() + 60}));
    assert!(auth.verify(&hs).is_err(), "an HS256 token passed a JWKS");
    assert!(matches!(
        Auth::jwks(br#"{"keys": []}"#, TokenRules::default()),
        Err(KeyError::EmptyJwks)
    ));
}
