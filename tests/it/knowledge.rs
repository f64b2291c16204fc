//! The knowledge base (M12): entries and their documents through the API, keyword search in
//! English and Chinese, semantic and hybrid search with each embedding provider's request
//! shape (a loopback stand-in answering deterministic vectors), and a provider that times
//! out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use awc::http::Method;
use serde_json::{json, Value};

use crate::fixtures::{agent, as_agent, created, delete, new_board, send, switch_to_new_org};
use crate::harness::{eventually, Moto, Server, TempDir, ADMIN_TOKEN};

const DIMS: usize = 16;

/// A deterministic "meaning": words hashed into DIMS dimensions, with a few synonyms
/// sharing one, so that a semantic search finds what a keyword search cannot.
fn vector_of(text: &str) -> Vec<f32> {
    let mut v = [0.0f32; DIMS];
    for word in text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = match word {
            "automobile" | "vehicle" | "cars" => "car",
            other => other,
        };
        let h = word
            .bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
        v[(h as usize) % DIMS] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter().map(|x| x / norm).collect()
}

/// The stand-in: OpenAI at `/v1`, DashScope at `/api/v1`, Ollama at `/`, an OpenAI that
/// answers after 5 s at `/slow/v1` and one that answers 429 (Retry-After: 3) at
/// `/limited/v1`. Counts calls and keeps the last Authorization.
struct Stub {
    calls: AtomicUsize,
    authorization: Mutex<String>,
}

async fn stub() -> (String, Arc<Stub>) {
    let state = Arc::new(Stub {
        calls: AtomicUsize::new(0),
        authorization: Mutex::new(String::new()),
    });
    let data = web::Data::from(state.clone());
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).default_service(web::to(
            |req: HttpRequest, body: web::Json<Value>, stub: web::Data<Stub>| async move {
                stub.calls.fetch_add(1, Ordering::SeqCst);
                *stub.authorization.lock().unwrap() = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let texts = |v: &Value| -> Vec<String> {
                    v.as_array().map(|a| a.iter().map(|t| t.as_str().unwrap_or("").to_string()).collect()).unwrap_or_default()
                };
                match req.path() {
                    "/limited/v1/embeddings" => HttpResponse::TooManyRequests()
                        .insert_header(("Retry-After", "3"))
                        .finish(),
                    "/slow/v1/embeddings" => {
                        actix_web::rt::time::sleep(Duration::from_secs(5)).await;
                        HttpResponse::Ok().json(json!({"data": []}))
                    }
                    "/v1/embeddings" => {
                        let data: Vec<Value> = texts(&body["input"])
                            .iter()
                            .enumerate()
                            .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector_of(t)}))
                            .collect();
                        HttpResponse::Ok().json(json!({"object": "list", "data": data, "model": body["model"]}))
                    }
                    "/api/v1/services/embeddings/text-embedding/text-embedding" => {
                        let embeddings: Vec<Value> = texts(&body["input"]["texts"])
                            .iter()
                            .enumerate()
                            .map(|(i, t)| json!({"text_index": i, "embedding": vector_of(t)}))
                            .collect();
                        HttpResponse::Ok().json(json!({"output": {"embeddings": embeddings}, "request_id": "r"}))
                    }
                    "/api/embeddings" => {
                        HttpResponse::Ok().json(json!({"embedding": vector_of(body["prompt"].as_str().unwrap_or(""))}))
                    }
                    _ => HttpResponse::NotFound().finish(),
                }
            },
        ))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let address = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    (format!("http://{address}"), state)
}

async fn create_entry(server: &Server, body: Value) -> Value {
    created(server, "/api/v1/knowledge", body).await
}

