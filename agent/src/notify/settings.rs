//! An integration's settings: checked when they are given (so a bad address
//! is refused at `notify add`, not at 3 a.m.), their secrets sealed in the
//! catalog, opened to send, and redacted in the API.

use hindsight_api::{EmailSettings, NotifierSettings, WebhookSettings};
use serde_json::{Map, Value};

use crate::secrets::{MasterKey, REDACTED, SecretError};

/// Retries of a failed notification unless the integration says otherwise:
/// with the backoff of [`super::outbox`], about two hours of attempts.
pub(crate) const DEFAULT_RETRIES: u32 = 10;
/// Most retries allowed.
const MAX_RETRIES: u32 = 100;
/// Daily digest time unless the integration says otherwise.
pub(crate) const DEFAULT_DIGEST_AT: &str = "08:00";

/// Checks settings given by a user; the error names the field.
pub(crate) fn check(s: &NotifierSettings) -> Result<(), String> {
    match s {
        NotifierSettings::Email(e) => check_email(e),
        NotifierSettings::Webhook(w) => check_webhook(w),
    }
}

fn check_timeout(t: u32) -> Result<(), String> {
    if (1..=300).contains(&t) { Ok(()) } else { Err(format!("timeout must be 1 to 300 seconds, not {t}")) }
}

fn check_email(e: &EmailSettings) -> Result<(), String> {
    let address = |field: &str, a: &str| {
        a.parse::<lettre::message::Mailbox>()
            .map(|_| ())
            .map_err(|x| format!("{field}: {a:?} is not an email address ({x})"))
    };
    address("from", &e.from)?;
    if e.to.is_empty() {
        return Err("to: give at least one recipient".into());
    }
    for a in &e.to {
        address("to", a)?;
    }
    if e.host.trim().is_empty() || e.host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!("host: {:?} is not a host name or address", e.host));
    }
    if e.port == Some(0) {
        return Err("port must be 1 to 65535".into());
    }
    if e.password.as_deref().is_some_and(|p| !p.is_empty()) && e.username.as_deref().unwrap_or("").is_empty() {
        return Err("password given without a username".into());
    }
    check_timeout(e.timeout)
}

fn check_webhook(w: &WebhookSettings) -> Result<(), String> {
    let url = reqwest::Url::parse(&w.url).map_err(|e| format!("url: {:?} is not a URL ({e})", w.url))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("url: {:?} is not an http:// or https:// URL", w.url));
    }
    for h in &w.headers {
        reqwest::header::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("headers: {:?} is not a header name", h.name))?;
        if h.value != REDACTED {
            reqwest::header::HeaderValue::from_str(&h.value)
                .map_err(|_| format!("headers: the value of {} holds characters a header cannot", h.name))?;
        }
    }
    check_timeout(w.timeout)
}

/// Checks a retries count.
pub(crate) fn check_retries(n: u32) -> Result<(), String> {
    if n <= MAX_RETRIES { Ok(()) } else { Err(format!("retries must be 0 to {MAX_RETRIES}, not {n}")) }
}

/// The hour and minute of a digest time, `HH:MM` (24-hour clock).
pub(crate) fn digest_time(text: &str) -> Result<(i8, i8), String> {
    let bad = || format!("digest time {text:?} is not HH:MM (00:00 to 23:59)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    if (0..24).contains(&h) && (0..60).contains(&m) { Ok((h, m)) } else { Err(bad()) }
}

/// Name of a secret as the seal binds it (so a sealed value moved to another field does not open).
fn password_field() -> &'static str {
    "email.password"
}

fn header_field(name: &str) -> String {
    format!("webhook.header.{}", name.to_ascii_lowercase())
}

/// Applies `f` to every secret of the settings, with its sealing name.
fn each_secret(
    s: &mut NotifierSettings,
    mut f: impl FnMut(&str, &mut String) -> Result<(), SecretError>,
) -> Result<(), SecretError> {
    match s {
        NotifierSettings::Email(e) => {
            if let Some(p) = e.password.as_mut().filter(|p| !p.is_empty()) {
                f(password_field(), p)?;
            }
        }
        NotifierSettings::Webhook(w) => {
            for h in w.headers.iter_mut().filter(|h| h.secret) {
                f(&header_field(&h.name), &mut h.value)?;
            }
        }
    }
    Ok(())
}

/// Seals every secret still in the clear.
pub(crate) fn seal(key: &MasterKey, s: &mut NotifierSettings) {
    let _ = each_secret(s, |field, v| {
        if !crate::secrets::is_sealed(v) {
            *v = key.seal(field, v);
        }
        Ok(())
    });
}

/// The settings with their secrets opened, to send.
pub(crate) fn open(key: &MasterKey, s: &NotifierSettings) -> Result<NotifierSettings, SecretError> {
    let mut out = s.clone();
    each_secret(&mut out, |field, v| {
        if crate::secrets::is_sealed(v) {
            *v = key.open(field, v)?;
        }
        Ok(())
    })?;
    Ok(out)
}

/// The settings as the API shows them: every secret as `********`.
pub(crate) fn redact(s: &NotifierSettings) -> NotifierSettings {
    let mut out = s.clone();
    let _ = each_secret(&mut out, |_, v| {
        *v = REDACTED.to_string();
        Ok(())
    });
    out
}

