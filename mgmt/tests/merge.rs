//! Un-merging from the desk moves back exactly what the merge moved (the
//! merged contact's number, conversations, notes and the tags it brought),
//! keeps what happened since with the survivor, and waits for a later merge
//! of the survivor to be undone first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::desk::{Browser, login, routed, setup};
use common::{Mgmt, wait_for};

async fn contact_of(m: &Mgmt, conv: &str) -> String {
    m.get(&format!("/api/v1/conversations/{conv}")).await.1["contact"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Posts a desk form and returns the redirect's error code, if any.
async fn post(b: &Browser<'_>, path: &str, form: &str) -> Option<String> {
    let r = b.post(path, form).await;
    assert_eq!(r.status, 303, "{path} {form}: {}", r.body);
    let to = r.header("location").unwrap_or_default();
    to.split("err=")
        .nth(1)
        .map(|e| e.split('&').next().unwrap_or_default().to_string())
}

/// The tags the customer panel of `conv` shows.
async fn tags(b: &Browser<'_>, conv: &str) -> Vec<String> {
    let page = b.get(&format!("/desk/c/{conv}")).await.body;
    let mut out: Vec<String> = page
        .split("data-testid=\"tag\">")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmerge_moves_back_what_the_merge_moved_once_later_merges_are_undone() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    let sofia = login(&m, "sofia", "sofia-password").await;
    let (num_a, num_b, num_c) = ("+380501110001", "+380501110002", "+380501110003");
    dev.sms("gsm0", num_a, "A").await;
    let a1 = routed(&m, num_a).await;
    dev.sms("gsm1", num_b, "B").await;
    let b1 = routed(&m, num_b).await;
    dev.sms("gsm0", num_c, "C").await;
    let c1 = routed(&m, num_c).await;
    let (ca, cb, cc) = (
        contact_of(&m, &a1).await,
        contact_of(&m, &b1).await,
        contact_of(&m, &c1).await,
    );
    for (c, conv, tag) in [
        (&ca, &a1, "vip"),
        (&cb, &b1, "vip"),
        (&cb, &b1, "late-payer"),
    ] {
        let form = format!("tag={tag}&conv={conv}");
        assert_eq!(
            post(&sofia, &format!("/desk/contact/{c}/tag"), &form).await,
            None
        );
    }
    let form = format!("text=B+pays+on+Fridays&conv={b1}");
    assert_eq!(
        post(&sofia, &format!("/desk/contact/{cb}/note"), &form).await,
        None
    );

    // B into A (B's conversation resolved first), then A into C.
    assert_eq!(
        post(&sofia, &format!("/desk/c/{b1}/action"), "do=resolve").await,
        None
    );
    let form = format!("with=%2B380501110002&conv={a1}");
    assert_eq!(
        post(&sofia, &format!("/desk/contact/{ca}/merge"), &form).await,
        None
    );
    assert_eq!(contact_of(&m, &b1).await, ca);
    // B's number writes while merged: it lands in A's open conversation.
    dev.sms("gsm0", num_b, "B again, while merged").await;
    m.wait_conversation(&a1, |v| {
        v["last_message_preview"] == "B again, while merged"
    })
    .await;
    assert_eq!(
        tags(&sofia, &a1).await,
        ["late-payer", "vip"],
        "A has B's tags, vip once"
    );
    assert_eq!(
        post(&sofia, &format!("/desk/c/{c1}/action"), "do=resolve").await,
        None
    );
    let form = format!("with=%2B380501110001&conv={c1}");
    assert_eq!(
        post(&sofia, &format!("/desk/contact/{cc}/merge"), &form).await,
        None
    );

    // Undoing B's merge waits for A's (into C) to be undone: said on the page.
    let undo_b = format!("/desk/contact/{cb}/unmerge");
    assert_eq!(
        post(&sofia, &undo_b, &format!("conv={c1}"))
            .await
            .as_deref(),
        Some("unmerge_later")
    );
    let page = sofia
        .get(&format!("/desk/c/{c1}?err=unmerge_later"))
        .await
        .body;
    assert!(
        page.contains("This customer was merged into another since: undo that merge first."),
        "{page}"
    );
    assert_eq!(contact_of(&m, &b1).await, cc, "nothing moved");

    assert_eq!(
        post(
            &sofia,
            &format!("/desk/contact/{ca}/unmerge"),
            &format!("conv={c1}")
        )
        .await,
        None
    );
    assert_eq!(post(&sofia, &undo_b, &format!("conv={a1}")).await, None);
    // Undone twice: said, nothing changes.
    assert_eq!(
        post(&sofia, &undo_b, &format!("conv={a1}"))
            .await
            .as_deref(),
        Some("unmerge_none")
    );

    // B has its conversation, tags and note back; A keeps its own vip and
    // the conversation B's number wrote into while merged.
    assert_eq!(contact_of(&m, &b1).await, cb);
    assert_eq!(contact_of(&m, &a1).await, ca);
    assert_eq!(contact_of(&m, &c1).await, cc);
    assert_eq!(tags(&sofia, &b1).await, ["late-payer", "vip"]);
    assert_eq!(tags(&sofia, &a1).await, ["vip"]);
    let page = sofia.get(&format!("/desk/c/{b1}")).await.body;
    assert!(page.contains("B pays on Fridays"), "{page}");
    assert!(!page.contains("data-testid=\"merged\""), "{page}");
    // B's number is B's again: its next message starts B's new conversation.
    dev.sms("gsm1", num_b, "B after the undo").await;
    let l = m
        .wait_list("?number=%2B380501110002", |l| {
            l.iter()
                .any(|c| c["last_message_preview"] == "B after the undo")
        })
        .await;
    let b2 = l
        .iter()
        .find(|c| c["last_message_preview"] == "B after the undo")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(b2, b1);
    wait_for(|| async { (contact_of(&m, &b2).await == cb).then_some(()) }).await;
    m.stop().await;
}
