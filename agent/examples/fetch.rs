//! `fetch URL OUT [--ca PEM]`: the agent's resumable downloader on its own,
//! for `scripts/bench-download` (compared against `curl -o`). http:// URLs
//! are allowed here (the benchmark measures both).
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut url, mut out, mut ca) = (None, None, None);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ca" => ca = it.next().map(PathBuf::from),
            _ if url.is_none() => url = Some(a),
            _ => out = Some(PathBuf::from(a)),
        }
    }
    let (Some(url), Some(out)) = (url, out) else {
        eprintln!("usage: fetch URL OUT [--ca PEM]");
        std::process::exit(2);
    };
    let tls = ota_agent::net::TlsFiles {
        ca_file: ca,
        ..Default::default()
    };
    let settings = ota_agent::net::NetSettings {
        danger_allow_http: true,
        ..Default::default()
    };
    let result = ota_agent::net::Client::new(&tls, settings)
        .map_err(ota_agent::Error::from)
        .and_then(|c| ota_agent::net::fetch_to_file(&c, &url, &out, None, &mut |_, _| {}));
    if let Err(e) = result {
        eprintln!("fetch: error: {e}");
        std::process::exit(1);
    }
}
