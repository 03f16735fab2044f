//! `loadgen flash --base URL --sale ID --tokens FILE --start-ms EPOCH_MS
//!                [--customers N] [--ramp S] [--long-poll S] [--poll-ms MS]
//!                [--http2 CONNECTIONS] [--max-inflight N] [--give-up S] [--label L]`
//!
//! A flash sale's shoppers (bench/flash-sale.sh). Customer k (one bearer
//! token each, from FILE) arrives at `start + ramp × k / N`, open loop: the
//! arrival times are fixed whatever the server does, and a buy's latency
//! counts from its arrival, so a stalled server shows as latency. Each one:
//!
//! 1. presses Buy now (`POST /api/v1/flash-sales/{id}/buy`, one unit);
//! 2. 202 (in line): long-polls `GET …/me?wait=S` with the ETag it has
//!    (`--long-poll S`, 25 by default, as the storefront's page follows
//!    it), each answer starting the next, until `reserved` or `sold_out`;
//!    with `--long-poll 0`, polls `GET …/me` every `--poll-ms` instead
//!    (what the page did before the line was pushed);
//! 3. with a hold: `POST /api/v1/checkout` with its own Idempotency-Key,
//!    resent with the same key after a 503 or 504 (Retry-After) or a lost
//!    answer, as a client following the API does (a 504's checkout goes on:
//!    the resend learns how it ended). A decline (402) ends the visit:
//!    the unit goes to the head of the line.
//!
//! 429s are waited out (Retry-After) and counted. At most `--max-inflight`
//! buys and polls, and as many checkouts, are in flight (one connection
//! each over HTTP/1.1; two pools, so slow checkouts cannot hold up the buys
//! of shoppers arriving meanwhile); a request waiting for a slot is late,
//! and its latency shows it. Parked long polls take no slot: they wait,
//! they do not work. Over HTTP/1.1 each one holds a connection, and tens of
//! thousands of shoppers in line need more than the 20,000 descriptors a
//! process gets on the benchmark machine; `--http2 N` sends everything as
//! HTTP/2 (cleartext, prior knowledge) over N connections instead, as a
//! CDN or proxy in front of the shop would. Prints one JSON report.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;

/// A checkout is resent for this many `--give-up` periods after it starts.
const CHECKOUT_PATIENCE: u32 = 3;

struct Args {
    base: String,
    sale: String,
    tokens: Vec<String>,
    customers: usize,
    ramp: f64,
    start_ms: u64,
    poll: Duration,
    long_poll: u64,
    http2: usize,
    max_inflight: usize,
    give_up: Duration,
    label: String,
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(2);
    let (mut base, mut sale, mut tokens, mut customers, mut ramp, mut start_ms) = (None, None, None, None, 10.0, None);
    let (mut poll_ms, mut max_inflight, mut give_up, mut label) = (1000u64, 512usize, 120.0f64, String::from("flash"));
    let (mut long_poll, mut http2) = (25u64, 0usize);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--base" => base = Some(value()?),
            "--sale" => sale = Some(value()?),
            "--tokens" => tokens = Some(super::lines(&value()?)?),
            "--customers" => customers = Some(value()?.parse::<usize>().map_err(|_| "--customers: a number")?),
            "--ramp" => ramp = value()?.parse().map_err(|_| "--ramp: seconds")?,
            "--start-ms" => start_ms = Some(value()?.parse().map_err(|_| "--start-ms: Unix time in ms")?),
            "--poll-ms" => poll_ms = value()?.parse().map_err(|_| "--poll-ms: a number")?,
            "--long-poll" => long_poll = value()?.parse().map_err(|_| "--long-poll: whole seconds")?,
            "--http2" => http2 = value()?.parse().map_err(|_| "--http2: a number of connections")?,
            "--max-inflight" => max_inflight = value()?.parse().map_err(|_| "--max-inflight: a number")?,
            "--give-up" => give_up = value()?.parse().map_err(|_| "--give-up: seconds")?,
            "--label" => label = value()?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let tokens = tokens.ok_or("--tokens FILE is required")?;
    let customers = customers.unwrap_or(tokens.len());
    if customers == 0 || customers > tokens.len() {
        return Err(format!("--customers {customers}: the token file has {}", tokens.len()));
    }
    Ok(Args {
        base: base.ok_or("--base URL is required")?,
        sale: sale.ok_or("--sale ID is required")?,
        tokens,
        customers,
        ramp,
        start_ms: start_ms.ok_or("--start-ms is required")?,
        poll: Duration::from_millis(poll_ms.max(1)),
        long_poll,
        http2,
        max_inflight: max_inflight.max(1),
        give_up: Duration::from_secs_f64(give_up),
        label,
    })
}

