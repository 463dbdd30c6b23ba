//! Simulated customers for the demo: they text the branch lines at a steady
//! pace (Cyrillic and Latin, some long enough to be multipart) and answer the
//! replies they receive, so an agent has a conversation to work with.

use crate::SimModem;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One customer: a phone number and a language.
#[derive(Debug, Clone)]
pub struct Customer {
    pub number: String,
    pub lang: &'static str,
}

/// Messages a customer opens with, by language.
const OPENERS: &[(&str, &str)] = &[
    ("uk", "Добрий день! Коли працює ваше відділення в суботу?"),
    (
        "uk",
        "Привіт, мені не прийшла посилка 4711. Можете перевірити, будь ласка? Я чекаю вже тиждень і ніхто не відповідає на дзвінки у відділенні.",
    ),
    ("ru", "Здравствуйте! Хочу уточнить баланс по договору."),
    (
        "ro",
        "Bună ziua, aș dori o programare pentru mâine dimineață.",
    ),
    ("en", "Hello, is my order ready for pickup?"),
    (
        "en",
        "Hi! I was charged twice for the same delivery last week, order 8841. Could you please look into it and refund one of the payments? Thanks a lot.",
    ),
];

/// What a customer says back after an agent's reply, by language.
fn follow_up(lang: &str) -> &'static str {
    match lang {
        "uk" => "Дякую! 👍",
        "ru" => "Спасибо, понятно.",
        "ro" => "Mulțumesc!",
        _ => "Thanks, that helps!",
    }
}

/// The default demo cast.
pub fn demo_customers() -> Vec<Customer> {
    vec![
        Customer {
            number: "+380501234567".into(),
            lang: "uk",
        },
        Customer {
            number: "+380672223344".into(),
            lang: "uk",
        },
        Customer {
            number: "+79161234567".into(),
            lang: "ru",
        },
        Customer {
            number: "+40721234567".into(),
            lang: "ro",
        },
        Customer {
            number: "+447700900123".into(),
            lang: "en",
        },
    ]
}

/// Drives `modems` until `stop`: every `pace`, the next customer texts the
/// next line; every reply a customer receives is answered once after `think`.
pub async fn run(
    modems: Vec<SimModem>,
    customers: Vec<Customer>,
    pace: Duration,
    think: Duration,
    stop: CancellationToken,
) {
    if modems.is_empty() || customers.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(pace.max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: Vec<std::collections::HashSet<usize>> = vec![Default::default(); modems.len()];
    let mut n = 0usize;
    let mut answers: Vec<(tokio::time::Instant, usize, String, &'static str)> = Vec::new();
    let mut poll = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                let (Some(c), Some(m)) = (customers.get(n % customers.len()), modems.get(n % modems.len())) else {
                    continue;
                };
                let text = OPENERS
                    .iter()
                    .filter(|(l, _)| *l == c.lang)
                    .nth((n / customers.len()) % 2)
                    .or_else(|| OPENERS.iter().find(|(l, _)| *l == c.lang))
                    .map(|(_, t)| *t)
                    .unwrap_or("Hello");
                match m.inject_sms(&c.number, text) {
                    Ok(parts) => tracing::info!(from = %c.number, parts, "customer texted the branch"),
                    Err(e) => tracing::warn!(from = %c.number, error = %e, "customer could not text"),
                }
                n += 1;
            }
            _ = poll.tick() => {
                for (i, m) in modems.iter().enumerate() {
                    let Some(done) = seen.get_mut(i) else { continue };
                    for (j, s) in m.sent().iter().enumerate() {
                        if !s.complete || !done.insert(j) {
                            continue;
                        }
                        if let Some(c) = customers.iter().find(|c| c.number == s.to) {
                            tracing::info!(to = %s.to, text = %s.text, "customer got a reply");
                            answers.push((tokio::time::Instant::now() + think, i, c.number.clone(), follow_up(c.lang)));
                        }
                    }
                }
                let now = tokio::time::Instant::now();
                answers.retain(|(at, i, number, text)| {
                    if *at > now {
                        return true;
                    }
                    if let Some(m) = modems.get(*i) {
                        let _ = m.inject_sms(number, text);
                    }
                    false
                });
            }
        }
    }
}
