//! A real MQTT client (rumqttc) whose event loop runs in a task.

use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
    SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

use super::WAIT;

pub fn options(port: u16, client_id: &str, user: Option<(&str, &str)>) -> MqttOptions {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    if let Some((user, pass)) = user {
        opts.set_credentials(user, pass);
    }
    opts
}

#[derive(Debug)]
pub enum Ev {
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    SubAck(Vec<SubscribeReasonCode>),
    Closed(String),
}

/// A connected rumqttc client whose event loop runs in a task.
pub struct Client {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Ev>,
    pub seen: Vec<Ev>,
}

pub async fn try_connect(opts: MqttOptions) -> Result<Client, ConnectionError> {
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    wait_connack(&mut eventloop).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(Ev::Publish {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    });
                }
                Ok(Event::Incoming(Packet::SubAck(s))) => {
                    let _ = tx.send(Ev::SubAck(s.return_codes));
                }
                Ok(_) => {}
                Err(e) => {
                    // Stop here: rumqttc would reconnect on the next poll.
                    let _ = tx.send(Ev::Closed(e.to_string()));
                    return;
                }
            }
        }
    });
    Ok(Client {
        client,
        rx,
        seen: Vec::new(),
    })
}

async fn wait_connack(eventloop: &mut EventLoop) -> Result<(), ConnectionError> {
    let deadline = Instant::now() + WAIT;
    loop {
        match timeout_at(deadline, eventloop.poll())
            .await
            .expect("no CONNACK in time")
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

pub async fn connect(port: u16, client_id: &str, user: &str, pass: &str) -> Client {
    try_connect(options(port, client_id, Some((user, pass))))
        .await
        .unwrap_or_else(|e| panic!("{user} could not connect: {e}"))
}

pub async fn refused(opts: MqttOptions) -> ConnectReturnCode {
    match try_connect(opts).await {
        Err(ConnectionError::ConnectionRefused(code)) => code,
        Err(e) => panic!("expected a CONNACK refusal, got {e}"),
        Ok(_) => panic!("expected a CONNACK refusal, the connection was accepted"),
    }
}

impl Client {
    pub async fn next(&mut self, deadline: Instant) -> Option<&Ev> {
        match timeout_at(deadline, self.rx.recv()).await {
            Ok(Some(ev)) => {
                self.seen.push(ev);
                self.seen.last()
            }
            _ => None,
        }
    }

    pub async fn subscribe(&mut self, filter: &str) -> SubscribeReasonCode {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            match self.next(deadline).await {
                Some(Ev::SubAck(codes)) => return codes[0],
                Some(_) => {}
                None => panic!("no SUBACK for {filter}: {:?}", self.seen),
            }
        }
    }

    pub async fn publish(&self, topic: &str, payload: &str, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }

    /// Waits for `payload` on `topic`; returns its retain flag.
    pub async fn expect(&mut self, topic: &str, payload: &str) -> bool {
        let deadline = Instant::now() + WAIT;
        let found = |seen: &[Ev]| {
            seen.iter().find_map(|ev| match ev {
                Ev::Publish {
                    topic: t,
                    payload: p,
                    retain,
                } if t == topic && p == payload.as_bytes() => Some(*retain),
                _ => None,
            })
        };
        loop {
            if let Some(retain) = found(&self.seen) {
                return retain;
            }
            if self.next(deadline).await.is_none() {
                panic!("{topic} {payload:?} did not arrive: {:?}", self.seen);
            }
        }
    }

    pub fn saw_payload(&self, payload: &str) -> bool {
        self.seen
            .iter()
            .any(|ev| matches!(ev, Ev::Publish { payload: p, .. } if p == payload.as_bytes()))
    }

    /// Waits until the broker closed the connection.
    pub async fn expect_closed(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.next(deadline).await {
                Some(Ev::Closed(why)) => return why.clone(),
                Some(_) => {}
                None => panic!("the connection is still open: {:?}", self.seen),
            }
        }
    }
}