/// How a customer's visit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Ordered,
    OrderedAfterWaiting,
    Declined,
    SoldOut,
    SoldOutAfterWaiting,
    HoldExpired,
    GaveUp,
    Refused,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::Ordered => "ordered",
            End::OrderedAfterWaiting => "ordered_after_waiting",
            End::Declined => "declined",
            End::SoldOut => "sold_out",
            End::SoldOutAfterWaiting => "sold_out_after_waiting",
            End::HoldExpired => "hold_expired",
            End::GaveUp => "gave_up",
            End::Refused => "refused",
        }
    }
}

#[derive(Default)]
struct Stats {
    /// First buy of each customer, ms from its arrival.
    buy_ms: Vec<f64>,
    /// Every checkout request, ms from when it was sent (a resend is a new sample).
    checkout_ms: Vec<f64>,
    /// Each /me poll, ms from when it was sent.
    me_ms: Vec<f64>,
    statuses: BTreeMap<String, u64>,
    ends: BTreeMap<End, u64>,
    buy_requests: u64,
    first_buy_sent: Option<f64>,
    last_buy_answered: f64,
    /// Seconds after the start when the last order (201) came back.
    last_order_s: f64,
    errors: Vec<String>,
}

struct Shared {
    args: Args,
    /// One client over HTTP/1.1 (its pool opens what it needs); with
    /// `--http2 N`, N clients of one connection each, customer k on k mod N.
    clients: Vec<reqwest::Client>,
    slots: Semaphore,
    checkout_slots: Semaphore,
    stats: Mutex<Stats>,
    start: Instant,
    checkout_body: String,
}

enum Answer {
    Http { status: u16, body: serde_json::Value, retry_after: Option<f64>, etag: Option<String> },
    Failed(String),
}

impl Shared {
    fn seconds(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn count(&self, what: &str, status: &str) {
        *self.stats.lock().unwrap().statuses.entry(format!("{what} {status}")).or_insert(0) += 1;
    }

    fn client(&self, k: usize) -> &reqwest::Client {
        &self.clients[k % self.clients.len()]
    }

    async fn send(&self, what: &str, request: reqwest::RequestBuilder) -> Answer {
        let _slot = match what {
            "wait" => None,
            "checkout" => Some(self.checkout_slots.acquire().await.expect("the semaphore is never closed")),
            _ => Some(self.slots.acquire().await.expect("the semaphore is never closed")),
        };
        let answer = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let retry_after = header("retry-after").and_then(|v| v.parse().ok());
            let etag = header("etag");
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes, retry_after, etag))
        }
        .await;
        match answer {
            Ok((status, bytes, retry_after, etag)) => {
                self.count(what, &status.to_string());
                Answer::Http { status, body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null), retry_after, etag }
            }
            Err(e) => {
                self.count(what, if e.is_timeout() { "timeout" } else { "error" });
                Answer::Failed(e.to_string())
            }
        }
    }

    fn error(&self, message: String) {
        let mut stats = self.stats.lock().unwrap();
        if stats.errors.len() < 20 {
            stats.errors.push(message);
        }
    }
}

/// An API error's code: `{"error": "<code>", "message": …}`.
fn code(body: &serde_json::Value) -> &str {
    body["error"].as_str().unwrap_or("")
}

fn state_of(body: &serde_json::Value) -> &str {
    body["state"].as_str().unwrap_or("")
}

