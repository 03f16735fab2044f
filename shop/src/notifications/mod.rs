//! Notifications: the customer's emails about their order (placed, shipped,
//! delivered, cancelled, refunded) and about a flash sale unit that came to
//! them from the waitlist (promoted), sent over SMTP when the event arrives
//! from the order-events topic. `server::workers` drives
//! [`Notifier::handle`] as the `notifications` consumer group.
//!
//! Once per event, as far as SMTP allows. A mail server cannot take part in
//! our transaction, so the order of steps is what bounds the damage:
//! 1. claim the event id in `processed_events` (uncommitted; a copy of the
//!    event another consumer is handling at the same moment waits on it),
//! 2. send, with a Message-ID and Date derived from the event
//!    (`<{event id}@mercato.local>`, the event's time),
//! 3. commit the claim.
//! A crash or failure before 3 rolls the claim back and the event comes
//! again: at worst the customer's mail client sees the same message twice
//! (same Message-ID, same content), never two different ones. A committed
//! claim means a later copy of the event sends nothing. An SMTP server that
//! is down fails the handler with nothing recorded; the runner retries it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use model::order::OrderItem;
use uuid::Uuid;

use crate::events::{dedup, Event};
use crate::orders::Tracking;
use crate::secret::Secret;
use crate::{Error, Result, Shop};

/// The consumer group, and its name in `processed_events`.
pub const CONSUMER: &str = "notifications";
/// maildev on its default port: what the README's commands start.
pub const DEFAULT_SMTP_URL: &str = "smtp://127.0.0.1:1025";
pub const DEFAULT_FROM: &str = "Mercato <orders@mercato.local>";
/// The right-hand side of every Message-ID we send.
pub const MESSAGE_ID_DOMAIN: &str = "mercato.local";

/// The Message-ID of the email an event causes: the same for every copy of
/// that event, so a repeat after a crash is recognisably one message.
pub fn message_id(event_id: Uuid) -> String {
    format!("<{event_id}@{MESSAGE_ID_DOMAIN}>")
}

/// The events that email the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Placed,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
    /// A flash sale's waitlist gave the customer a unit to pay for.
    Promoted,
}

impl Kind {
    pub fn of(event_type: &str) -> Option<Kind> {
        Some(match event_type {
            "order.placed" => Kind::Placed,
            "order.shipped" => Kind::Shipped,
            "order.delivered" => Kind::Delivered,
            "order.cancelled" => Kind::Cancelled,
            "order.refunded" => Kind::Refunded,
            "flash.promoted" => Kind::Promoted,
            _ => return None,
        })
    }

    /// (plain text, HTML) templates, compiled in so a deployment cannot
    /// lose them.
    fn templates(self) -> (&'static str, &'static str) {
        match self {
            Kind::Placed => (include_str!("templates/placed.txt"), include_str!("templates/placed.html")),
            Kind::Shipped => (include_str!("templates/shipped.txt"), include_str!("templates/shipped.html")),
            Kind::Delivered => (include_str!("templates/delivered.txt"), include_str!("templates/delivered.html")),
            Kind::Cancelled => (include_str!("templates/cancelled.txt"), include_str!("templates/cancelled.html")),
            Kind::Refunded => (include_str!("templates/refunded.txt"), include_str!("templates/refunded.html")),
            Kind::Promoted => (include_str!("templates/promoted.txt"), include_str!("templates/promoted.html")),
        }
    }

    /// The subject line; `order_id` is the event's aggregate (a promotion's
    /// is its sale, which the subject does not name).
    pub fn subject(self, order_id: Uuid) -> String {
        match self {
            Kind::Promoted => "A flash sale unit is waiting for you: pay before it goes to the next in line".to_owned(),
            Kind::Placed => format!("Your Mercato order {order_id} is placed"),
            Kind::Shipped => format!("Your Mercato order {order_id} has shipped"),
            Kind::Delivered => format!("Your Mercato order {order_id} has been delivered"),
            Kind::Cancelled => format!("Your Mercato order {order_id} has been cancelled"),
            Kind::Refunded => format!("Your Mercato order {order_id} has been refunded"),
        }
    }
}

