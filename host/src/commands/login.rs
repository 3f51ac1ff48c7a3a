//! `idhost login -c FILE --source S`: signs a source in as a person and keeps the refresh token
//! in the vault (DESIGN §7.4). The connector names the flow and its endpoints
//! ([`idhost_connector_sdk::login::LoginFlow`]); this command owns the terminal and, for the
//! authorization code, the loopback redirect listener (RFC 8252 §7.3:
//! `http://127.0.0.1:<port>/callback`). The vault is checked before any upstream request, and
//! the refresh token never reaches the config, the terminal or a log.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use idhost_connector_sdk::login::{
    AuthorizationCodeLogin, DeviceCodeLogin, LoginFlow, LoginTokens,
};
use idhost_connector_sdk::services::HostServices;
use idhost_connector_sdk::{Context, ErrorKind, Http, SourceInfo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::cli::LoginArgs;
use crate::exit::{CommandError, Outcome};
use crate::metrics::SourceMetrics;
use crate::redact::Redactor;
use crate::sync::{EnvSetup, SyncEnv};

pub(crate) async fn run(
    path: &Path,
    flag: Option<&Path>,
    args: LoginArgs,
) -> Result<Outcome, CommandError> {
    let config = Arc::new(crate::config::load(path)?);
    let Some(source) = config
        .sources
        .iter()
        .find(|s| s.name == args.source)
        .cloned()
    else {
        let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        return Err(CommandError::usage(anyhow!(
            "--source `{}` is not a source in {}; sources are: {}",
            args.source,
            path.display(),
            known.join(", ")
        )));
    };
    // The vault first: a path that cannot safely take the token is refused before any request.
    let vault = crate::vault::open_for(&config, args.vault.as_deref())
        .map_err(|e| CommandError::usage(anyhow!("{e}; refused before any upstream request")))?;
    let env = SyncEnv::open(config.clone(), flag, EnvSetup::connectors_only()).await?;
    let info = SourceInfo::new(source.name.clone()).with_read_only(source.read_only);
    let (instance, services, redactor) = crate::sync::open_connector(
        &env,
        &source,
        info.clone(),
        Arc::new(SourceMetrics::default()),
    )
    .await
    .map_err(|message| CommandError::failed(anyhow!(message)))?;
    let flow = instance.login_flow().await.map_err(|err| {
        let message = format!(
            "source `{}`: {}",
            source.name,
            redactor.redact(&err.message)
        );
        if err.kind == ErrorKind::Unsupported {
            CommandError::usage(anyhow!(message))
        } else {
            CommandError::failed(anyhow!(message))
        }
    })?;
    // The standard exchanges go through the host's HTTP service, like a plugin's requests.
    let host: Arc<dyn HostServices> = services.clone();
    let http = Context::new(host, info).http().clone();
    let tokens = match &flow {
        LoginFlow::AuthorizationCode(flow) => {
            authorization_code(&http, flow, &args, &redactor).await?
        }
        LoginFlow::DeviceCode(flow) => device_code(&http, flow, &args, &redactor).await?,
    };
    vault
        .store_refresh_token(&source.name, &tokens.refresh_token)
        .map_err(|e| {
            CommandError::failed(anyhow!(
                "signed in, but the refresh token could not be stored: {e}"
            ))
        })?;
    println!(
        "✓ {}: signed in; the refresh token is in the vault {}{}",
        source.name,
        vault.path().display(),
        if vault.encrypts() {
            " (age-encrypted)"
        } else {
            ""
        }
    );
    Ok(Outcome::Success)
}

fn failed(
    redactor: &Redactor,
    what: &str,
    err: &idhost_connector_sdk::ConnectorError,
) -> CommandError {
    CommandError::failed(anyhow!("{what}: {}", redactor.redact(&err.message)))
}

fn flush() {
    let _ = std::io::stdout().flush();
}

/// Authorization code + PKCE on a loopback redirect.
async fn authorization_code(
    http: &Http,
    flow: &AuthorizationCodeLogin,
    args: &LoginArgs,
    redactor: &Redactor,
) -> Result<LoginTokens, CommandError> {
    // RFC 8252 §7.3: the loopback IP literal, not `localhost`; any port the OS gives.
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| {
            CommandError::usage(anyhow!(
                "cannot listen on 127.0.0.1:{} for the redirect: {e}",
                args.port
            ))
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| CommandError::failed(anyhow!("the redirect listener: {e}")))?
        .port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let pending = flow
        .start(&redirect)
        .map_err(|e| failed(redactor, "preparing the authorization request", &e))?;
    println!(
        "Open this URL in a browser and approve the access:\n\n  {}\n\nWaiting up to {} for the redirect to {redirect} …",
        pending.url,
        humantime::format_duration(args.timeout)
    );
    flush();
    let params = tokio::time::timeout(args.timeout, callback(&listener))
        .await
        .map_err(|_| {
            CommandError::failed(anyhow!(
                "no redirect reached {redirect} within {}; nothing was stored (run `idhost login` again)",
                humantime::format_duration(args.timeout)
            ))
        })?;
    // RFC 6749 §4.1.2.1: the user (or the server) refused at the consent page.
    if let Some(error) = params.get("error") {
        let description = params
            .get("error_description")
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return Err(CommandError::failed(anyhow!(
            "the sign-in was refused at the consent page: {error}{description}; nothing was stored"
        )));
    }
    // RFC 6749 §10.12: a redirect whose state is not ours is a forged or stale one.
    let state = params.get("state").map(String::as_str).unwrap_or_default();
    if !pending.state_matches(state) {
        return Err(CommandError::failed(anyhow!(
            "the redirect's `state` does not match the one this login sent (a forged or stale \
             redirect): its code was not exchanged and nothing was stored"
        )));
    }
    let Some(code) = params.get("code").filter(|c| !c.is_empty()).cloned() else {
        return Err(CommandError::failed(anyhow!(
            "the redirect carried no `code`; nothing was stored"
        )));
    };
    pending
        .exchange(http, flow, &code)
        .await
        .map_err(|e| failed(redactor, "exchanging the authorization code", &e))
}

/// Waits for the browser's `GET /callback?…` and answers it; any other request gets a 404.
async fn callback(listener: &TcpListener) -> HashMap<String, String> {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let head = tokio::time::timeout(Duration::from_secs(10), read_head(stream)).await;
        let Ok(Some((target, mut stream))) = head else {
            continue;
        };
        let Ok(url) = url::Url::parse(&format!("http://127.0.0.1{target}")) else {
            let _ = respond(
                &mut stream,
                "400 Bad Request",
                "Not a request idhost understands.",
            )
            .await;
            continue;
        };
        if url.path() != "/callback" {
            let _ = respond(&mut stream, "404 Not Found", "Not found.").await;
            continue;
        }
        let params: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let _ = respond(
            &mut stream,
            "200 OK",
            "idhost received the sign-in; return to the terminal. You can close this window.",
        )
        .await;
        return params;
    }
}