/// The stored settings with `patch` applied key by key: the type cannot
/// change, and a secret sent back as `********` keeps the stored value
/// (a header's, when a header of the same name was secret before).
pub(crate) fn patched(stored: &NotifierSettings, patch: &Map<String, Value>) -> Result<NotifierSettings, String> {
    let mut merged = match serde_json::to_value(stored) {
        Ok(Value::Object(m)) => m,
        _ => return Err("the stored settings cannot be read".into()),
    };
    for (k, v) in patch {
        if k == "type" && v.as_str() != Some(stored.kind()) {
            return Err(format!(
                "type cannot change (it is {}): remove the integration and add it again",
                stored.kind()
            ));
        }
        if v.is_null() {
            merged.remove(k);
        } else {
            merged.insert(k.clone(), v.clone());
        }
    }
    let mut next: NotifierSettings =
        serde_json::from_value(Value::Object(merged)).map_err(|e| format!("settings: {e}"))?;
    match (&mut next, stored) {
        (NotifierSettings::Email(n), NotifierSettings::Email(o)) => {
            if n.password.as_deref() == Some(REDACTED) {
                n.password = o.password.clone();
            }
        }
        (NotifierSettings::Webhook(n), NotifierSettings::Webhook(o)) => {
            for h in n.headers.iter_mut().filter(|h| h.value == REDACTED) {
                let old = o.headers.iter().find(|x| x.secret && x.name.eq_ignore_ascii_case(&h.name));
                match old {
                    Some(old) => {
                        h.value = old.value.clone();
                        h.secret = true;
                    }
                    None => return Err(format!("headers: give the value of {}", h.name)),
                }
            }
        }
        _ => return Err("type cannot change".into()),
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hindsight_api::{Header, SmtpSecurity};

    fn email() -> EmailSettings {
        EmailSettings {
            from: "hindsight@example.org".into(),
            to: vec!["ops@example.org".into()],
            host: "127.0.0.1".into(),
            port: Some(2525),
            username: Some("u".into()),
            password: Some("pw".into()),
            security: SmtpSecurity::None,
            verify_tls: true,
            timeout: 10,
        }
    }

    fn webhook() -> WebhookSettings {
        WebhookSettings {
            url: "https://hooks.example.org/x".into(),
            headers: vec![
                Header { name: "X-Plain".into(), value: "a".into(), secret: false },
                Header { name: "Authorization".into(), value: "Bearer tok".into(), secret: true },
            ],
            verify_tls: true,
            timeout: 10,
        }
    }

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        let mut e = email();
        e.to = vec!["not an address".into()];
        assert!(check(&NotifierSettings::Email(e)).err().unwrap_or_default().starts_with("to:"));
        let mut e = email();
        e.username = None;
        assert!(check(&NotifierSettings::Email(e)).err().unwrap_or_default().contains("without a username"));
        let mut w = webhook();
        w.url = "ftp://x/".into();
        assert!(check(&NotifierSettings::Webhook(w)).err().unwrap_or_default().starts_with("url:"));
        let mut w = webhook();
        w.timeout = 0;
        assert!(check(&NotifierSettings::Webhook(w)).err().unwrap_or_default().contains("timeout"));
        assert!(
            check(&NotifierSettings::Email(email())).is_ok() && check(&NotifierSettings::Webhook(webhook())).is_ok()
        );
        assert_eq!(digest_time("07:05"), Ok((7, 5)));
        for bad in ["7:05", "24:00", "12:60", "noon", "12:00:00"] {
            assert!(digest_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_sealed_opened_and_redacted_and_a_patch_keeps_them() {
        let key = MasterKey::generate();
        let mut s = NotifierSettings::Webhook(webhook());
        seal(&key, &mut s);
        let text = serde_json::to_string(&s).unwrap_or_default();
        assert!(!text.contains("Bearer tok") && text.contains("\"a\""), "{text}");
        assert_eq!(open(&key, &s).ok(), Some(NotifierSettings::Webhook(webhook())));
        let shown = serde_json::to_string(&redact(&s)).unwrap_or_default();
        assert!(shown.contains("********") && !shown.contains("enc:v1"), "{shown}");
        // The view sent back with a new timeout keeps the stored secret.
        let view = match serde_json::to_value(redact(&s)) {
            Ok(Value::Object(mut m)) => {
                m.insert("timeout".into(), 20.into());
                m
            }
            _ => Map::new(),
        };
        let next = patched(&s, &view).unwrap_or_else(|e| panic!("{e}"));
        let NotifierSettings::Webhook(w) = open(&key, &next).unwrap_or_else(|e| panic!("{e}")) else { panic!() };
        assert_eq!((w.timeout, w.headers[1].value.as_str()), (20, "Bearer tok"));
        let mut to_email = Map::new();
        to_email.insert("type".into(), "email".into());
        assert!(patched(&s, &to_email).err().unwrap_or_default().contains("type cannot change"));
        let mut e = NotifierSettings::Email(email());
        seal(&key, &mut e);
        let mut p = Map::new();
        p.insert("password".into(), REDACTED.into());
        assert_eq!(
            open(&key, &patched(&e, &p).unwrap_or_else(|e| panic!("{e}"))).ok(),
            Some(NotifierSettings::Email(email()))
        );
    }
}