/// Where mail goes and whom it comes from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `smtp://host:port` (plain, or `?tls=required` for STARTTLS) or
    /// `smtps://user:pass@host:465`; may carry credentials.
    pub smtp_url: Secret<String>,
    pub from: String,
    /// A mail server that hangs fails the try after this long.
    pub timeout: Duration,
}

impl Settings {
    /// Checks both values the way the mailer will use them, so a typo stops
    /// the server at startup instead of dead-lettering every email.
    pub fn new(smtp_url: &str, from: &str) -> std::result::Result<Settings, String> {
        if !(smtp_url.starts_with("smtp://") || smtp_url.starts_with("smtps://")) {
            return Err(format!("{} is not an smtp:// or smtps:// URL", redact(smtp_url)));
        }
        AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url).map_err(|e| format!("{} cannot be used: {e}", redact(smtp_url)))?;
        from.parse::<Mailbox>().map_err(|e| format!("{from:?} is not a mailbox ({e})"))?;
        Ok(Settings { smtp_url: Secret::new(smtp_url.to_owned()), from: from.to_owned(), timeout: Duration::from_secs(10) })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new(DEFAULT_SMTP_URL, DEFAULT_FROM).expect("the defaults are valid")
    }
}

/// One email, ready to send: everything in it is decided by the event and
/// the order, so composing it again gives the same message.
#[derive(Debug, Clone)]
pub struct Email {
    pub event_id: Uuid,
    pub kind: Kind,
    pub to: String,
    pub to_name: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The event's time: a repeat carries the same Date as the first copy.
    pub date: DateTime<Utc>,
}

impl Email {
    pub fn message_id(&self) -> String {
        message_id(self.event_id)
    }

    fn message(&self, from: &Mailbox) -> Result<Message> {
        let address = self.to.parse().map_err(|e| Error::internal(format!("customer address {:?} cannot be mailed: {e}", self.to)))?;
        Message::builder()
            .message_id(Some(self.message_id()))
            .date(self.date.into())
            .from(from.clone())
            .to(Mailbox::new(Some(self.to_name.clone()), address))
            .subject(self.subject.clone())
            .multipart(MultiPart::alternative_plain_html(self.text.clone(), self.html.clone()))
            .map_err(|e| Error::internal(format!("cannot build the email: {e}")))
    }
}

/// The SMTP server did not take a message.
#[derive(Debug, thiserror::Error)]
#[error("the SMTP server at {target} did not take the message")]
pub struct SendError {
    target: String,
    #[source]
    source: lettre::transport::smtp::Error,
}

/// Composes and sends the customer's emails; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    shop: Shop,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The SMTP URL without credentials, for errors and logs.
    target: String,
}

