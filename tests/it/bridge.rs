//! The Bridge against a real Redis: cross-instance delivery, own publications ignored,
//! reference-counted subscriptions, and resubscription after the connection is killed.

use std::time::Duration;

use actix::prelude::*;
use mission_control::actors::bridge::{
    Bridge, BusMessage, Probe, Publish, Stats, Subscribe, Unsubscribe,
};
use tokio::sync::mpsc;

use crate::harness::{eventually, redis_url, RedisProcess};

struct Collector(mpsc::UnboundedSender<String>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<BusMessage> for Collector {
    type Result = ();
    fn handle(&mut self, msg: BusMessage, _: &mut Context<Self>) {
        let _ = self.0.send(msg.payload.to_string());
    }
}

fn collector() -> (Recipient<BusMessage>, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Collector(tx).start().recipient(), rx)
}

fn bridge(url: &str) -> Addr<Bridge> {
    let id = uuid::Uuid::new_v4().to_string();
    let pool = mission_control::db::cache::pool(url, 2).unwrap();
    Bridge::redis(&id, url, pool).unwrap().start()
}

async fn ready(bridge: &Addr<Bridge>) -> bool {
    eventually(Duration::from_secs(10), || async {
        bridge
            .send(Probe {
                timeout: Duration::from_millis(500),
            })
            .await
            .unwrap()
            .is_ok()
    })
    .await
}

async fn publish(bridge: &Addr<Bridge>, channel: &str, payload: &str) {
    bridge
        .send(Publish {
            channel: channel.into(),
            payload: payload.into(),
        })
        .await
        .unwrap()
        .unwrap();
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .ok()
        .flatten()
}

async fn numsub(channel: &str) -> i64 {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .unwrap();
    n
}

#[actix_web::test]
async fn publications_reach_other_instances_but_not_their_own() {
    let url = redis_url();
    let (a, b) = (bridge(&url), bridge(&url));
    assert!(ready(&a).await && ready(&b).await);
    let channel = format!("test:{}", uuid::Uuid::new_v4());
    let (on_a, mut rx_a) = collector();
    let (on_b, mut rx_b) = collector();
    a.send(Subscribe {
        channel: channel.clone(),
        subscriber: on_a,
    })
    .await
    .unwrap();
    b.send(Subscribe {
        channel: channel.clone(),
        subscriber: on_b,
    })
    .await
    .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            numsub(&channel).await == 2
        })
        .await
    );

    publish(&a, &channel, "hello from a").await;
    assert_eq!(next(&mut rx_b).await.as_deref(), Some("hello from a"));
    publish(&b, &channel, "hello from b").await;
    assert_eq!(next(&mut rx_a).await.as_deref(), Some("hello from b"));
    // Each side saw only the other's publication.
    assert!(rx_a.try_recv().is_err() && rx_b.try_recv().is_err());
}

#[actix_web::test]
async fn subscriptions_are_reference_counted() {
    let url = redis_url();
    let (a, b) = (bridge(&url), bridge(&url));
    assert!(ready(&a).await && ready(&b).await);
    let channel = format!("test:{}", uuid::Uuid::new_v4());
    let (first, mut rx1) = collector();
    let (second, mut rx2) = collector();
    b.send(Subscribe {
        channel: channel.clone(),
        subscriber: first.clone(),
    })
    .await
    .unwrap();
    b.send(Subscribe {
        channel: channel.clone(),
        subscriber: second.clone(),
    })
    .await
    .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            numsub(&channel).await == 1
        })
        .await
    );

    b.send(Unsubscribe {
        channel: channel.clone(),
        subscriber: first,
    })
    .await
    .unwrap();
    publish(&a, &channel, "still there").await;
    assert_eq!(next(&mut rx2).await.as_deref(), Some("still there"));
    assert!(rx1.try_recv().is_err());

    b.send(Unsubscribe {
        channel: channel.clone(),
        subscriber: second,
    })
    .await
    .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            numsub(&channel).await == 0
        })
        .await
    );
    let stats = b.send(Stats).await.unwrap();
    assert_eq!((stats.channels, stats.subscribers), (0, 0));
}

#[actix_web::test]
async fn subscriptions_survive_a_redis_restart() {
    let mut redis = RedisProcess::start();
    let url = redis.url();
    let (a, b) = (bridge(&url), bridge(&url));
    assert!(ready(&a).await && ready(&b).await);
    let (sub, mut rx) = collector();
    b.send(Subscribe {
        channel: "test:restart".into(),
        subscriber: sub,
    })
    .await
    .unwrap();

    redis.stop();
    assert!(
        eventually(Duration::from_secs(15), || async {
            !b.send(Stats).await.unwrap().link_up
        })
        .await,
        "bridge did not notice Redis going away"
    );
    redis.restart();
    assert!(
        ready(&a).await && ready(&b).await,
        "bridges did not reconnect"
    );

    // The subscription made before the restart works again without anyone resubscribing.
    let mut delivered = false;
    for _ in 0..50 {
        publish(&a, "test:restart", "after restart").await;
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            delivered = true;
            break;
        }
    }
    assert!(delivered);
}

#[actix_web::test]
async fn in_process_bridge_is_always_ready_and_publishes_to_nobody_else() {
    let bridge = Bridge::in_process("solo").start();
    assert!(bridge
        .send(Probe {
            timeout: Duration::from_millis(100)
        })
        .await
        .unwrap()
        .is_ok());
    let (sub, mut rx) = collector();
    bridge
        .send(Subscribe {
            channel: "c".into(),
            subscriber: sub,
        })
        .await
        .unwrap();
    publish(&bridge, "c", "x").await;
    assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv())
        .await
        .is_err());
}
