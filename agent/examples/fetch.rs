//! `fetch URL OUT [--ca PEM] [--stream]`: the agent's downloader on its own,
//! for `scripts/bench-download` (compared against `curl -o`). Default:
//! `fetch_to_file` (durable: fsync + checkpoint every 16 MiB). `--stream`:
//! the resuming `Download` reader copied into OUT without fsync, as curl
//! does (what the installer's payload source costs). http:// is allowed.
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut url, mut out, mut ca, mut stream) = (None, None, None, false);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ca" => ca = it.next().map(PathBuf::from),
            "--stream" => stream = true,
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
        .and_then(|c| {
            if stream {
                let mut dl = ota_agent::net::Download::new(&c, &url, 0, None)?;
                let mut f =
                    std::fs::File::create(&out).map_err(|e| ota_agent::Error::io(&out, e))?;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    use std::io::{Read, Write};
                    let n = dl
                        .read(&mut buf)
                        .map_err(|e| ota_agent::Error::io(&out, e))?;
                    if n == 0 {
                        break;
                    }
                    f.write_all(&buf[..n])
                        .map_err(|e| ota_agent::Error::io(&out, e))?;
                }
                Ok(())
            } else {
                ota_agent::net::fetch_to_file(&c, &url, &out, None, &mut |_, _| Ok(())).map(drop)
            }
        });
    if let Err(e) = result {
        eprintln!("fetch: error: {e}");
        std::process::exit(1);
    }
}