impl Notifier {
    pub fn new(shop: Shop, settings: &Settings) -> Result<Notifier> {
        let url = settings.smtp_url.expose();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| Error::Invalid(format!("SMTP_URL {} cannot be used: {e}", redact(url))))?
            .timeout(Some(settings.timeout))
            .build();
        let from = settings.from.parse().map_err(|e| Error::Invalid(format!("MERCATO_MAIL_FROM {:?} is not a mailbox: {e}", settings.from)))?;
        Ok(Notifier { shop, transport, from, target: redact(url) })
    }

    /// Handles one event of the order-events topic: the email it calls for,
    /// once per event id (see the module's notes for the order of steps).
    /// Events that email nobody are passed over without a record.
    pub async fn handle(&self, event: &Event) -> Result<()> {
        if Kind::of(&event.event_type).is_none() {
            return Ok(());
        }
        let mut tx = self.shop.db.begin().await?;
        if !dedup::first_time(&mut tx, CONSUMER, event.id).await? {
            tracing::debug!(event = %event.id, "email already sent for this event");
            return Ok(());
        }
        if let Some(email) = self.compose(event).await? {
            self.send(&email).await?;
        }
        // Sent: only now may the event count as handled. If this commit
        // fails the event comes again and the same message goes again.
        tx.commit().await?;
        Ok(())
    }

    /// The email `event` calls for, or none (not an emailing event, or the
    /// order, the SKU or the customer is gone).
    pub async fn compose(&self, event: &Event) -> Result<Option<Email>> {
        let Some(kind) = Kind::of(&event.event_type) else {
            return Ok(None);
        };
        let found = match kind {
            Kind::Promoted => self.promotion(event).await?,
            _ => self.order_content(event, kind).await?,
        };
        let Some((customer, content)) = found else {
            return Ok(None);
        };
        let (text, html) = render(kind, &content);
        Ok(Some(Email {
            event_id: event.id,
            kind,
            to: customer.email,
            to_name: customer.name,
            subject: kind.subject(event.aggregate_id),
            text,
            html,
            date: event.occurred_at,
        }))
    }

    /// An order event's customer and what their email says.
    async fn order_content(&self, event: &Event, kind: Kind) -> Result<Option<(model::account::User, Content)>> {
        let order_id = event.aggregate_id;
        let orders = self.shop.orders();
        let Some(recipient) = orders.recipient(order_id).await? else {
            tracing::warn!(event = %event.id, order = %order_id, "no such order: no email");
            return Ok(None);
        };
        let Some(customer) = self.shop.accounts().user(recipient.user_id).await? else {
            tracing::warn!(event = %event.id, order = %order_id, "the order's customer is gone: no email");
            return Ok(None);
        };
        let order = orders.get(recipient.user_id, order_id).await?;
        // The shipped event names its parcel when fulfilment put it in the
        // payload; otherwise the order's shipment records do.
        let tracking = match kind {
            Kind::Shipped => match tracking_in(&event.payload) {
                Some(tracking) => vec![tracking],
                None => orders.tracking(order_id).await?,
            },
            _ => Vec::new(),
        };
        let content = Content {
            name: customer.name.clone(),
            order_id,
            items: order.items,
            total_cents: order.total_cents,
            currency: order.currency,
            address: address_lines(&recipient.shipping_address),
            tracking,
            pay_by: None,
        };
        Ok(Some((customer, content)))
    }

    /// A promotion's customer and what their email says: the unit, its sale
    /// price and when the hold runs out, all from the event (what was
    /// promoted), the title from the catalog.
    async fn promotion(&self, event: &Event) -> Result<Option<(model::account::User, Content)>> {
        let p = &event.payload;
        let uuid = |key: &str| p.get(key).and_then(|v| v.as_str()).and_then(|v| Uuid::try_parse(v).ok());
        let pay_by = p.get("pay_by").and_then(|v| v.as_str()).and_then(|v| DateTime::parse_from_rfc3339(v).ok());
        let (Some(user_id), Some(sku_id), Some(quantity), Some(unit_cents), Some(pay_by)) =
            (uuid("user_id"), uuid("sku_id"), p.get("quantity").and_then(|v| v.as_u64()), p.get("unit_cents").and_then(|v| v.as_i64()), pay_by)
        else {
            return Err(Error::internal(format!("flash.promoted event {} lacks user_id, sku_id, quantity, unit_cents or pay_by", event.id)));
        };
        let Some(customer) = self.shop.accounts().user(user_id).await? else {
            tracing::warn!(event = %event.id, user = %user_id, "the promoted customer is gone: no email");
            return Ok(None);
        };
        let Some(sku) = self.shop.catalog().sku_details(&[sku_id]).await?.remove(&sku_id) else {
            tracing::warn!(event = %event.id, sku = %sku_id, "the promoted SKU is gone: no email");
            return Ok(None);
        };
        let quantity = quantity.min(u64::from(u32::MAX)) as u32;
        let content = Content {
            name: customer.name.clone(),
            order_id: Uuid::nil(),
            items: vec![OrderItem { sku_id, product_id: sku.product_id, title: sku.title, quantity, unit_cents }],
            total_cents: unit_cents * i64::from(quantity),
            currency: sku.currency,
            address: Vec::new(),
            tracking: Vec::new(),
            pay_by: Some(pay_by.with_timezone(&Utc)),
        };
        Ok(Some((customer, content)))
    }

    /// Hands `email` to the SMTP server. Not once-only by itself: callers
    /// other than [`Notifier::handle`] are tests and benchmarks.
    pub async fn send(&self, email: &Email) -> Result<()> {
        let message = email.message(&self.from)?;
        crate::checkout::fault::point("notifications_before_send");
        self.transport
            .send(message)
            .await
            .map_err(|source| {
                // A server that refused this message for good (5xx) is the
                // message's problem; anything else (down, busy, 4xx) is the
                // server's, and the event waits for it instead of being
                // dead-lettered (see server::workers::consumer).
                let permanent = source.is_permanent();
                let err = SendError { target: self.target.clone(), source };
                if permanent {
                    Error::internal(err)
                } else {
                    Error::Unavailable { dependency: crate::error::Dependency::Mail, retry_after: std::time::Duration::from_secs(5), source: Box::new(err) }
                }
            })?;
        crate::checkout::fault::point("notifications_after_send");
        tracing::info!(event = %email.event_id, kind = ?email.kind, "email sent");
        Ok(())
    }
}

