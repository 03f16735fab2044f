//! `loadgen --base URL --rate R --seconds S --targets FILE [--zipf S]
//!          [--post PATH] [--tokens FILE] [--idempotency] [--accept CODE]…`
//!
//! Sends R requests per second for S seconds whatever the server does (open
//! loop), each to a path from FILE (one per line); with `--post PATH`, each
//! line is instead a JSON body POSTed to PATH. `--tokens` sends the tokens of
//! FILE as bearer credentials, round robin. With `--zipf`, line k is
//! picked with probability ∝ 1/k^S, the skew of real shop traffic. Latency
//! counts from when the request was due, so a stalled server shows up as
//! latency instead of silently lowering the rate. Prints one JSON line.
//!
//! With `--connections N` it is closed loop instead: N connections each send
//! their next request as soon as the last is answered, for S seconds, and
//! the report's rate is what the server sustained (latency from each send).
//!
//! `loadgen flash …` is a flash sale's shoppers instead (see `flash.rs`).

mod flash;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    base: String,
    rate: f64,
    seconds: f64,
    targets: Vec<String>,
    zipf: Option<f64>,
    label: String,
    post: Option<String>,
    tokens: Vec<String>,
    idempotency: bool,
    accept: Vec<u16>,
    connections: Option<usize>,
}