async fn customer(shared: Arc<Shared>, k: usize, due: Instant) {
    tokio::time::sleep_until(due.into()).await;
    let args = &shared.args;
    let token = &args.tokens[k];
    let deadline = due + args.give_up;
    let url = |tail: &str| format!("{}/api/v1/flash-sales/{}{tail}", args.base, args.sale);
    let client = shared.client(k);

    // 1. Buy now, until an answer that is not "later".
    let mut first = true;
    let mut waited = false;
    // The ETag of the state this shopper last saw.
    let mut known: Option<String> = None;
    let held = loop {
        let sent = shared.seconds();
        let answer = shared
            .send("buy", client.post(url("/buy")).bearer_auth(token).header("content-type", "application/json").body(r#"{"quantity":1}"#))
            .await;
        {
            let mut stats = shared.stats.lock().unwrap();
            stats.buy_requests += 1;
            stats.first_buy_sent = Some(stats.first_buy_sent.map_or(sent, |s: f64| s.min(sent)));
            let now = shared.seconds();
            stats.last_buy_answered = stats.last_buy_answered.max(now);
            if first {
                stats.buy_ms.push(due.elapsed().as_secs_f64() * 1000.0);
            }
        }
        first = false;
        match answer {
            Answer::Http { status: 200, .. } => break true,
            Answer::Http { status: 202, ref etag, .. } => {
                waited = true;
                known = etag.clone();
                break false;
            }
            Answer::Http { status: 409, ref body, .. } if code(body) == "sold_out" => {
                return finish(&shared, End::SoldOut);
            }
            Answer::Http { status: 429 | 503, retry_after, .. } if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs_f64(retry_after.unwrap_or(1.0).max(0.05))).await;
            }
            Answer::Failed(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Answer::Http { status, body, .. } => {
                shared.error(format!("buy {status} {body}"));
                return finish(&shared, End::Refused);
            }
            Answer::Failed(e) => {
                shared.error(format!("buy: {e}"));
                return finish(&shared, End::GaveUp);
            }
        }
    };

    // 2. In line: ask until the answer is a hold or "sold out".
    if !held {
        loop {
            let request = match (args.long_poll, &known) {
                (0, _) | (_, None) => {
                    tokio::time::sleep(args.poll).await;
                    ("me", client.get(url("/me")).bearer_auth(token))
                }
                (wait, Some(tag)) => ("wait", client.get(url(&format!("/me?wait={wait}"))).bearer_auth(token).header("if-none-match", tag)),
            };
            let sent = Instant::now();
            let answer = shared.send(request.0, request.1).await;
            if request.0 == "me" {
                shared.stats.lock().unwrap().me_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            if let Answer::Http { etag: Some(tag), .. } = &answer {
                known = Some(tag.clone());
            }
            match answer {
                Answer::Http { status: 304, .. } => {}
                Answer::Http { status: 200, body, .. } => match state_of(&body) {
                    "reserved" => break,
                    "waiting" => {}
                    "sold_out" => return finish(&shared, End::SoldOutAfterWaiting),
                    other => {
                        shared.error(format!("me answered {other}: {body}"));
                        return finish(&shared, End::Refused);
                    }
                },
                Answer::Http { status: 429 | 503, retry_after, .. } if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_secs_f64(retry_after.unwrap_or(1.0))).await;
                }
                Answer::Failed(_) if Instant::now() < deadline => {}
                Answer::Http { status, body, .. } => {
                    shared.error(format!("me {status} {body}"));
                    return finish(&shared, End::Refused);
                }
                Answer::Failed(e) => {
                    shared.error(format!("me: {e}"));
                    return finish(&shared, End::GaveUp);
                }
            }
        }
    }

    // 3. Check out, one key for every resend of this checkout. Its card may
    // be charged already, so it is resent for longer than a buy is.
    let key = format!("flash-{}-{k}", std::process::id());
    let deadline = Instant::now() + args.give_up * CHECKOUT_PATIENCE;
    loop {
        let sent = Instant::now();
        let answer = shared
            .send(
                "checkout",
                client
                    .post(format!("{}/api/v1/checkout", args.base))
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .header("idempotency-key", &key)
                    .body(shared.checkout_body.clone()),
            )
            .await;
        shared.stats.lock().unwrap().checkout_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        match answer {
            Answer::Http { status: 201, .. } => {
                let now = shared.seconds();
                let mut stats = shared.stats.lock().unwrap();
                stats.last_order_s = stats.last_order_s.max(now);
                drop(stats);
                return finish(&shared, if waited { End::OrderedAfterWaiting } else { End::Ordered });
            }
            Answer::Http { status: 402, .. } => return finish(&shared, End::Declined),
            Answer::Http { status: 409, ref body, .. } if code(body) == "reservation_expired" => {
                return finish(&shared, End::HoldExpired);
            }
            Answer::Http { status: 429 | 503 | 504, retry_after, .. } if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs_f64(retry_after.unwrap_or(1.0))).await;
            }
            Answer::Http { status: 409, ref body, .. } if code(body) == "checkout_in_progress" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Answer::Failed(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Answer::Http { status, body, .. } => {
                shared.error(format!("checkout {status} {body}"));
                return finish(&shared, End::Refused);
            }
            Answer::Failed(e) => {
                shared.error(format!("checkout: {e}"));
                return finish(&shared, End::GaveUp);
            }
        }
    }
}