/// What the templates are filled with.
#[derive(Debug, Clone)]
pub struct Content {
    pub name: String,
    pub order_id: Uuid,
    pub items: Vec<OrderItem>,
    pub total_cents: i64,
    pub currency: String,
    pub address: Vec<String>,
    /// One per parcel; empty when not known (yet).
    pub tracking: Vec<Tracking>,
    /// When a promoted customer's hold runs out.
    pub pay_by: Option<DateTime<Utc>>,
}

/// (plain text, HTML) for `kind`. Every value is escaped in the HTML part;
/// the plain part is not markup, so it keeps them as they are.
pub fn render(kind: Kind, content: &Content) -> (String, String) {
    let items: Vec<String> = content
        .items
        .iter()
        .map(|item| format!("{} × {} at {}", item.quantity, item.title, money(item.unit_cents, &content.currency)))
        .collect();
    let tracking = if content.tracking.is_empty() {
        vec!["The tracking number is not known yet; your order's page will show it.".to_owned()]
    } else {
        content.tracking.iter().map(|t| format!("Carrier: {}, tracking number: {}", t.carrier, t.tracking_number)).collect()
    };
    let vars = [
        ("name", Slot::Text(content.name.clone())),
        ("order_id", Slot::Text(content.order_id.to_string())),
        ("items", Slot::Lines(items)),
        ("total", Slot::Text(money(content.total_cents, &content.currency))),
        ("address", Slot::Lines(content.address.clone())),
        ("tracking", Slot::Lines(tracking)),
        ("pay_by", Slot::Text(content.pay_by.map(|t| t.format("%H:%M UTC on %-d %B %Y").to_string()).unwrap_or_default())),
    ];
    let (text, html) = kind.templates();
    (fill(text, &vars, false), fill(html, &vars, true))
}

enum Slot {
    Text(String),
    Lines(Vec<String>),
}

/// Replaces each `{{name}}` in one pass, so a value that itself contains
/// `{{…}}` (a product title is the seller's text) is never expanded. An
/// unknown name stays as written; the template tests catch that.
fn fill(template: &str, vars: &[(&str, Slot)], html: bool) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        match vars.iter().find(|(k, _)| *k == name) {
            Some((_, Slot::Text(value))) if html => out.push_str(&escape(value)),
            Some((_, Slot::Text(value))) => out.push_str(value),
            Some((_, Slot::Lines(lines))) if html => out.push_str(&lines.iter().map(|l| escape(l)).collect::<Vec<_>>().join("<br>\n")),
            Some((_, Slot::Lines(lines))) => out.push_str(&lines.join("\n")),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// HTML-escapes text for element content and quoted attributes alike.
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02} {currency}", cents.abs() / 100, cents.abs() % 100)
}

/// A shipping address as the lines of an envelope. Checkout stores what the
/// customer typed as JSON; unknown fields are left out.
fn address_lines(address: &serde_json::Value) -> Vec<String> {
    let field = |key: &str| address.get(key).and_then(|v| v.as_str()).map(str::trim).filter(|v| !v.is_empty());
    let mut lines: Vec<String> = ["name", "line1", "line2"].into_iter().filter_map(field).map(str::to_owned).collect();
    let town = [field("postal_code"), field("city")].into_iter().flatten().collect::<Vec<_>>().join(" ");
    if !town.is_empty() {
        lines.push(town);
    }
    lines.extend(field("country").map(str::to_owned));
    lines
}

/// Carrier and tracking number when the shipped event carries them.
fn tracking_in(payload: &serde_json::Value) -> Option<Tracking> {
    let field = |key: &str| payload.get(key).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(str::to_owned);
    Some(Tracking { carrier: field("carrier")?, tracking_number: field("tracking_number")? })
}

