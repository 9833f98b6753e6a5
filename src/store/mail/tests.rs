use super::*;

fn message<'a>(key: &'a str, folder: Folder) -> NewMessage<'a> {
    NewMessage {
        mailbox_key: key,
        message_id: key,
        content_key: key,
        sender: Some("admin@rxx.nhs.uk"),
        subject: "staff list",
        sent_date: None,
        raw: b"raw message",
        folder,
        reason: None,
    }
}

fn submission(org: &str) -> NewSubmission<'_> {
    NewSubmission {
        organisation: org,
        sender: "admin@rxx.nhs.uk",
        file_name: "staff.csv",
        file: b"a,b\r\n",
        valid_rows: 1,
        refused_rows: 0,
    }
}

#[tokio::test]
async fn retention_forgets_old_raw_messages_but_keeps_pending_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = MailStore::open(dir.path()).await.unwrap();
    let now = Utc::now();
    let days = |d: i64| now - chrono::Duration::days(d);
    store
        .receive(
            &message("old-rejected", Folder::Rejected),
            None,
            &[],
            days(8),
        )
        .await
        .unwrap();
    store
        .receive(
            &message("new-rejected", Folder::Rejected),
            None,
            &[],
            days(6),
        )
        .await
        .unwrap();
    let s = submission("RXX");
    store
        .receive(
            &message("old-applied", Folder::Processed),
            Some(&s),
            &[],
            days(100),
        )
        .await
        .unwrap();
    let s = submission("RYY");
    store
        .receive(
            &message("old-pending", Folder::Processed),
            Some(&s),
            &[],
            days(100),
        )
        .await
        .unwrap();
    let applied = store
        .submissions(Some("RXX"), SubmissionStatus::Pending)
        .await
        .unwrap();
    store
        .advance(
            applied[0].no,
            SubmissionStatus::Applied,
            None,
            None,
            &[],
            now,
        )
        .await
        .unwrap();

    assert_eq!(store.purge(now, 90, 7).await.unwrap(), 2);
    let kept: Vec<(String, bool)> = sqlx::query_as(
        "SELECT mailbox_key, raw IS NOT NULL FROM mail_messages ORDER BY mailbox_key",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(
        kept,
        [
            ("new-rejected".to_owned(), true),
            ("old-applied".to_owned(), false),
            ("old-pending".to_owned(), true),
            ("old-rejected".to_owned(), false),
        ]
    );
    let pending = store
        .submissions(Some("RYY"), SubmissionStatus::Pending)
        .await
        .unwrap();
    assert_eq!(
        pending[0].file, b"a,b\r\n",
        "a pending file is kept whatever its age"
    );
    let applied = store
        .submissions(Some("RXX"), SubmissionStatus::Applied)
        .await
        .unwrap();
    assert!(
        applied[0].file.is_empty(),
        "an applied file past its days is forgotten"
    );
    // Nothing more to forget: a second purge is a no-op.
    assert_eq!(store.purge(now, 90, 7).await.unwrap(), 0);
}