async fn search(server: &Server, body: Value) -> Value {
    let reply = send(server, Method::POST, "/api/v1/knowledge/search", body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

fn titles(found: &Value) -> Vec<String> {
    found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until every entry has its embedding.
async fn all_embedded(server: &Server) {
    let db = server.db.client().await;
    let done = eventually(Duration::from_secs(20), || async {
        let row = db
            .query_one(
                "SELECT count(*) FROM knowledge_entries WHERE embed_due_at IS NOT NULL",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) == 0
    })
    .await;
    assert!(done, "entries not embedded\n{}", server.log());
}

#[actix_web::test]
async fn entries_and_documents_are_managed_within_the_organization() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let entry = create_entry(
        &server,
        json!({"title": "Deploy runbook", "content": "Roll one instance at a time.", "category": "ops",
               "tags": ["deploy"], "board_id": board["id"], "source_ref": {"doc": 1}}),
    )
    .await;
    assert_eq!(entry["documents"], json!([]));
    assert_eq!(entry["board_id"], board["id"]);
    assert_eq!(entry["is_pinned"], false);
    let other = create_entry(
        &server,
        json!({"title": "Lunch", "content": "Noodles on Fridays."}),
    )
    .await;

    // Bad bodies: blank text, long title, a board of no one, a wrong type, NUL.
    for (body, field) in [
        (json!({"title": " ", "content": "x"}), "title"),
        (json!({"title": "x".repeat(513), "content": "x"}), "title"),
        (
            json!({"title": "t", "content": "x", "board_id": uuid::Uuid::new_v4()}),
            "board_id",
        ),
        (json!({"title": "t", "content": 5}), "content"),
        (json!({"title": "t\u{0}", "content": "x"}), "title"),
    ] {
        let reply = send(&server, Method::POST, "/api/v1/knowledge", body).await;
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert!(reply.text.contains(field), "{field}: {}", reply.text);
    }

    // Pinned first; filters; the reference's page size.
    let path = format!("/api/v1/knowledge/{}", other["id"].as_str().unwrap());
    let pinned = send(&server, Method::POST, &format!("{path}/pin"), json!(null)).await;
    assert_eq!(pinned.json["is_pinned"], true, "{}", pinned.text);
    let listed = server.admin_get("/api/v1/knowledge").await;
    assert_eq!(listed.json["total"], 2, "{}", listed.text);
    assert_eq!(listed.json["items"][0]["title"], "Lunch");
    let ops = server.admin_get("/api/v1/knowledge?category=ops").await;
    assert_eq!(titles(&ops.json), ["Deploy runbook"]);
    let on_board = server
        .admin_get(&format!(
            "/api/v1/knowledge?board_id={}",
            board["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(on_board.json["total"], 1);
    assert_eq!(
        server.admin_get("/api/v1/knowledge?limit=101").await.status,
        422
    );

    // Patch: absent fields stay, null clears the category.
    let entry_path = format!("/api/v1/knowledge/{}", entry["id"].as_str().unwrap());
    let patched = send(
        &server,
        Method::PATCH,
        &entry_path,
        json!({"content": "Drain, then roll.", "category": null}),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json["title"], "Deploy runbook");
    assert_eq!(patched.json["category"], Value::Null);
    assert_eq!(patched.json["tags"], json!(["deploy"]));

    // Documents by URL (the reference's query parameters).
    let docs = format!("{entry_path}/documents");
    let bad = send(
        &server,
        Method::POST,
        &format!("{docs}?file_name=a.pdf&storage_url=ftp://x"),
        json!(null),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let linked = send(
        &server,
        Method::POST,
        &format!("{docs}?file_name=runbook.pdf&file_type=application/pdf&file_size_bytes=1200&storage_url=https://files.example.com/runbook.pdf"),
        json!(null),
    )
    .await;
    assert_eq!(linked.status, 201, "{}", linked.text);
    assert_eq!(linked.json["file_size_bytes"], 1200);
    let read = server.admin_get(&entry_path).await;
    assert_eq!(
        read.json["documents"][0]["id"], linked.json["id"],
        "{}",
        read.text
    );
    let doc_path = format!(
        "/api/v1/knowledge/documents/{}",
        linked.json["id"].as_str().unwrap()
    );

    // Another organization sees none of it.
    switch_to_new_org(&server).await;
    assert_eq!(server.admin_get(&entry_path).await.status, 404);
    assert_eq!(
        send(&server, Method::PATCH, &entry_path, json!({"title": "x"}))
            .await
            .status,
        404
    );
    assert_eq!(
        send(
            &server,
            Method::POST,
            &format!("{entry_path}/pin"),
            json!(null)
        )
        .await
        .status,
        404
    );
    assert_eq!(
        send(
            &server,
            Method::POST,
            &format!("{docs}?file_name=a&storage_url=https://x.y/a"),
            json!(null)
        )
        .await
        .status,
        404
    );
    assert_eq!(delete(&server, &doc_path).await.status, 404);
    assert_eq!(delete(&server, &entry_path).await.status, 404);
    assert_eq!(server.admin_get("/api/v1/knowledge").await.json["total"], 0);
    let found = search(&server, json!({"query": "runbook", "mode": "keyword"})).await;
    assert_eq!(found["items"], json!([]));
}

#[actix_web::test]
async fn keyword_search_finds_english_by_stem_and_chinese_by_bigrams() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    create_entry(
        &server,
        json!({"title": "Database backups", "content": "Nightly dumps are kept for 30 days."}),
    )
    .await;
    create_entry(
        &server,
        json!({"title": "数据库连接池", "content": "连接池的大小应该根据并发请求数来设置。"}),
    )
    .await;
    create_entry(
        &server,
        json!({"title": "库存管理", "content": "仓库的数据每天更新。"}),
    )
    .await;
    let (_, token) = agent(&server, &board, "Scribe").await;
    let posted = as_agent(
        &server,
        &token,
        Method::POST,
        "/api/v1/agent/knowledge",
        Some(json!({"title": "部署流程", "content": "先排空实例，再逐个重启。", "board_id": board["id"]})),
    )
    .await;
    assert_eq!(posted.status, 201, "{}", posted.text);

    let found = search(&server, json!({"query": "backup", "mode": "keyword"})).await;
    assert_eq!(titles(&found), ["Database backups"]);
    let filtered = search(
        &server,
        json!({"query": "backup", "mode": "keyword", "category": "other"}),
    )
    .await;
    assert_eq!(filtered["items"], json!([]));
    let on_board = search(
        &server,
        json!({"query": "重启", "mode": "keyword", "board_id": board["id"]}),
    )
    .await;
    assert_eq!(titles(&on_board), ["部署流程"]);
    assert_eq!(found["mode"], "keyword");
    assert_eq!(found["degraded"], false);
    let score = found["scores"][0].as_f64().unwrap();
    assert!(score > 0.0 && score < 1.0, "{score}");
    // "数据库" is in the first Chinese entry; the second has 数据 and 库 apart.
    let found = search(&server, json!({"query": "数据库", "mode": "keyword"})).await;
    assert_eq!(titles(&found), ["数据库连接池"]);
    let found = search(&server, json!({"query": "重启", "mode": "keyword"})).await;
    assert_eq!(
        titles(&found),
        ["部署流程"],
        "an agent's entry is searchable too"
    );
    let found = search(&server, json!({"query": "仓", "mode": "keyword"})).await;
    assert_eq!(titles(&found), ["库存管理"]);
    // Without a provider, hybrid (the default) is keyword, and says so.
    let found = search(&server, json!({"query": "backups"})).await;
    assert_eq!(titles(&found), ["Database backups"]);
    assert_eq!(found["mode"], "keyword");
    assert_eq!(found["degraded"], true);
    assert!(found["reason"]
        .as_str()
        .unwrap()
        .contains("EMBEDDING_PROVIDER"));
    // Bad requests.
    for body in [
        json!({"query": ""}),
        json!({"query": "x", "mode": "fuzzy"}),
        json!({"query": "x", "limit": 0}),
    ] {
        let reply = send(&server, Method::POST, "/api/v1/knowledge/search", body).await;
        assert_eq!(reply.status, 422, "{}", reply.text);
    }
}

#[actix_web::test]
async fn each_provider_embeds_in_the_background_and_semantic_search_finds_meaning() {
    let (stub_url, stub) = stub().await;
    for (provider, base) in [
        ("openai", format!("{stub_url}/v1")),
        ("tongyi", format!("{stub_url}/api/v1")),
        ("local", stub_url.clone()),
    ] {
        let server = Server::builder()
            .env("EMBEDDING_PROVIDER", provider)
            .env("EMBEDDING_API_KEY", "sk-test")
            .env("EMBEDDING_BASE_URL", base)
            .start()
            .await;
        create_entry(
            &server,
            json!({"title": "Car maintenance", "content": "Change the oil of the car every year."}),
        )
        .await;
        create_entry(
            &server,
            json!({"title": "Gardening", "content": "Water the tomatoes in the morning."}),
        )
        .await;
        let pinned = create_entry(
            &server,
            json!({"title": "Office plants", "content": "Water the ficus on Mondays."}),
        )
        .await;
        send(
            &server,
            Method::POST,
            &format!("/api/v1/knowledge/{}/pin", pinned["id"].as_str().unwrap()),
            json!(null),
        )
        .await;
        all_embedded(&server).await;
        let db = server.db.client().await;
        let row = db
            .query_one(
                "SELECT min(embedding_dims), max(embedding_model) FROM knowledge_entries",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            row.get::<_, i32>(0),
            DIMS as i32,
            "{provider}: the dimension is the model's"
        );

        // "automobile" shares no word with the car entry: keyword finds nothing, semantic does.
        let keyword = search(&server, json!({"query": "automobile", "mode": "keyword"})).await;
        assert_eq!(keyword["items"], json!([]), "{provider}");
        let semantic = search(
            &server,
            json!({"query": "automobile", "mode": "semantic", "limit": 1}),
        )
        .await;
        assert_eq!(
            titles(&semantic),
            ["Car maintenance"],
            "{provider}: {semantic}"
        );
        assert_eq!(semantic["mode"], "semantic");
        assert!(semantic["scores"][0].as_f64().unwrap() > 0.3);
        // Hybrid fuses both lists; the pinned entry is boosted among equals.
        let hybrid = search(&server, json!({"query": "water"})).await;
        assert_eq!(hybrid["mode"], "hybrid");
        assert_eq!(hybrid["degraded"], false);
        assert_eq!(
            titles(&hybrid)[..2],
            ["Office plants", "Gardening"],
            "{provider}: {hybrid}"
        );
        assert_eq!(
            hybrid["items"].as_array().unwrap().len(),
            hybrid["scores"].as_array().unwrap().len()
        );
        if provider != "local" {
            assert_eq!(*stub.authorization.lock().unwrap(), "Bearer sk-test");
        }

        // A new title is embedded again.
        let before = stub.calls.load(Ordering::SeqCst);
        let path = format!("/api/v1/knowledge/{}", pinned["id"].as_str().unwrap());
        send(
            &server,
            Method::PATCH,
            &path,
            json!({"title": "Office vehicle"}),
        )
        .await;
        all_embedded(&server).await;
        assert!(stub.calls.load(Ordering::SeqCst) > before);
        let semantic = search(
            &server,
            json!({"query": "cars", "mode": "semantic", "limit": 2}),
        )
        .await;
        assert!(
            titles(&semantic).contains(&"Office vehicle".to_string()),
            "{provider}: {semantic}"
        );
    }
}

#[actix_web::test]
async fn a_provider_that_times_out_degrades_to_keyword_and_retries_later() {
    let (stub_url, _) = stub().await;
    let server = Server::builder()
        .env("EMBEDDING_PROVIDER", "openai")
        .env("EMBEDDING_API_KEY", "sk-test")
        .env("EMBEDDING_BASE_URL", format!("{stub_url}/slow/v1"))
        .env("EMBEDDING_TIMEOUT_SECONDS", "1")
        .start()
        .await;
    create_entry(
        &server,
        json!({"title": "Incident review", "content": "Write it within two days."}),
    )
    .await;
    let found = search(&server, json!({"query": "incident", "mode": "semantic"})).await;
    assert_eq!(
        titles(&found),
        ["Incident review"],
        "found by keyword meanwhile"
    );
    assert_eq!(found["mode"], "keyword");
    assert_eq!(found["degraded"], true);
    assert!(
        found["reason"].as_str().unwrap().contains("failed"),
        "{found}"
    );
    // The worker's attempt failed too: the entry waits for its retry, with the error.
    let db = server.db.client().await;
    let failed = eventually(Duration::from_secs(10), || async {
        let row = db
            .query_one(
                "SELECT embed_attempts, embed_error FROM knowledge_entries",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i32>(0) >= 1 && row.get::<_, Option<String>>(1).is_some()
    })
    .await;
    assert!(failed, "{}", server.log());
}

/// A one-page PDF showing `text` in Helvetica, with a correct cross-reference table.
fn pdf(text: &str) -> Vec<u8> {
    let content = format!("BT /F1 24 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{object}\nendobj\n", i + 1).bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .bytes(),
    );
    out
}

/// Uploads `bytes` as the `file` field of a multipart body.
async fn upload(
    server: &Server,
    entry: &Value,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> (u16, Value) {
    let boundary = "mc-test-boundary-7d1f";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    let path = format!(
        "/api/v1/knowledge/{}/documents/upload",
        entry["id"].as_str().unwrap()
    );
    let mut response = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
        .post(format!("{}{path}", server.base))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .insert_header((
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        ))
        .send_body(body)
        .await
        .unwrap();
    let answer = response.body().await.unwrap();
    (
        response.status().as_u16(),
        serde_json::from_slice(&answer).unwrap_or(Value::Null),
    )
}

async fn download(server: &Server, document: &Value) -> (u16, Vec<u8>) {
    let mut response = awc::Client::default()
        .get(format!(
            "{}{}",
            server.base,
            document["storage_url"].as_str().unwrap()
        ))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send()
        .await
        .unwrap();
    let body = response.body().limit(8 << 20).await.unwrap();
    (response.status().as_u16(), body.to_vec())
}

/// The files under `dir`, at any depth.
fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        files_in(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[actix_web::test]
async fn uploaded_documents_are_stored_read_searched_and_survive_a_restart() {
    let dir = TempDir::new();
    let store = dir.path.join("store");
    let instance = || {
        Server::builder()
            .env("KNOWLEDGE_STORAGE_DIR", store.to_string_lossy().to_string())
            .env("KNOWLEDGE_MAX_DOCUMENT_SIZE_MB", "1")
    };
    let server = instance().start().await;
    let entry = create_entry(
        &server,
        json!({"title": "Reports", "content": "Quarterly material."}),
    )
    .await;
    let (status, text) = upload(
        &server,
        &entry,
        "notes.txt",
        "text/plain",
        b"The zeppelin hangar opens at dawn.",
    )
    .await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(text["file_name"], "notes.txt");
    assert_eq!(text["file_size_bytes"], 34);
    let (status, _) = upload(
        &server,
        &entry,
        "menu.md",
        "text/markdown",
        "# Menu\n\nBraised *artichokes*.".as_bytes(),
    )
    .await;
    assert_eq!(status, 201);
    let html = b"<html><body><p>Saffron <b>risotto</b></p><script>var hidden = 'quokka';</script></body></html>";
    let (status, page) = upload(&server, &entry, "page.html", "text/html", html).await;
    assert_eq!(status, 201);
    let pdf_bytes = pdf("Ultramarine pigments sold out");
    let (status, report) =
        upload(&server, &entry, "report.pdf", "application/pdf", &pdf_bytes).await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(files_in(&store), 4);

    // Their text is found with the entry; a script's is not.
    for (word, hits) in [
        ("zeppelin", 1),
        ("artichokes", 1),
        ("risotto", 1),
        ("ultramarine", 1),
        ("quokka", 0),
    ] {
        let found = search(&server, json!({"query": word, "mode": "keyword"})).await;
        assert_eq!(
            found["items"].as_array().unwrap().len(),
            hits,
            "{word}: {found}\n{}",
            server.log()
        );
    }
    let read = server
        .admin_get(&format!(
            "/api/v1/knowledge/{}",
            entry["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(read.json["documents"].as_array().unwrap().len(), 4);
    let (status, bytes) = download(&server, &report).await;
    assert_eq!((status, bytes), (200, pdf_bytes.clone()));

    // Too large: refused while it streams in, nothing stored; no file: 422.
    let (status, _) = upload(
        &server,
        &entry,
        "big.txt",
        "text/plain",
        &vec![b'a'; 1_500_000],
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(files_in(&store), 4);
    let reply = send(
        &server,
        Method::POST,
        &format!(
            "/api/v1/knowledge/{}/documents/upload",
            entry["id"].as_str().unwrap()
        ),
        json!({}),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);

    // Deleting a document deletes its file and its text.
    let doc_path = format!(
        "/api/v1/knowledge/documents/{}",
        text["id"].as_str().unwrap()
    );
    assert_eq!(delete(&server, &doc_path).await.status, 200);
    assert_eq!(files_in(&store), 3);
    let found = search(&server, json!({"query": "zeppelin", "mode": "keyword"})).await;
    assert_eq!(found["items"], json!([]));

    // Files, not memory: another instance on the same store serves them.
    let db = server.db.clone();
    drop(server);
    let server = instance().start_on_db(db).await;
    let (status, bytes) = download(&server, &page).await;
    assert_eq!((status, bytes.as_slice()), (200, &html[..]));
    switch_to_new_org(&server).await;
    assert_eq!(download(&server, &page).await.0, 404);
    let db = server.db.client().await;
    db.execute(
        "UPDATE users SET active_organization_id = $1",
        &[&uuid::Uuid::parse_str(entry["organization_id"].as_str().unwrap()).unwrap()],
    )
    .await
    .unwrap();
    server.caches_caught_up().await;
    // Deleting the entry deletes every file it had.
    assert_eq!(
        delete(
            &server,
            &format!("/api/v1/knowledge/{}", entry["id"].as_str().unwrap())
        )
        .await
        .status,
        200
    );
    assert_eq!(files_in(&store), 0);
}

#[actix_web::test]
async fn documents_go_to_an_s3_compatible_bucket_when_one_is_configured() {
    let moto = Moto::start("mc-docs").await;
    let server = Server::builder()
        .env("OSS_BUCKET", "mc-docs")
        .env("OSS_ENDPOINT", moto.url.clone())
        .env("OSS_ACCESS_KEY", "test-key")
        .env("OSS_SECRET_KEY", "test-secret")
        .env("OSS_PATH_STYLE", "true")
        .start()
        .await;
    let entry = create_entry(
        &server,
        json!({"title": "Bucket", "content": "Kept elsewhere."}),
    )
    .await;
    let (status, document) = upload(
        &server,
        &entry,
        "far.txt",
        "text/plain",
        b"Narwhal migration notes.",
    )
    .await;
    assert_eq!(status, 201, "{document}\n{}", server.log());
    let key = format!(
        "knowledge/{}/{}/{}",
        entry["organization_id"].as_str().unwrap(),
        entry["id"].as_str().unwrap(),
        document["id"].as_str().unwrap()
    );
    assert!(
        moto.listing("mc-docs").await.contains(&key),
        "the object is in the bucket"
    );
    let found = search(&server, json!({"query": "narwhal", "mode": "keyword"})).await;
    assert_eq!(titles(&found), ["Bucket"]);
    let (status, bytes) = download(&server, &document).await;
    assert_eq!(
        (status, bytes.as_slice()),
        (200, &b"Narwhal migration notes."[..])
    );
    let path = format!(
        "/api/v1/knowledge/documents/{}",
        document["id"].as_str().unwrap()
    );
    assert_eq!(delete(&server, &path).await.status, 200);
    assert!(
        !moto.listing("mc-docs").await.contains(&key),
        "the object is deleted"
    );
}

#[actix_web::test]
async fn a_new_model_re_embeds_everything_and_a_rate_limit_pauses_the_worker() {
    let (stub_url, stub) = stub().await;
    let openai = |base: String, model: &str| {
        Server::builder()
            .env("EMBEDDING_PROVIDER", "openai")
            .env("EMBEDDING_API_KEY", "sk-test")
            .env("EMBEDDING_MODEL", model)
            .env("EMBEDDING_BASE_URL", base)
    };
    let server = openai(format!("{stub_url}/v1"), "small").start().await;
    for title in ["One", "Two", "Three"] {
        create_entry(&server, json!({"title": title, "content": "Some text."})).await;
    }
    all_embedded(&server).await;
    let db = server.db.clone();
    drop(server);
    let server = openai(format!("{stub_url}/v1"), "large")
        .start_on_db(db)
        .await;
    let client = server.db.client().await;
    let again = eventually(Duration::from_secs(20), || async {
        let row = client
            .query_one("SELECT count(*) FROM knowledge_entries WHERE embedding_model = 'large' AND embed_due_at IS NULL", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0) == 3
    })
    .await;
    assert!(
        again,
        "not re-embedded with the new model\n{}",
        server.log()
    );
    let db = server.db.clone();
    drop(server);

    // 429: the batch is given back untried (no attempt counted) and the worker waits.
    let server = openai(format!("{stub_url}/limited/v1"), "limited")
        .start_on_db(db)
        .await;
    let before = stub.calls.load(Ordering::SeqCst);
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    let calls = stub.calls.load(Ordering::SeqCst) - before;
    assert_eq!(calls, 1, "one call, then a pause for Retry-After");
    let row = client
        .query_one("SELECT max(embed_attempts), count(*) FILTER (WHERE embed_due_at > now()) FROM knowledge_entries", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 0);
    assert_eq!(row.get::<_, i64>(1), 3, "postponed, not failed");
    drop(server);
}
