//! One attempt to deliver a message through an integration: an SMTP
//! transaction (lettre) or an HTTP POST (reqwest). Each returns the server's
//! answer, or why it failed, in one line; neither ever names a secret (a
//! webhook URL's path often is one, so errors leave the URL out).

use std::time::Duration;

use hindsight_api::{EmailSettings, NotifierSettings, SmtpSecurity, WebhookSettings};

use super::message::Message;

/// Most bytes of a webhook's answer kept (the rest is read by no one).
const ANSWER_BYTES: usize = 300;

/// Sends `m` with settings whose secrets are open; the whole attempt is
/// bounded by the integration's timeout.
pub(crate) async fn deliver(settings: &NotifierSettings, m: &Message) -> Result<String, String> {
    let timeout = match settings {
        NotifierSettings::Email(e) => e.timeout,
        NotifierSettings::Webhook(w) => w.timeout,
    };
    let attempt = async {
        match settings {
            NotifierSettings::Email(e) => email(e, m).await,
            NotifierSettings::Webhook(w) => webhook(w, m).await,
        }
    };
    // The clients have their own timeouts per step; this bounds the sum.
    match tokio::time::timeout(Duration::from_secs(u64::from(timeout)) + Duration::from_secs(1), attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout} s (timeout)")),
    }
}

/// An error and its causes on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

async fn webhook(w: &WebhookSettings, m: &Message) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(u64::from(w.timeout)))
        .danger_accept_invalid_certs(!w.verify_tls)
        .user_agent(concat!("hindsight/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", chain(&e.without_url())))?;
    let mut request = client.post(&w.url).header(reqwest::header::CONTENT_TYPE, "application/json").body(m.json());
    for h in &w.headers {
        request = request.header(h.name.as_str(), h.value.as_str());
    }
    let mut response = request.send().await.map_err(|e| chain(&e.without_url()))?;
    let status = response.status();
    let mut answer = Vec::new();
    while answer.len() < ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(c)) => answer.extend_from_slice(&c),
            Ok(None) | Err(_) => break,
        }
    }
    answer.truncate(ANSWER_BYTES);
    let text: String = String::from_utf8_lossy(&answer).split_whitespace().collect::<Vec<_>>().join(" ");
    let line = if text.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {text}") };
    if status.is_success() { Ok(line) } else { Err(line) }
}

async fn email(e: &EmailSettings, m: &Message) -> Result<String, String> {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

    let address = |a: &str| a.parse::<lettre::message::Mailbox>().map_err(|x| format!("{a:?}: {x}"));
    let mut mail = lettre::Message::builder()
        .from(address(&e.from)?)
        .subject(m.subject())
        .header(ContentType::TEXT_PLAIN)
        .user_agent(concat!("hindsight/", env!("CARGO_PKG_VERSION")).to_string());
    for to in &e.to {
        mail = mail.to(address(to)?);
    }
    let mail = mail.body(m.text()).map_err(|x| format!("cannot build the mail: {x}"))?;
    let tls = |wrapper: bool| -> Result<Tls, String> {
        let p = TlsParameters::builder(e.host.clone())
            .dangerous_accept_invalid_certs(!e.verify_tls)
            .build_rustls()
            .map_err(|x| format!("TLS: {}", chain(&x)))?;
        Ok(if wrapper { Tls::Wrapper(p) } else { Tls::Required(p) })
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(e.host.as_str())
        .port(e.port())
        .timeout(Some(Duration::from_secs(u64::from(e.timeout))))
        .tls(match e.security {
            SmtpSecurity::None => Tls::None,
            SmtpSecurity::Starttls => tls(false)?,
            SmtpSecurity::Tls => tls(true)?,
        });
    if let Some(user) = e.username.as_deref().filter(|u| !u.is_empty()) {
        transport = transport.credentials(Credentials::new(user.to_string(), e.password.clone().unwrap_or_default()));
    }
    let reply =
        transport.build().send(mail).await.map_err(|x| format!("SMTP {}:{}: {}", e.host, e.port(), chain(&x)))?;
    Ok(format!("SMTP {} {}", reply.code(), reply.message().collect::<Vec<_>>().join(" ")))
}