/// The request target of a request head (`GET <target> HTTP/1.1`).
async fn read_head(mut stream: TcpStream) -> Option<(String, TcpStream)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") && buffer.len() < 16 * 1024 {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buffer);
    let line = text.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    (method == "GET" && target.starts_with('/')).then(|| (target.to_owned(), stream))
}

async fn respond(stream: &mut TcpStream, status: &str, text: &str) -> std::io::Result<()> {
    let body = format!("<!doctype html><title>idhost login</title><p>{text}</p>\n");
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await
}

/// The device authorization grant: show the code, poll until approved, declined or expired.
async fn device_code(
    http: &Http,
    flow: &DeviceCodeLogin,
    args: &LoginArgs,
    redactor: &Redactor,
) -> Result<LoginTokens, CommandError> {
    let authorization = flow
        .start(http)
        .await
        .map_err(|e| failed(redactor, "asking for a device code", &e))?;
    println!(
        "To sign in, open {} and enter the code {}\n(it expires in {}; polling every {}) …",
        authorization.verification_uri(),
        authorization.user_code(),
        humantime::format_duration(authorization.expires_in()),
        humantime::format_duration(authorization.interval()),
    );
    flush();
    tokio::time::timeout(
        args.timeout,
        authorization.wait(http, flow, tokio::time::sleep),
    )
    .await
    .map_err(|_| {
        CommandError::failed(anyhow!(
            "the sign-in was not approved within {}; nothing was stored (run `idhost login` again)",
            humantime::format_duration(args.timeout)
        ))
    })?
    .map_err(|e| failed(redactor, "waiting for the device-code sign-in", &e))
}
