//! The `tessera` command: serve a config, or check one.

use std::path::PathBuf;
use std::process::ExitCode;
use tessera::runtime::control::ConfigSource;

/// mimalloc gives back the memory a flood of connections freed (glibc's arenas kept it);
/// why and the figures: Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 2's `mi_option_purge_delay` (mimalloc.h; the -sys crate names no constant for
/// it): the one after `eager_commit_delay`.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t =
    libmimalloc_sys::mi_option_eager_commit_delay + 1;

/// Freed pages go back to the system at once rather than on a later allocation, which an
/// idle shard never makes: memory comes back after viewers leave (figures: Cargo.toml).
fn purge_freed_memory_at_once() {
    // SAFETY: mimalloc's documented option API, with its own option and a valid value.
    unsafe {
        // Its documented default; anything else means the enum moved: leave it alone.
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == 10 {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

const USAGE: &str = "\
usage: tessera [--shards N] [CONFIG]
       tessera --check CONFIG
       tessera token sign CONFIG BACKEND SCOPE [--ttl SECONDS] [--ip IP|CIDR] [--key ID]

  CONFIG        config file to serve (default: the embedded demo config, config/tessera.conf)
  --check       validate CONFIG, print every error, exit 0 if valid, 1 if not
  --shards N    number of shards (default: one per core)
  token sign    print a signed token for SCOPE (a stream name, `prefix/*` or `*`), signed
                with BACKEND's newest `signed_key` (or --key ID), valid for --ttl seconds
                (default 3600), optionally bound to a client address or network
  -h, --help    this text
  -V, --version print the version

Logs go to stderr; set TESSERA_LOG=error|warn|info|debug|trace (default info).";

struct Args {
    check: bool,
    shards: Option<usize>,
    config: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        check: false,
        shards: None,
        config: None,
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-h" | "--help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            Some("-V" | "--version") => {
                println!("tessera {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            Some("--check") => args.check = true,
            Some("--shards") => {
                let value = it.next().ok_or("--shards needs a number")?;
                let n = value
                    .to_str()
                    .and_then(|s| s.parse::<usize>().ok())
                    .filter(|&n| (1..=1024).contains(&n))
                    .ok_or("--shards takes a number from 1 to 1024")?;
                args.shards = Some(n);
            }
            Some(s) if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => {
                if args.config.is_some() {
                    return Err("more than one config file given".into());
                }
                args.config = Some(PathBuf::from(arg));
            }
        }
    }
    if args.check && args.config.is_none() {
        return Err("--check needs a config file".into());
    }
    Ok(args)
}

/// `tessera token sign CONFIG BACKEND SCOPE [--ttl S] [--ip CIDR] [--key ID]`.
fn token_sign(args: &[String]) -> Result<String, String> {
    let [config, backend, scope, rest @ ..] = args else {
        return Err("token sign needs CONFIG BACKEND SCOPE".into());
    };
    let (mut ttl, mut ip, mut key) = (3600i64, None, None);
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--ttl" => {
                ttl = value
                    .parse()
                    .ok()
                    .filter(|t| *t > 0)
                    .ok_or("--ttl takes a positive number of seconds")?
            }
            "--ip" => {
                ip = Some(
                    value
                        .parse::<tessera::config::Cidr>()
                        .map_err(|e| format!("--ip: {e}"))?,
                )
            }
            "--key" => key = Some(value.clone()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let config =
        tessera::config::load_file(std::path::Path::new(config)).map_err(|e| e.to_string())?;
    let rules = &config
        .auth_backend(backend)
        .ok_or_else(|| format!("no auth_backend `{backend}` in the config"))?
        .rules;
    let newest = rules
        .signed_keys
        .last()
        .ok_or_else(|| format!("auth_backend `{backend}` has no signed_key"))?;
    let mut keys = tessera::auth::signed::SignedKeys::new();
    for k in &rules.signed_keys {
        keys.insert(&k.id, k.secret.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let kid = key.unwrap_or_else(|| newest.id.clone());
    let expires = tessera::utc::now_ms() / 1000 + ttl;
    keys.sign(&kid, expires, scope, ip)
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    purge_freed_memory_at_once();
    tessera::logging::init();
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("token") {
        if raw.get(1).map(String::as_str) != Some("sign") {
            eprintln!("tessera: unknown token command\n\n{USAGE}");
            return ExitCode::from(2);
        }
        return match token_sign(&raw[2..]) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tessera: {e}");
                ExitCode::from(1)
            }
        };
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tessera: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let source = match &args.config {
        Some(path) => ConfigSource::File(path.clone()),
        None => ConfigSource::Embedded,
    };
    let config = match source.load() {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    // Certificates are part of the config: an unreadable or mismatched file is a config
    // error, at `--check` as at start.
    let tls = match tessera::runtime::tls::load(&config, source.path(), &source.name()) {
        Ok(tls) => tls,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    if args.check {
        let name = args
            .config
            .as_ref()
            .map_or(String::new(), |p| p.display().to_string());
        println!(
            "{name}: ok ({} streams, {} auth backends)",
            config.streams.len(),
            config.auth_backends.len()
        );
        return ExitCode::SUCCESS;
    }
    let shards = args
        .shards
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    match tessera::runtime::run(config, source, tls, shards) {
        Ok(tessera::runtime::Stop::Signal(sig)) => {
            log::info!("stopped on signal {sig}");
            ExitCode::SUCCESS
        }
        Ok(tessera::runtime::Stop::Forced(sig)) => {
            log::warn!("stopped at once on signal {sig}");
            ExitCode::from(1)
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}
