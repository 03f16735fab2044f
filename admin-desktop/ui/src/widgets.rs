//! Small pieces the screens share: money in and out, times, ids.

use leptos::prelude::*;

/// "12.50" (or "12,50", "12") in minor units; `None` if it is not a price.
pub fn parse_price(raw: &str) -> Option<i64> {
    let raw = raw.trim().replace(',', ".");
    let (whole, frac) = raw.split_once('.').unwrap_or((&raw, ""));
    if whole.is_empty() || !whole.chars().all(|c| c.is_ascii_digit()) || frac.len() > 2 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let cents = format!("{frac:0<2}").parse::<i64>().ok()?;
    whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(cents)
}

pub fn price_input(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The last 8 characters of an id: enough to tell orders apart on screen
/// (ids are UUIDv7, whose first characters are the time they were made).
pub fn short_id(id: uuid::Uuid) -> String {
    let text = id.to_string();
    text[text.len() - 8..].to_owned()
}

/// An RFC 3339 time as the seller's local "7 Dec 2026, 10:05".
pub fn local_time(rfc3339: &str) -> String {
    let date = js_sys::Date::new(&rfc3339.into());
    if date.get_time().is_nan() {
        return rfc3339.to_owned();
    }
    let options = js_sys::Object::new();
    for (k, v) in [("day", "numeric"), ("month", "short"), ("year", "numeric"), ("hour", "2-digit"), ("minute", "2-digit")] {
        let _ = js_sys::Reflect::set(&options, &k.into(), &v.into());
    }
    date.to_locale_string("en-GB", &options).as_string().unwrap_or_else(|| rfc3339.to_owned())
}

/// A `datetime-local` field's value (the seller's local time) as RFC 3339 UTC.
pub fn local_input_to_rfc3339(value: &str) -> Option<String> {
    let date = js_sys::Date::new(&value.into());
    (!value.is_empty() && !date.get_time().is_nan()).then(|| date.to_iso_string().as_string().unwrap_or_default())
}

/// `now + minutes` as a `datetime-local` value, in local time.
pub fn local_input_in(minutes: f64) -> String {
    let date = js_sys::Date::new(&(js_sys::Date::now() + minutes * 60_000.0).into());
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        date.get_full_year(),
        date.get_month() + 1,
        date.get_date(),
        date.get_hours(),
        date.get_minutes()
    )
}

pub fn new_key() -> uuid::Uuid {
    let raw = window().crypto().map(|c| c.random_uuid()).unwrap_or_default();
    uuid::Uuid::parse_str(&raw).unwrap_or_else(|_| uuid::Uuid::from_u128(js_sys::Date::now() as u128 ^ ((js_sys::Math::random() * 1e15) as u128) << 64))
}

/// A screen's loading, empty and failed states, in words.
#[derive(Clone, PartialEq)]
pub enum Load {
    Loading,
    Ready,
    Failed(String),
}

impl Load {
    /// Sets the state only when it changes: a screen re-renders its whole
    /// table when its state is set, which would replace rows under the
    /// seller's cursor on every refresh.
    pub fn settle(state: RwSignal<Load>, to: Load) {
        if state.with_untracked(|now| *now != to) {
            state.set(to);
        }
    }
}

/// A table's rows, each with a signal of its own: a refresh updates a row in
/// place, so what it shows beside the data (an open form, a note) stays.
pub type Rows<T> = RwSignal<Vec<(uuid::Uuid, RwSignal<T>)>>;

/// Puts a fetched page into `rows`: rows already shown get the fresh data,
/// new ones a new signal; the first page replaces the list, a later one
/// (`append`) extends it.
pub fn merge_rows<T: Send + Sync + 'static>(rows: Rows<T>, fresh: Vec<T>, id: impl Fn(&T) -> uuid::Uuid, append: bool) {
    let known = rows.get_untracked();
    let merged: Vec<_> = fresh
        .into_iter()
        .map(|item| {
            let key = id(&item);
            match known.iter().find(|(k, _)| *k == key) {
                Some((_, signal)) => {
                    signal.set(item);
                    (key, *signal)
                }
                None => (key, RwSignal::new(item)),
            }
        })
        .collect();
    if append {
        rows.update(|all| all.extend(merged));
    } else {
        rows.set(merged);
    }
}