/// The URL without `user:password@`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => format!("{}://{}", &url[..scheme_end], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> Content {
        Content {
            name: "Ada <Lovelace>".into(),
            order_id: Uuid::nil(),
            items: vec![OrderItem {
                sku_id: Uuid::nil(),
                product_id: Uuid::nil(),
                title: "<script>alert('x')</script> & {{name}}".into(),
                quantity: 2,
                unit_cents: 1205,
            }],
            total_cents: 2410,
            currency: "EUR".into(),
            address: vec!["Ada".into(), "12 St James's Square".into(), "SW1Y 4JH London".into(), "GB".into()],
            tracking: vec![Tracking { carrier: "DHL".into(), tracking_number: "JD<01>".into() }],
            pay_by: Some(DateTime::parse_from_rfc3339("2026-12-02T10:35:00Z").unwrap().with_timezone(&Utc)),
        }
    }

    #[test]
    fn every_template_fills_every_placeholder() {
        let mut plain = content();
        plain.items[0].title = "Desk lamp".into();
        for kind in [Kind::Placed, Kind::Shipped, Kind::Delivered, Kind::Cancelled, Kind::Refunded] {
            let (text, html) = render(kind, &plain);
            assert!(!text.contains("{{"), "{kind:?} text: {text}");
            assert!(!html.contains("{{"), "{kind:?} html: {html}");
            assert!(text.contains("00000000-0000-0000-0000-000000000000"), "{kind:?}");
        }
    }

    #[test]
    fn a_promotion_names_the_unit_its_price_and_when_the_hold_runs_out() {
        let mut plain = content();
        plain.items[0].title = "Desk lamp".into();
        let (text, html) = render(Kind::Promoted, &plain);
        for part in [&text, &html] {
            assert!(!part.contains("{{"), "{part}");
            assert!(part.contains("2 × Desk lamp at 12.05 EUR"), "{part}");
            assert!(part.contains("10:35 UTC on 2 December 2026"), "{part}");
        }
        assert_eq!(Kind::of("flash.promoted"), Some(Kind::Promoted));
    }

    #[test]
    fn html_escapes_every_value_and_text_keeps_them() {
        let (text, html) = render(Kind::Shipped, &content());
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; {{name}}"), "{html}");
        assert!(html.contains("Ada &lt;Lovelace&gt;"));
        assert!(html.contains("JD&lt;01&gt;"));
        assert!(html.contains("12 St James&#39;s Square<br>"));
        // One pass: the title's `{{name}}` is not expanded.
        assert!(text.contains("2 × <script>alert('x')</script> & {{name}} at 12.05 EUR"), "{text}");
        assert!(text.contains("Carrier: DHL, tracking number: JD<01>"));
        assert!(text.contains("Hello Ada <Lovelace>,"));
    }

    #[test]
    fn shipped_without_tracking_says_so() {
        let (text, _) = render(Kind::Shipped, &Content { tracking: Vec::new(), ..content() });
        assert!(text.contains("tracking number is not known yet"), "{text}");
        assert_eq!(tracking_in(&serde_json::json!({"carrier": "UPS", "tracking_number": "1Z"})), Some(Tracking { carrier: "UPS".into(), tracking_number: "1Z".into() }));
        assert_eq!(tracking_in(&serde_json::json!({"from": "CONFIRMED", "to": "SHIPPED"})), None);
    }

    #[test]
    fn message_ids_come_from_the_event() {
        let id = Uuid::now_v7();
        assert_eq!(message_id(id), format!("<{id}@mercato.local>"));
        assert_eq!(Kind::of("order.confirmed"), None);
        assert_eq!(Kind::of("order.refunded"), Some(Kind::Refunded));
    }

    #[test]
    fn settings_are_checked_up_front() {
        assert!(Settings::new("smtp://127.0.0.1:1025", DEFAULT_FROM).is_ok());
        assert!(Settings::new("smtps://u:secret@mail.example.com:465", DEFAULT_FROM).is_ok());
        let err = Settings::new("http://u:secret@mail.example.com", DEFAULT_FROM).unwrap_err();
        assert!(!err.contains("secret"), "{err}");
        assert!(Settings::new("smtp://127.0.0.1:1025", "not an address").is_err());
        assert_eq!(money(-5, "EUR"), "-0.05 EUR");
    }
}