fn finish(shared: &Shared, end: End) {
    *shared.stats.lock().unwrap().ends.entry(end).or_insert(0) += 1;
}

fn summary(samples: &mut [f64]) -> serde_json::Value {
    samples.sort_by(|a, b| a.total_cmp(b));
    serde_json::json!({
        "count": samples.len(),
        "p50_ms": super::percentile(samples, 50.0),
        "p90_ms": super::percentile(samples, 90.0),
        "p99_ms": super::percentile(samples, 99.0),
        "max_ms": samples.last().copied().unwrap_or(f64::NAN),
    })
}

pub async fn run() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen flash: {e}");
            std::process::exit(2);
        }
    };
    let clients: Vec<reqwest::Client> = match args.http2 {
        0 => vec![reqwest::Client::builder()
            .pool_max_idle_per_host(2 * args.max_inflight)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client")],
        n => (0..n)
            .map(|_| reqwest::Client::builder().http2_prior_knowledge().timeout(Duration::from_secs(60)).build().expect("an HTTP/2 client"))
            .collect(),
    };
    // The sale's start on this machine's monotonic clock.
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as i64;
    let start = Instant::now() + Duration::from_millis((args.start_ms as i64 - now_ms).max(0) as u64);
    let checkout_body = serde_json::json!({
        "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
        "payment_method": "pm_card_visa",
    })
    .to_string();
    let (customers, ramp) = (args.customers, args.ramp);
    let (slots, checkout_slots) = (Semaphore::new(args.max_inflight), Semaphore::new(args.max_inflight));
    let shared = Arc::new(Shared { args, clients, slots, checkout_slots, stats: Mutex::new(Stats::default()), start, checkout_body });
    let mut tasks = Vec::with_capacity(customers);
    for k in 0..customers {
        let due = start + Duration::from_secs_f64(ramp * k as f64 / customers as f64);
        tasks.push(tokio::spawn(customer(shared.clone(), k, due)));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut stats = std::mem::take(&mut *shared.stats.lock().unwrap());
    let buy_window = stats.last_buy_answered - stats.first_buy_sent.unwrap_or(0.0);
    let report = serde_json::json!({
        "label": shared.args.label,
        "customers": customers,
        "ramp_s": ramp,
        "buy": summary(&mut stats.buy_ms),
        "buy_requests": stats.buy_requests,
        "buy_attempts_per_s": stats.buy_requests as f64 / buy_window.max(1e-9),
        "buy_window_s": buy_window,
        "checkout": summary(&mut stats.checkout_ms),
        "me": summary(&mut stats.me_ms),
        "last_order_after_start_s": stats.last_order_s,
        "all_done_after_start_s": shared.seconds(),
        "ends": stats.ends.iter().map(|(k, v)| (k.name().to_string(), serde_json::Value::from(*v))).collect::<serde_json::Map<_, _>>(),
        "statuses": stats.statuses.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(*v))).collect::<serde_json::Map<_, _>>(),
        "errors": stats.errors,
    });
    println!("{report}");
}