fn lines(file: &str) -> Result<Vec<String>, String> {
    Ok(std::fs::read_to_string(file)
        .map_err(|e| format!("{file}: {e}"))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args();
    args.next();
    let (mut base, mut rate, mut seconds, mut file, mut zipf, mut label) =
        (None, 200.0, 30.0, None, None, String::from("run"));
    let (mut post, mut tokens_file) = (None, None);
    let (mut idempotency, mut accept, mut connections) = (false, Vec::<u16>::new(), None);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--base" => base = Some(value()?),
            "--rate" => rate = value()?.parse().map_err(|_| "--rate: a number")?,
            "--seconds" => seconds = value()?.parse().map_err(|_| "--seconds: a number")?,
            "--targets" => file = Some(value()?),
            "--zipf" => zipf = Some(value()?.parse().map_err(|_| "--zipf: a number")?),
            "--label" => label = value()?,
            "--post" => post = Some(value()?),
            "--tokens" => tokens_file = Some(value()?),
            // A fresh Idempotency-Key per request (checkout).
            "--idempotency" => idempotency = true,
            // A non-2xx status that is an expected answer (e.g. 409 sold out),
            // timed and counted rather than reported as an error.
            "--accept" => accept.push(value()?.parse().map_err(|_| "--accept: a status code")?),
            "--connections" => connections = Some(value()?.parse().map_err(|_| "--connections: a number")?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let file = file.ok_or("--targets FILE is required")?;
    let targets = lines(&file)?;
    let tokens = match tokens_file {
        Some(f) => lines(&f)?,
        None => Vec::new(),
    };
    if targets.is_empty() {
        return Err(format!("{file} lists no paths"));
    }
    Ok(Args { base: base.ok_or("--base URL is required")?, rate, seconds, targets, zipf, label, post, tokens, idempotency, accept, connections })
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Picks target indexes uniformly or Zipf-distributed (inverse CDF).
struct Picker {
    cdf: Option<Vec<f64>>,
    n: usize,
}

impl Picker {
    fn new(n: usize, zipf: Option<f64>) -> Self {
        let cdf = zipf.map(|s| {
            let mut acc = 0.0;
            let mut cdf: Vec<f64> = (1..=n).map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            }).collect();
            for c in &mut cdf {
                *c /= acc;
            }
            cdf
        });
        Self { cdf, n }
    }

    fn pick(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        match &self.cdf {
            Some(cdf) => cdf.partition_point(|c| *c < u).min(self.n - 1),
            None => ((u * self.n as f64) as usize).min(self.n - 1),
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("flash") {
        return flash::run().await;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    if let Some(connections) = args.connections {
        return closed_loop(&args, client, connections.max(1)).await;
    }
    let picker = Picker::new(args.targets.len(), args.zipf);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let total = (args.rate * args.seconds).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let statuses = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, u64>::new()));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let target = &args.targets[picker.pick(&mut rng)];
        let mut request = match &args.post {
            Some(path) => client
                .post(format!("{}{}", args.base, path))
                .header("content-type", "application/json")
                .header("origin", args.base.clone())
                .body(target.clone()),
            None => client.get(format!("{}{}", args.base, target)),
        };
        if !args.tokens.is_empty() {
            request = request.bearer_auth(&args.tokens[i % args.tokens.len()]);
        }
        if args.idempotency {
            request = request.header("idempotency-key", format!("loadgen-{}-{i}", std::process::id()));
        }
        let url = args.post.clone().unwrap_or_else(|| target.clone());
        let (latencies, errors, statuses, accept) = (latencies.clone(), errors.clone(), statuses.clone(), args.accept.clone());
        tasks.push(tokio::spawn(async move {
            let result = async {
                let response = request.send().await?;
                let status = response.status();
                response.bytes().await?;
                Ok::<_, reqwest::Error>(status)
            }
            .await;
            let ms = due.elapsed().as_secs_f64() * 1000.0;
            if let Ok(status) = &result {
                *statuses.lock().unwrap().entry(status.as_u16()).or_insert(0u64) += 1;
            }
            match result {
                Ok(status) if status.is_success() || accept.contains(&status.as_u16()) => latencies.lock().unwrap().push(ms),
                Ok(status) => errors.lock().unwrap().push(format!("{status} {url}")),
                Err(e) => errors.lock().unwrap().push(format!("{e} {url}")),
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_by(|a, b| a.total_cmp(b));
    let errors = errors.lock().unwrap().clone();
    let report = serde_json::json!({
        "label": args.label,
        "target_rate": args.rate,
        "achieved_rate": (lat.len() + errors.len()) as f64 / elapsed,
        "requests": lat.len() + errors.len(),
        "errors": errors.len(),
        "p50_ms": percentile(&lat, 50.0),
        "p90_ms": percentile(&lat, 90.0),
        "p95_ms": percentile(&lat, 95.0),
        "p99_ms": percentile(&lat, 99.0),
        "max_ms": lat.last().copied().unwrap_or(f64::NAN),
        "statuses": statuses.lock().unwrap().iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect::<serde_json::Map<String, serde_json::Value>>(),
    });
    println!("{report}");
    for e in errors.iter().take(5) {
        eprintln!("loadgen: error: {e}");
    }
}

/// `--connections N`: N request loops back to back for the run's seconds
/// (GETs of the targets, picked as in the open loop).
async fn closed_loop(args: &Args, client: reqwest::Client, connections: usize) {
    let picker = Arc::new(Picker::new(args.targets.len(), args.zipf));
    let targets = Arc::new(args.targets.clone());
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut loops = Vec::with_capacity(connections);
    for c in 0..connections {
        let (client, picker, targets, base) = (client.clone(), picker.clone(), targets.clone(), args.base.clone());
        loops.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((c as u64 + 1) << 32));
            let (mut latencies, mut errors, mut statuses) = (Vec::new(), Vec::new(), std::collections::BTreeMap::<u16, u64>::new());
            while Instant::now() < deadline {
                let target = &targets[picker.pick(&mut rng)];
                let sent = Instant::now();
                let result = async {
                    let response = client.get(format!("{base}{target}")).send().await?;
                    let status = response.status();
                    response.bytes().await?;
                    Ok::<_, reqwest::Error>(status)
                }
                .await;
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                match result {
                    Ok(status) => {
                        *statuses.entry(status.as_u16()).or_insert(0) += 1;
                        if status.is_success() {
                            latencies.push(ms);
                        } else {
                            errors.push(format!("{status} {target}"));
                        }
                    }
                    Err(e) => errors.push(format!("{e} {target}")),
                }
            }
            (latencies, errors, statuses)
        }));
    }
    let (mut lat, mut errors, mut statuses) = (Vec::new(), Vec::new(), std::collections::BTreeMap::<u16, u64>::new());
    for l in loops {
        let (l, e, s) = l.await.expect("a request loop");
        lat.extend(l);
        errors.extend(e);
        for (k, v) in s {
            *statuses.entry(k).or_insert(0) += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let report = serde_json::json!({
        "label": args.label,
        "connections": connections,
        "achieved_rate": (lat.len() + errors.len()) as f64 / elapsed,
        "requests": lat.len() + errors.len(),
        "errors": errors.len(),
        "p50_ms": percentile(&lat, 50.0),
        "p90_ms": percentile(&lat, 90.0),
        "p99_ms": percentile(&lat, 99.0),
        "max_ms": lat.last().copied().unwrap_or(f64::NAN),
        "statuses": statuses.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect::<serde_json::Map<String, serde_json::Value>>(),
    });
    println!("{report}");
    for e in errors.iter().take(5) {
        eprintln!("loadgen: error: {e}");
    }
}
